"""Origins as sites list them and browsers send them: normalised, or refused with a reason."""

from __future__ import annotations

import pytest

from confide.errors import InvalidInput
from confide.sites.origins import normalise_origin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Example.com/path?q=1", "https://example.com"),
        ("https://x.example:443", "https://x.example"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_normalised(value: str, expected: str) -> None:
    assert normalise_origin(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://a.example:99999", "Not an origin"),
        ("https://a.example:abc", "Not an origin"),
        ("http://[::1", "Not an origin"),
        ("http://[zz::1]", "Not an origin"),
        ("https://*.example", "Wildcards are not supported"),
        ("https://a b.example", "bad host name"),
        ("ftp://a.example", "Not an origin"),
        ("https://user:pw@a.example", "no credentials"),
        ("null", "Not an origin"),
    ],
)
def test_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        normalise_origin(value)
