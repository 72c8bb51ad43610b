"""The access log writes at most one line per second for successful beacons, with a count.

(The live server's log is checked for personal data in test_ingest.py; this is the rule itself.)
"""

from __future__ import annotations

import logging

from confide.logs import RedactPersonalData, ThrottleBeaconAccess

FORMAT = '%s - "%s %s HTTP/%s" %d'  # what uvicorn's access logger is given


def access(
    created: float, path: str = "/api/t", status: int = 202, method: str = "POST"
) -> logging.LogRecord:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "h11_impl.py", 1, FORMAT,
        ("203.0.113.77:5000", method, path, "1.1", status), None,
    )  # fmt: skip
    record.created = created
    return record


def test_successful_beacons_are_logged_once_a_second_with_a_count() -> None:
    throttle = ThrottleBeaconAccess()
    t = 1_000_000.0
    first = access(t)
    assert throttle.filter(first)
    assert first.getMessage() == '203.0.113.77:5000 - "POST /api/t HTTP/1.1" 202'
    assert not any(throttle.filter(access(t + i / 10)) for i in range(1, 10))
    # refused beacons, preflights and every other request are always logged
    assert throttle.filter(access(t + 0.95, status=403))
    assert throttle.filter(access(t + 0.95, status=413))
    assert throttle.filter(access(t + 0.95, method="OPTIONS", status=204))
    assert throttle.filter(access(t + 0.95, path="/api/widget/config"))
    assert throttle.filter(access(t + 0.95, path="/api/t?x=1"))
    later = access(t + 1.0)
    assert throttle.filter(later)
    assert later.getMessage().endswith('"POST /api/t HTTP/1.1" 202 (+9 more since the last line)')
    # the count starts again, and the handler's redaction still removes the address
    assert RedactPersonalData().filter(later)
    assert later.getMessage() == '- - "POST /api/t HTTP/1.1" 202 (+9 more since the last line)'
    quiet = access(t + 60)
    assert throttle.filter(quiet) and quiet.getMessage().endswith(" 202")
