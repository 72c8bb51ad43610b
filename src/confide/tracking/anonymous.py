"""Anonymous page-view counts under the UK statistics exception (R12, ``sites/uk_stats.py``).

A beacon counted here is reduced to (site, day, path) at once: no visit, visitor or page-view
row is written, and neither the address nor the User-Agent is looked at beyond the bot check
the service already made. Each beacon is one upsert (``INSERT … ON CONFLICT DO UPDATE``, on
SQLite and PostgreSQL alike), so concurrent beacons on several nodes add up without a lost
update. These beacons come only from opt-in sites' visitors before they answer the consent
question, a fraction of the traffic the group-commit writer carries.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from confide.clock import utcnow
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking import urls
from confide.tracking.events import Beacon
from confide.tracking.models import AnonymousCount


async def count(db: Database, site: Site, beacon: Beacon) -> int:
    """Add the beacon's page views to today's counters; returns how many were counted."""
    paths = Counter(urls.clean_path(e.url)[0] for e in beacon.events if e.type == "pageview")
    if not paths:
        return 0
    day = utcnow().date()
    rows = [
        {
            "organisation_id": site.organisation_id,
            "site_id": site.id,
            "day": day,
            "path": path,
            "pageviews": n,
        }
        for path, n in sorted(paths.items())
    ]
    dialect: Any = sqlite if db.is_sqlite else postgresql
    statement = dialect.insert(AnonymousCount).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["site_id", "day", "path"],
        set_={"pageviews": AnonymousCount.pageviews + statement.excluded.pageviews},
    )
    async with db.session(Scope.system()) as s:
        await s.execute(statement)
    return sum(paths.values())
