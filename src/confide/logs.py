"""Logging that never carries personal data.

Services log ids and counts, never message text, names or contact details. As a second barrier,
:class:`RedactPersonalData` masks anything in a log record that looks like an email address or a
phone number before it reaches a handler (``tests/test_logs.py`` sends both through a chat).
"""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: Digit runs with phone punctuation; dots are excluded so IP addresses and versions survive.
_PHONE = re.compile(r"(?<![\w.:])\+?\d[\d\s()/-]{5,}\d(?![\w.:])")
_MIN_PHONE_DIGITS = 7


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if _DATE.match(text):  # an ISO date, not a phone number
        return text
    digits = sum(ch.isdigit() for ch in text)
    return "[phone]" if digits >= _MIN_PHONE_DIGITS else text


def redact(text: str) -> str:
    return _PHONE.sub(_phone, _EMAIL.sub("[email]", text))


class RedactPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
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
