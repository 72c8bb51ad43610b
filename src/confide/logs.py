"""Logging that never carries personal data.

Services log ids and counts, never message text, names or contact details. As a second barrier,
:class:`RedactPersonalData` masks anything in a log record that looks like an email address or a
phone number before it reaches a handler (``tests/test_logs.py`` sends both through a chat).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Callable, MutableMapping
from typing import Any

#: As typed, or percent-encoded in a request path (``%40`` for ``@``, ``%2E`` for a dot).
_EMAIL = re.compile(r"[\w.%+-]+(?:@|%40)[\w-]+(?:(?:\.|%2E)[\w-]+)*(?:\.|%2E)[^\W\d_]{2,}", re.I)
#: Digit runs with phone punctuation. Dots are excluded so IP addresses and versions survive,
#: and a digit run glued to ``:`` and a digit is a time or a port, not a phone number.
_PHONE = re.compile(r"(?<![\w.])(?<!\d:)\+?\d[\d\s()/-]{5,}\d(?!\w|[.:]\d)")
_MIN_PHONE_DIGITS = 7
#: A bare run of digits (no +, no leading 0, no separators) shorter than this is a counter or a
#: process id, not a phone number; numbers written the way people write phones are masked.
_BARE_DIGITS_MIN = 9
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Access logs: ours (confide.web.beacon_asgi writes it) and uvicorn's, should it be turned on.
_ACCESS_LOGGERS = ("confide.access", "uvicorn.access")
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


#: How uvicorn's WebSocket handshake lines start (client address, then path and query).
_WEBSOCKET_LINE = '%s - "WebSocket %s"'


def _without_client(args: tuple[object, ...], *, path_at: int) -> tuple[object, ...]:
    """The client address is a visitor's IP address: never logged. The query string may carry a
    search or a resume token: dropped."""
    out = list(args)
    out[0] = "-"
    out[path_at] = str(out[path_at]).split("?", 1)[0]
    return tuple(out)


def redact(text: str) -> str:
    return _PHONE.sub(_phone, _EMAIL.sub("[email]", text))


class RedactPersonalData(logging.Filter):
    """Masks emails and phone numbers, drops other libraries' DEBUG records (aiosqlite logs SQL
    parameters, uvicorn logs WebSocket frames) and query strings in access logs (searches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and not record.name.startswith(_OWN_LOGGERS):
            return False
        if isinstance(record.args, tuple):
            if record.name in _ACCESS_LOGGERS and len(record.args) >= 3:
                record.args = _without_client(record.args, path_at=2)
            elif str(record.msg).startswith(_WEBSOCKET_LINE) and len(record.args) >= 2:
                # uvicorn logs each WebSocket handshake on its error logger, address first
                record.args = _without_client(record.args, path_at=1)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


#: The access log's line, as uvicorn writes it: client, method, path?query, HTTP version, status.
ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'


class AccessLog:
    """The HTTP access log, written by the app (uvicorn's own is turned off in ``run_server``).

    The same line as uvicorn's, on the logger ``confide.access``; :class:`RedactPersonalData`
    removes the address and the query string from it, as it did from uvicorn's.
    Why write it ourselves: successful beacons (``POST /api/t`` answered 2xx) are most of the
    server's requests (one per page view and every 15 s per visible tab), and they get at most one
    line per ``INTERVAL_S``, saying how many were not written. uvicorn made a log record for each
    before a filter could drop it, about a tenth of the server's CPU per beacon
    (bench/ingest_load.py); here the decision comes first. Refused beacons (4xx, 5xx) and every
    other request get a line each.
    """

    INTERVAL_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._log = logging.getLogger("confide.access")
        self._clock = clock
        self._next = 0.0
        self._skipped = 0

    def request(self, scope: MutableMapping[str, Any], status: int, skipped: int = 0) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        path = urllib.parse.quote(scope["path"])
        if scope.get("query_string"):
            path = f"{path}?{scope['query_string'].decode('ascii', 'replace')}"
        args = (
            f"{client[0]}:{client[1]}" if client else "",
            scope["method"],
            path,
            scope.get("http_version", "1.1"),
            status,
        )
        if skipped:
            self._log.info(ACCESS_FORMAT + " (+%d more since the last line)", *args, skipped)
        else:
            self._log.info(ACCESS_FORMAT, *args)

    def beacon(self, scope: MutableMapping[str, Any], status: int) -> None:
        """A beacon's line: every refusal; a success at most once per ``INTERVAL_S``."""
        if not 200 <= status < 300:
            self.request(scope, status)
            return
        now = self._clock()
        if now < self._next:
            self._skipped += 1
            return
        self._next = now + self.INTERVAL_S
        skipped, self._skipped = self._skipped, 0
        self.request(scope, status, skipped)


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
