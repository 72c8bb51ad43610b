"""The client portal: how a dealership's sites perform (visits, pages, channels, chats).

Server-rendered pages for a client organisation's staff (and our admins): the list of sites in
scope, one report per site and date range, and CSV exports of its tables. Everything is read
from the daily roll-ups through :meth:`Reports.site_report`; the charts are inline SVG made by
:mod:`confide.web.charts`, so the pages work without JavaScript.

Errors are rendered here as pages (the app's handler renders JSON outside ``/console``): a site
of another organisation is a 404 page, a bad date a 422 page with the reason. The CSV export
answers JSON instead when the client did not ask for HTML (a script, not a browser).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.clock import utcnow
from confide.errors import ConfideError, Forbidden, InvalidInput
from confide.leads.ratings import rating_summary
from confide.sites.models import Site
from confide.tracking.aggregates import MAX_RANGE_DAYS, TOP
from confide.web import charts
from confide.web.deps import Ctx
from confide.web.errors import TITLES, http_code, status_for
from confide.web.routes.console import _page, _signed_in
from confide.web.signin_redirect import to_sign_in

router = APIRouter(prefix="/portal", include_in_schema=False)

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
#: Sites on the list page get a 30-day summary and a sparkline up to this many (one report each).
LIST_SUMMARY_LIMIT = 24
TABLES = ("daily", "page", "channel", "country", "device", "browser")
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EN_DASH, MINUS, TIMES = "\u2013", "\u2212", "\u00d7"
DASH = f" {EN_DASH} "  # between dates of different months

CHANNELS = {
    "direct": "Direct",
    "search": "Search engines",
    "social": "Social media",
    "email": "Email",
    "campaign": "Campaigns",
    "other": "Other websites",
}
DEVICES = {"desktop": "Desktop", "mobile": "Mobile", "tablet": "Tablet"}
COUNTRIES = {
    "AE": "United Arab Emirates", "AT": "Austria", "AU": "Australia", "BE": "Belgium",
    "BG": "Bulgaria", "BR": "Brazil", "CA": "Canada", "CH": "Switzerland", "CN": "China",
    "CY": "Cyprus", "CZ": "Czechia", "DE": "Germany", "DK": "Denmark", "EE": "Estonia",
    "ES": "Spain", "FI": "Finland", "FR": "France", "GB": "United Kingdom", "GG": "Guernsey",
    "GI": "Gibraltar", "GR": "Greece", "HK": "Hong Kong", "HR": "Croatia", "HU": "Hungary",
    "IE": "Ireland", "IL": "Israel", "IM": "Isle of Man", "IN": "India", "IS": "Iceland",
    "IT": "Italy", "JE": "Jersey", "JP": "Japan", "KR": "South Korea", "LI": "Liechtenstein",
    "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia", "MT": "Malta", "MX": "Mexico",
    "NL": "Netherlands", "NO": "Norway", "NZ": "New Zealand", "PH": "Philippines",
    "PK": "Pakistan", "PL": "Poland", "PT": "Portugal", "RO": "Romania", "RS": "Serbia",
    "RU": "Russia", "SA": "Saudi Arabia", "SE": "Sweden", "SG": "Singapore", "SI": "Slovenia",
    "SK": "Slovakia", "TR": "Türkiye", "UA": "Ukraine", "US": "United States",
    "ZA": "South Africa",
}  # fmt: skip
BREAKDOWNS = (
    ("page", "Top pages", "Page"),
    ("channel", "Channels", "Channel"),
    ("country", "Locations", "Country"),
    ("device", "Devices", "Device"),
    ("browser", "Browsers", "Browser"),
)


# ---- dates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)

    def query(self, **extra: str) -> str:
        return urlencode({"from": self.start.isoformat(), "to": self.end.isoformat(), **extra})


def _parse_day(raw: str | None, name: str) -> date | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        if not _DATE.match(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"'{name}' must be a date written YYYY-MM-DD (for example 2026-03-31)."
        ) from None
    if not EARLIEST <= day <= LATEST:
        raise InvalidInput(f"'{name}' must be between {EARLIEST} and {LATEST}.")
    return day


def parse_period(raw_from: str | None, raw_to: str | None, today: date) -> Period:
    """The requested range: the last 30 days by default; one end alone sets a 30-day range
    from or to it. The report itself caps a range at 366 days (its latest days)."""
    start, end = _parse_day(raw_from, "from"), _parse_day(raw_to, "to")
    if start is None and end is None:
        end = today
    if end is None:
        assert start is not None
        end = max(start, min(today, start + timedelta(days=DEFAULT_DAYS - 1)))
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput("The start date ('from') is after the end date ('to').")
    if start <= today < end:
        end = today  # no figures exist yet for the days to come: they would read as zeros
    return Period(start, end)


# ---- formatting --------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``0`` → ``0s``; ``75`` → ``1m 15s``; ``3725`` → ``1h 02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def percent(share: float, digits: int = 1) -> str:
    value = share * 100
    if value and value < 0.1:
        return "<0.1%"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return text + "%"


def key_label(dimension: str, key: str) -> str:
    if key in ("", "unknown"):
        return "Unknown"
    if dimension == "channel":
        return CHANNELS.get(key, key.capitalize())
    if dimension == "device":
        return DEVICES.get(key, key.capitalize())
    if dimension == "country":
        return COUNTRIES.get(key.upper(), key)
    return key


def period_label(p: Period) -> str:
    if p.start == p.end:
        return f"{p.start.day} {p.start:%b %Y}"
    if p.start.year != p.end.year:
        return f"{p.start.day} {p.start:%b %Y}{DASH}{p.end.day} {p.end:%b %Y}"
    if p.start.month != p.end.month:
        return f"{p.start.day} {p.start:%b}{DASH}{p.end.day} {p.end:%b %Y}"
    return f"{p.start.day}{EN_DASH}{p.end.day} {p.end:%b %Y}"


def csv_cell(value: object) -> str | int | float:
    """A CSV value that spreadsheets will not run as a formula (OWASP CSV injection)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def slug(text: str) -> str:
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:60].strip("-") or "site"


