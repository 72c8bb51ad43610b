"""Geo location from the IP address, offline, with the least data that serves (R20).

The address is truncated (IPv4 /24, IPv6 /48) **before** the lookup, and only the result is kept:
the full address is never stored or logged. Country comes from the database that the geoip2fast
package ships (no network at run time); a MaxMind-format file (``CONFIDE_GEOIP_CITY_DB``) adds
region and city where a deployment wants them.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    country: str | None  # ISO 3166-1 alpha-2
    region: str | None = None
    city: str | None = None


UNKNOWN = Place(None)


def truncate(ip: str) -> str | None:
    """``203.0.113.77`` → ``203.0.113.0``; ``2001:db8:1:2::1`` → ``2001:db8:1::``."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # what a dual-stack listener reports for IPv4 clients
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


class GeoLocator:
    def __init__(self, city_db: str | None = None) -> None:
        self._country: Any = None
        self._city: Any = None
        self._city_db = city_db

    def _load(self) -> None:
        if self._country is None:
            from geoip2fast import GeoIP2Fast

            # The IPv4+IPv6 country file the package ships (IPv6 visitors get a country too).
            try:
                self._country = GeoIP2Fast(
                    verbose=False, geoip2fast_data_file="geoip2fast-ipv6.dat.gz"
                )
            except Exception:
                self._country = GeoIP2Fast(verbose=False)
            if self._city_db:
                import maxminddb

                self._city = maxminddb.open_database(self._city_db)

    def warm(self) -> None:
        self._load()

    def locate(self, ip: str | None, *, city_level: bool = False) -> Place:
        """The place of the /24 (or /48) the address belongs to. Never raises."""
        truncated = truncate(ip or "")
        if truncated is None:
            return UNKNOWN
        return self._locate_truncated(truncated, city_level)

    @lru_cache(maxsize=65536)  # noqa: B019 (one locator per process)
    def _locate_truncated(self, truncated: str, city_level: bool) -> Place:
        try:
            self._load()
            if city_level and self._city is not None:
                record = self._city.get(truncated) or {}
                country = (record.get("country") or {}).get("iso_code")
                region = ((record.get("subdivisions") or [{}])[0].get("names") or {}).get("en")
                city = ((record.get("city") or {}).get("names") or {}).get("en")
                return Place(country, region, city)
            result = self._country.lookup(truncated)
            code = getattr(result, "country_code", "") or ""
            return Place(code if len(code) == 2 and code.isalpha() else None)
        except Exception:
            log.warning("geo lookup failed")  # never the address itself
            return UNKNOWN
