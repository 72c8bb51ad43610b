"""When a ``Sec-GPC: 1`` header on a beacon is recorded as an opt-out (R13, CCPA §7025).

Our widget reports GPC with one ``optout`` event per browser session and sends no page views
for such a browser. Other senders (a site's own script, a browser whose widget frame does not
expose ``navigator.globalPrivacyControl``) send page views with the header: the signal is just
as valid, so the first page view of each visit records one opt-out. Later beacons of the same
visit would only repeat it, so the visits already counted are remembered here, in memory and
for a bounded number of visits: the opt-out row itself carries no identifier (nothing may link
it to the browser), so the database cannot answer "already recorded?". A restart or another
node may record a visit twice, which over-reports an opt-out and never under-reports one.
"""

from __future__ import annotations

from collections import OrderedDict

from confide.tracking.events import Beacon

#: Visits remembered (a few MB at most): far more than stay live at once on one node.
REMEMBERED = 50_000


class GpcOnce:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max = remembered

    def first(self, site_id: str, beacon: Beacon) -> bool:
        """True for a beacon with a page view that starts a visit not yet counted (a page view
        without a visit id counts each time: there is nothing to tell them apart)."""
        if not any(e.type == "pageview" for e in beacon.events):
            return False  # pings and leave beacons follow a page view already counted
        if beacon.visit is None:
            return True
        key = (site_id, beacon.visit)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True