# ---- view models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    help: str
    delta: str | None  # "+12%", "-3 pts" (a minus sign), … or None when there is nothing to compare
    trend: str  # up, down, flat, none


def _delta(now: float, before: float, *, points: bool = False) -> tuple[str | None, str]:
    if points:
        diff = (now - before) * 100
        if abs(diff) < 0.05:
            return "No change", "flat"
        sign = "+" if diff > 0 else MINUS
        return f"{sign}{abs(diff):.1f} pts", "up" if diff > 0 else "down"
    if before <= 0:
        return (None, "none") if now <= 0 else ("New", "up")
    change = (now - before) / before
    if abs(change) < 0.005:
        return "No change", "flat"
    if change >= 9.995:  # "+6200%" reads worse than "63 times" (a multiplication sign)
        return f"{now / before:.0f}{TIMES}", "up"
    sign = "+" if change > 0 else MINUS
    return f"{sign}{abs(change) * 100:.0f}%", "up" if change > 0 else "down"


def kpis(totals: dict[str, Any], previous: dict[str, Any], has_previous: bool) -> list[Kpi]:
    def make(label: str, key: str, value: str, help_text: str, *, points: bool = False) -> Kpi:
        delta, trend = (
            _delta(float(totals[key]), float(previous[key]), points=points)
            if has_previous
            else (None, "none")
        )
        return Kpi(label, value, help_text, delta, trend)

    return [
        make("Visits", "visits", f"{totals['visits']:,}", "Sessions on your site"),
        make(
            "Daily unique visitors",
            "visitors",
            f"{totals['visitors']:,}",
            "Browsers counted once per day",
        ),
        make("Page views", "pageviews", f"{totals['pageviews']:,}", "Pages opened"),
        make(
            "Average visit",
            "average_visit_seconds",
            duration(totals["average_visit_seconds"]),
            "Time from first to last page",
        ),
        make("Chats", "chats", f"{totals['chats']:,}", "Chats started on the site"),
        make(
            "Visits with a chat",
            "chat_share",
            percent(totals["chat_share"]),
            "Of the visits recorded",
            points=True,
        ),
        *(
            [
                make(
                    "Anonymous page views",
                    "anonymous_pageviews",
                    f"{totals['anonymous_pageviews']:,}",
                    "Before consent, UK statistics exception",
                )
            ]
            if totals.get("anonymous_pageviews")
            else []
        ),
    ]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    visits: int
    pageviews: int
    chats: int
    share: str
    average: str


@dataclass(frozen=True)
class Breakdown:
    dimension: str
    title: str
    column: str
    rows: list[Row]
    chart: Any  # Markup


