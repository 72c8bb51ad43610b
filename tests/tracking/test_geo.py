"""Geo location: the address is truncated (IPv4 /24, IPv6 /48) before any lookup."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from confide.tracking import geo
from confide.tracking.geo import GeoLocator, Place, truncate


@pytest.mark.parametrize(
    ("ip", "truncated"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
        ("203.0.113.255", "203.0.113.0"),
        (" 81.2.69.142 ", "81.2.69.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("2001:db8:1:2::1", "2001:db8:1::"),
        ("2001:db8:abcd:ffff:1:2:3:4", "2001:db8:abcd::"),
        ("2001:DB8:1::", "2001:db8:1::"),
        ("fe80::1%eth0", "fe80::"),
        ("", None),
        ("unknown", None),
        ("203.0.113.77:1234", None),
        ("999.1.1.1", None),
    ],
)
def test_truncate(ip: str, truncated: str | None) -> None:
    assert truncate(ip) == truncated


class Recorder:
    """Stands in for the geoip2fast country database and a MaxMind city reader."""

    def __init__(self, country: str = "GB") -> None:
        self.calls: list[str] = []
        self.country = country

    def lookup(self, ip: str) -> Any:
        self.calls.append(ip)
        return type("Result", (), {"country_code": self.country})()

    def get(self, ip: str) -> dict[str, Any]:
        self.calls.append(ip)
        return {
            "country": {"iso_code": self.country},
            "subdivisions": [{"names": {"en": "England"}}],
            "city": {"names": {"en": "Leeds"}},
        }


def _locator(monkeypatch: pytest.MonkeyPatch, recorder: Recorder, *, city: bool) -> GeoLocator:
    locator = GeoLocator("/nonexistent/city.mmdb" if city else None)

    def load(self: GeoLocator) -> None:
        self._country = recorder
        self._city = recorder if city else None

    monkeypatch.setattr(GeoLocator, "_load", load)
    return locator


@pytest.mark.parametrize("city", [False, True], ids=["country-db", "city-db"])
@pytest.mark.parametrize(
    ("ip", "sent"),
    [("203.0.113.77", "203.0.113.0"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1::")],
)
def test_the_lookup_never_receives_the_full_address(
    monkeypatch: pytest.MonkeyPatch, city: bool, ip: str, sent: str
) -> None:
    recorder = Recorder()
    place = _locator(monkeypatch, recorder, city=city).locate(ip, city_level=city)
    assert recorder.calls == [sent]
    assert place.country == "GB"
    if city:
        assert place == Place("GB", "England", "Leeds")


def test_one_lookup_per_network(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder("FR")
    locator = _locator(monkeypatch, recorder, city=False)
    for host in range(1, 60):
        assert locator.locate(f"198.51.100.{host}").country == "FR"
    assert recorder.calls == ["198.51.100.0"]  # cached per /24, never per address


def test_unparseable_addresses_are_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    locator = _locator(monkeypatch, recorder, city=False)
    assert locator.locate(None) == geo.UNKNOWN
    assert locator.locate("not-an-ip") == geo.UNKNOWN
    assert recorder.calls == []


@pytest.mark.parametrize("code", ["--", "", "G1", "GBR", None])
def test_bad_country_codes_become_unknown(monkeypatch: pytest.MonkeyPatch, code: Any) -> None:
    recorder = Recorder(code)
    assert _locator(monkeypatch, recorder, city=False).locate("192.0.2.9").country is None


def test_a_failed_lookup_is_unknown_and_logged_without_the_address(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        def lookup(self, ip: str) -> Any:
            raise RuntimeError(f"corrupt record for {ip}")

    locator = _locator(monkeypatch, Broken(), city=False)
    with caplog.at_level(logging.DEBUG, logger="confide.tracking.geo"):
        assert locator.locate("192.0.2.77") == geo.UNKNOWN
    assert "geo lookup failed" in caplog.text
    assert "192.0.2" not in caplog.text


def test_real_database_finds_a_country_from_the_truncated_address() -> None:
    locator = GeoLocator()
    assert locator.locate("81.2.69.142").country == "GB"
    assert locator.locate("8.8.8.8").country == "US"
    assert locator.locate("203.0.113.77").country is None  # TEST-NET-3: nowhere


def test_ipv6_visitors_get_a_country() -> None:
    assert GeoLocator().locate("2a00:1450:4009:81f::200e").country == "GB"


def test_ipv4_mapped_addresses_are_truncated_as_ipv4() -> None:
    assert truncate("::ffff:81.2.69.142") == "81.2.69.0"
