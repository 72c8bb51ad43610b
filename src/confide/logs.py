"""Logging that never carries personal data.

Services log ids and counts, never message text, names or contact details. As a second barrier,
:class:`RedactPersonalData` masks anything in a log record that looks like an email address or a
phone number before it reaches a handler (``tests/test_logs.py`` sends both through a chat).
"""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
#: Digit runs with phone punctuation. Dots are excluded so IP addresses and versions survive,
#: and a digit run glued to ``:`` and a digit is a time or a port, not a phone number.
_PHONE = re.compile(r"(?<![\w.])(?<!\d:)\+?\d[\d\s()/-]{5,}\d(?!\w|[.:]\d)")
_MIN_PHONE_DIGITS = 7
#: A bare run of digits (no +, no leading 0, no separators) shorter than this is a counter or a
#: process id, not a phone number; numbers written the way people write phones are masked.
_BARE_DIGITS_MIN = 9
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Third-party loggers whose DEBUG output carries SQL parameters or raw frames.
_OWN_LOGGERS = ("confide",)


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if _DATE.match(text):  # an ISO date, not a phone number
        return text
    digits = sum(ch.isdigit() for ch in text)
    if digits < _MIN_PHONE_DIGITS:
        return text
    if text.isdigit() and not text.startswith("0") and digits < _BARE_DIGITS_MIN:
        return text
    return "[phone]"


def redact(text: str) -> str:
    return _PHONE.sub(_phone, _EMAIL.sub("[email]", text))


class RedactPersonalData(logging.Filter):
    """Masks emails and phone numbers, drops other libraries' DEBUG records (aiosqlite logs SQL
    parameters, uvicorn logs WebSocket frames) and query strings in access logs (searches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and not record.name.startswith(_OWN_LOGGERS):
            return False
        if (
            record.name == "uvicorn.access"
            and isinstance(record.args, tuple)
            and len(record.args) >= 3
        ):
            args = list(record.args)
            args[0] = "-"  # the client address is a visitor's IP address: never logged
            args[2] = str(args[2]).split("?", 1)[0]
            record.args = tuple(args)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class ThrottleBeaconAccess(logging.Filter):
    """At most one access-log line per ``INTERVAL_S`` for successful beacons (``POST /api/t``
    answered 2xx); the line that is written says how many were not.

    Why: the beacon is most of the server's requests (one per page view and every 15 s per
    visible tab), and a log line costs about a tenth of the server's CPU per beacon
    (bench/ingest_load.py): the log shows that beacons flow and how many, without a line
    each. Refused beacons (4xx, 5xx) and every other request are always logged. Nothing
    personal either way: the address and query string are removed by
    :class:`RedactPersonalData` on the handler.
    """

    INTERVAL_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._next = 0.0
        self._skipped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn: '%s - "%s %s HTTP/%s" %d' % (client, method, path?query, version, status)
        args = record.args
        if not (
            isinstance(args, tuple)
            and len(args) == 5
            and args[2] == "/api/t"
            and args[1] == "POST"
            and isinstance(args[4], int)
            and 200 <= args[4] < 300
        ):
            return True
        if record.created < self._next:
            self._skipped += 1
            return False
        self._next = record.created + self.INTERVAL_S
        if self._skipped:
            record.msg = f"{record.msg} (+%d more since the last line)"
            record.args = (*args, self._skipped)
            self._skipped = 0
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactPersonalData) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactPersonalData())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for h in logger.handlers:
            h.addFilter(RedactPersonalData())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ThrottleBeaconAccess) for f in access.filters):
        access.addFilter(ThrottleBeaconAccess())