def breakdown(dimension: str, title: str, column: str, report: dict[str, Any]) -> Breakdown:
    totals = report["totals"]
    items = report["breakdowns"][dimension]
    is_page = dimension == "page"
    total = totals["pageviews"] if is_page else totals["visits"]
    rows = []
    for item in items:
        #: Pages: share of page views, time per page view; others: share of visits, visit length.
        measure = item["pageviews"] if is_page else item["visits"]
        rows.append(
            Row(
                key=item["key"],
                label=key_label(dimension, item["key"]),
                visits=item["visits"],
                pageviews=item["pageviews"],
                chats=item["chats"],
                share=percent(measure / total, 0) if total else EN_DASH,
                average=duration(item["seconds"] / measure) if measure else EN_DASH,
            )
        )
    unit = "page views" if is_page else "visits"
    bars = [
        charts.Bar(r.label, r.pageviews if is_page else r.visits, r.share if total else "")
        for r in rows
    ]
    summary = (
        "; ".join(f"{b.label}: {b.value:,} {unit} ({b.note})" for b in bars) + "."
        if bars
        else "No data."
    )
    chart = charts.bar_chart(
        bars,
        title=f"{title} by {unit}",
        summary=summary,
        label_chars=44 if is_page else 32,
        label_width="74%" if is_page else "66%",
    )
    return Breakdown(dimension, title, column, rows, chart)


def series_chart(report: dict[str, Any]) -> Any:
    series = report["series"]
    days = [date.fromisoformat(d["day"]) for d in series]
    visits = [int(d["visits"]) for d in series]
    chats = [int(d["chats"]) for d in series]
    totals = report["totals"]
    most = max(visits, default=0)
    if most:
        best = visits.index(most)
        peak = f" The busiest day was {days[best]:%A %d %B} with {visits[best]:,} visits."
    else:
        peak = ""
    summary = (
        f"{totals['visits']:,} visits and {totals['chats']:,} chats "
        f"from {days[0]:%d %B %Y} to {days[-1]:%d %B %Y}.{peak}"
        if days
        else "No days."
    )
    return charts.time_series(
        days,
        [
            charts.Series("Visits", visits, "area", charts.PRIMARY, ("visit", "visits")),
            charts.Series("Chats", chats, "bars", charts.SECONDARY, ("chat", "chats")),
        ],
        title="Visits and chats per day",
        summary=summary,
    )


# ---- pages -----------------------------------------------------------------------------------


def _error(
    request: Request, exc: ConfideError, *, html: bool = True, back: str = "/portal"
) -> Response:
    """The error as a page (the console's error card, with a way back) or as JSON."""
    status = status_for(exc)
    if not html:
        return JSONResponse({"detail": exc.message, "code": http_code(exc)}, status_code=status)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "portal/error.html",
        {
            "status": status,
            "title": TITLES.get(status, "Error"),
            "detail": exc.message,
            "back": back,
            "csp_nonce": request.state.csp_nonce,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _check_role(principal: Principal) -> None:
    if principal.role not in (Role.CLIENT, Role.ADMIN):
        raise Forbidden("Reports are for your dealership's staff. Ask your administrator.")


async def _report(
    ctx: Ctx, principal: Principal, site: Site, period: Period, *, every_row: bool = False
) -> tuple[dict[str, Any], Period]:
    top = None if every_row else TOP
    report = await ctx.reports.site_report(principal.scope, site, period.start, period.end, top=top)
    return report, Period(date.fromisoformat(report["from"]), date.fromisoformat(report["to"]))


@router.get("", response_class=HTMLResponse)
async def sites(request: Request, ctx: Ctx) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    try:
        _check_role(principal)
    except ConfideError as exc:
        return _error(request, exc)
    listed = await ctx.sites.list_sites(principal.scope)
    today = utcnow().date()
    period = Period(today - timedelta(days=DEFAULT_DAYS - 1), today)
    items = []
    for index, (site, org_name) in enumerate(listed):
        summary = None
        if index < LIST_SUMMARY_LIMIT:
            report, _ = await _report(ctx, principal, site, period)
            visits = [int(d["visits"]) for d in report["series"]]
            summary = {
                "visits": report["totals"]["visits"],
                "chats": report["totals"]["chats"],
                "chat_share": percent(report["totals"]["chat_share"]),
                "spark": charts.sparkline(
                    visits,
                    title=f"Visits per day, {site.name}",
                    summary=f"{sum(visits):,} visits in the last {DEFAULT_DAYS} days.",
                ),
            }
        items.append(
            {
                "id": site.id,
                "name": site.name,
                "organisation": org_name,
                "consent_mode": site.consent_mode,
                "summary": summary,
            }
        )
    organisations = sorted({org for _site, org in listed})
    return _page(
        request,
        "portal/sites.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "sites": items,
            "organisations": organisations,
            "days": DEFAULT_DAYS,
        },
    )


