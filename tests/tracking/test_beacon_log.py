"""The access log writes at most one line per second for successful beacons, with a count.

(The live server's log is checked for personal data in test_ingest.py and test_logs.py; this is
the rule itself, on a clock the test controls.)
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from confide.logs import AccessLog, RedactPersonalData


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def lines() -> Any:
    handler = Lines()
    logger = logging.getLogger("confide.access")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def scope(path: str = "/api/t", method: str = "POST", query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "http_version": "1.1",
        "client": ("203.0.113.77", 5000),
    }


def test_successful_beacons_are_logged_once_a_second_with_a_count(lines: Lines) -> None:
    now = [1_000_000.0]
    access = AccessLog(clock=lambda: now[0])
    access.beacon(scope(), 202)
    assert lines.messages() == ['203.0.113.77:5000 - "POST /api/t HTTP/1.1" 202']
    for i in range(1, 10):
        now[0] = 1_000_000.0 + i / 10
        access.beacon(scope(), 202)
    assert len(lines.records) == 1  # nine successes within the second: counted, not written
    # refused beacons and every other request are always logged
    access.beacon(scope(), 403)
    access.beacon(scope(), 413)
    access.request(scope(method="OPTIONS"), 204)
    access.request(scope("/api/widget/config"), 200)
    assert len(lines.records) == 5
    now[0] = 1_000_001.0
    access.beacon(scope(), 202)
    later = lines.records[-1]
    assert later.getMessage() == (
        '203.0.113.77:5000 - "POST /api/t HTTP/1.1" 202 (+9 more since the last line)'
    )
    # the handler's redaction still removes the address (and any query string)
    assert RedactPersonalData().filter(later)
    assert later.getMessage() == '- - "POST /api/t HTTP/1.1" 202 (+9 more since the last line)'
    now[0] = 1_000_060.0
    access.beacon(scope(), 202)
    assert lines.messages()[-1].endswith('"POST /api/t HTTP/1.1" 202')


def test_query_strings_are_logged_only_to_be_removed_by_the_redaction(lines: Lines) -> None:
    AccessLog().request(scope("/console/history", "GET", b"q=jane%40example.com"), 200)
    record = lines.records[-1]
    assert "?q=" in record.getMessage()
    assert RedactPersonalData().filter(record)
    assert record.getMessage() == '- - "GET /console/history HTTP/1.1" 200'