@router.get("/sites/{site_id}", response_class=HTMLResponse)
async def site_report(
    request: Request,
    ctx: Ctx,
    site_id: str,
    raw_from: Annotated[str | None, Query(alias="from")] = None,
    raw_to: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    today = utcnow().date()
    try:
        _check_role(principal)
        site = await ctx.sites.get(principal.scope, site_id)
    except ConfideError as exc:
        return _error(request, exc)
    try:
        requested = parse_period(raw_from, raw_to, today)
    except ConfideError as exc:
        return _error(request, exc, back=f"/portal/sites/{site.id}")
    report, period = await _report(ctx, principal, site, requested)
    prev_report, _ = await _report(ctx, principal, site, period.previous())
    has_previous = prev_report["totals"]["visits"] > 0
    totals = report["totals"]
    presets = [
        {
            "days": n,
            "query": Period(today - timedelta(days=n - 1), today).query(),
            "active": period == Period(today - timedelta(days=n - 1), today),
        }
        for n in PRESETS
    ]
    daily = [
        {
            "day": date.fromisoformat(d["day"]),
            "visits": d["visits"],
            "visitors": d["visitors"],
            "pageviews": d["pageviews"],
            "chats": d["chats"],
        }
        for d in report["series"]
    ]
    return _page(
        request,
        "portal/report.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "site": site,
            "organisation_name": await _organisation_name(ctx, principal, site),
            "period": period,
            "period_label": period_label(period),
            "capped": period != requested,
            "max_days": MAX_RANGE_DAYS,
            "previous_label": f"previous {period.days} day{'s' if period.days != 1 else ''}",
            "today": today,
            "presets": presets,
            "totals": totals,
            "kpis": kpis(totals, prev_report["totals"], has_previous),
            "has_data": totals["visits"] > 0
            or totals["pageviews"] > 0
            or totals["anonymous_pageviews"] > 0,
            "chart": series_chart(report),
            "daily": daily,
            "breakdowns": [breakdown(d, t, c, report) for d, t, c in BREAKDOWNS],
            "ratings": await rating_summary(
                ctx.db, principal.scope, site.id, period.start, period.end
            ),
            "export_query": period.query(),
            "tables": TABLES,
        },
    )


async def _organisation_name(ctx: Ctx, principal: Principal, site: Site) -> str:
    for listed, org_name in await ctx.sites.list_sites(principal.scope):
        if listed.id == site.id:
            return org_name
    return ""


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/sites/{site_id}/export.csv")
async def export_csv(
    request: Request,
    ctx: Ctx,
    site_id: str,
    raw_from: Annotated[str | None, Query(alias="from")] = None,
    raw_to: Annotated[str | None, Query(alias="to")] = None,
    table: str = "daily",
) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, _csrf = session
    try:
        _check_role(principal)
        site = await ctx.sites.get(principal.scope, site_id)
        requested = parse_period(raw_from, raw_to, utcnow().date())
        if table not in TABLES:
            raise InvalidInput(f"'table' must be one of: {', '.join(TABLES)}.")
    except ConfideError as exc:
        return _error(request, exc, html=_wants_html(request))
    report, period = await _report(ctx, principal, site, requested, every_row=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if table == "daily":
        writer.writerow(
            [
                "day",
                "visits",
                "daily_unique_visitors",
                "pageviews",
                "chats",
                "visits_with_chat",
                "anonymous_pageviews",
            ]
        )
        for d in report["series"]:
            writer.writerow(
                [
                    d["day"],
                    d["visits"],
                    d["visitors"],
                    d["pageviews"],
                    d["chats"],
                    d["visits_with_chat"],
                    d["anonymous_pageviews"],
                ]
            )
    else:
        writer.writerow([table, "visits", "pageviews", "chats", "seconds"])
        for item in report["breakdowns"][table]:
            writer.writerow(
                [
                    csv_cell(item["key"]),
                    item["visits"],
                    item["pageviews"],
                    item["chats"],
                    item["seconds"],
                ]
            )
    filename = f"{slug(site.name)}-{table}-{period.start}-to-{period.end}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
