"""Charts as inline SVG, rendered on the server from plain numbers (no JavaScript, no build step).

Each function is pure: numbers and labels in, a :class:`~markupsafe.Markup` string of one
``<svg>`` element out, safe to place in a Jinja template as it is. Every text that reaches the
SVG is escaped here, so a page path such as ``/<script>`` is shown, never run.

Responsive without a ``viewBox`` on the outer element: the charts are ``width="100%"`` with a
fixed pixel height, horizontal positions are percentages and the plotted lines live in a nested
``<svg preserveAspectRatio="none">`` that stretches only horizontally. Text therefore keeps its
size on a phone and on a wide screen alike, instead of shrinking with the drawing.

Accessibility: the outer element is ``role="img"`` with an ``aria-label`` (the title and a text
summary), ``<title>`` and ``<desc>``; the page puts the same numbers in a table beside the chart.
Colours are presentation attributes (allowed by a CSP without ``'unsafe-inline'``, which blocks
``style`` attributes) that a stylesheet may override through the ``chart-*`` classes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from markupsafe import Markup, escape

SVG_NS = "http://www.w3.org/2000/svg"
PRIMARY = "#2d55d6"
SECONDARY = "#0f8a5f"
GRID = "#e6e9ef"
AXIS = "#cdd2db"
TICK = "#5b6474"
TRACK = "#eef1f6"

#: Characters XML 1.0 forbids (a tracked page title may contain them; the HTML parser would not
#: mind, but an SVG must stay well-formed wherever it is used).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

Number = int | float
#: Labels longer than this may be clipped on a phone (about 200 px of 13 px text).
FADE_FROM_CHARS = 26


def _text(value: object) -> str:
    """Escaped text or attribute value (quotes included)."""
    return str(escape(_NOT_XML.sub("", str(value))))


def _num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros, never ``nan`` or ``-0``."""
    if not math.isfinite(value):
        value = 0.0
    out = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if out in ("", "-0") else out


def _pct(value: float) -> str:
    return _num(value) + "%"


def _clean(values: Sequence[Number]) -> list[float]:
    return [float(v) if math.isfinite(v) and v > 0 else 0.0 for v in values]


def format_count(value: Number) -> str:
    """``1234`` → ``1,234``; ``12500`` → ``12.5k``; ``3400000`` → ``3.4M`` (for tick labels)."""
    v = float(value)
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if abs(v) >= 10_000:
        return f"{v / 1_000:.1f}".rstrip("0").rstrip(".") + "k"
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.1f}"


def nice_scale(max_value: float, ticks: int = 4, *, integer: bool = True) -> tuple[float, float]:
    """The axis top and the step between gridlines: a 1, 2, 2.5 or 5 times a power of ten, so
    ticks read 0, 5, 10, 15, 20 and not 0, 4.75, 9.5. An empty (all-zero) series gets 0 to
    ``ticks`` so the chart still has a readable frame."""
    if not math.isfinite(max_value) or max_value <= 0:
        return float(ticks), 1.0
    raw = max_value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for m in (1, 2, 2.5, 5, 10):
        candidate = m * magnitude
        if integer and candidate != int(candidate):
            continue
        if candidate >= raw:
            step = candidate
            break
    if integer:
        step = max(step, 1.0)
    top = math.ceil(max_value / step - 1e-9) * step
    return float(top), float(step)


def _done(parts: list[str]) -> Markup:
    """The finished SVG. Safe by construction: every text and attribute value in ``parts`` went
    through :func:`_text` (escaped), and numbers through :func:`_num`."""
    return Markup("".join(parts))  # noqa: S704


def _open(css: str, title: str, summary: str, height: float, extra: str = "") -> str:
    label = f"{title}. {summary}" if summary else title
    return (
        f'<svg xmlns="{SVG_NS}" class="chart {css}" role="img" aria-label="{_text(label)}" '
        f'width="100%" height="{_num(height)}" overflow="visible" '
        f'font-family="system-ui, sans-serif" font-size="12"{extra}>'
        f"<title>{_text(title)}</title>" + (f"<desc>{_text(summary)}</desc>" if summary else "")
    )


# ---- time series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a time series: ``area`` (filled line), ``line`` or ``bars`` (columns)."""

    label: str
    values: Sequence[Number]
    style: Literal["area", "line", "bars"] = "area"
    color: str = PRIMARY
    #: Singular and plural unit for tooltips ("visit", "visits"); defaults to the label.
    unit: tuple[str, str] | None = None


def _tick_indexes(n: int, most: int) -> list[int]:
    if n <= 0:
        return []
    step = max(1, math.ceil((n - 1) / max(1, most - 1))) if n > 1 else 1
    return list(range(0, n, step))


def _day_label(day: date, span_days: int) -> str:
    if span_days > 200:
        return day.strftime("%b %Y")
    return f"{day.day} {day.strftime('%b')}"


def _amount(value: float, unit: tuple[str, str] | None, label: str) -> str:
    singular, plural = unit or (label, label)
    return f"{format_count(value)} {singular if value == 1 else plural}"


def time_series(
    days: Sequence[date],
    series: Sequence[Series],
    *,
    title: str,
    summary: str = "",
    height: int = 260,
    max_x_labels: int = 6,
    markers_up_to: int = 45,
) -> Markup:
    """A chart of daily values: gridlines with labelled y ticks, one x label every few days, and
    per-day hover targets whose ``<title>`` gives the exact numbers.

    Series are drawn in order (put an ``area`` first and ``bars`` over it, or bars first to keep
    them behind). All series share one y scale, starting at zero."""
    n = len(days)
    for s in series:
        if len(s.values) != n:
            raise ValueError(f"series {s.label!r} has {len(s.values)} values for {n} days")
    top_pad, bottom_pad = 22.0, 30.0
    plot_h = max(20.0, height - top_pad - bottom_pad)
    values = [_clean(s.values) for s in series]
    peak = max((max(v) for v in values if v), default=0.0)
    top, step = nice_scale(peak)

    def y_of(v: float) -> float:  # inside the plot (the nested svg)
        return plot_h * (1 - v / top)

    width_units = 1000.0  # the nested svg's x range; stretched to the real width
    band = width_units / n if n else width_units

    def x_of(i: int) -> float:
        return band * (i + 0.5)

    parts = [_open("chart-series", title, summary, height)]
    # Gridlines and y tick labels (above their line, at the left edge).
    parts.append('<g class="chart-grid" aria-hidden="true">')
    ticks = round(top / step)
    for k in range(ticks + 1):
        v = k * step
        y = top_pad + y_of(v)
        stroke = AXIS if k == 0 else GRID
        parts.append(
            f'<line x1="0" x2="100%" y1="{_num(y)}" y2="{_num(y)}" stroke="{stroke}" '
            f'stroke-width="1" shape-rendering="crispEdges"/>'
        )
        if k > 0:
            parts.append(
                f'<text class="chart-tick" x="0" y="{_num(y - 6)}" fill="{TICK}" '
                f'stroke="#fff" stroke-width="3" paint-order="stroke">{format_count(v)}</text>'
            )
    parts.append("</g>")

    # The plotted series, in a nested svg that stretches horizontally only.
    parts.append(
        f'<svg class="chart-plot" x="0" y="{_num(top_pad)}" width="100%" height="{_num(plot_h)}" '
        f'viewBox="0 0 {_num(width_units)} {_num(plot_h)}" preserveAspectRatio="none" '
        f'overflow="visible" aria-hidden="true">'
    )
    for idx, (s, vals) in enumerate(zip(series, values, strict=True)):
        css = f"chart-s{idx} chart-{s.style}"
        if s.style == "bars":
            bar_w = min(band * 0.55, band - 1) if n > 1 else min(band * 0.2, 60)
            parts.append(f'<g class="{css}" fill="{_text(s.color)}">')
            for i, v in enumerate(vals):
                if v <= 0:
                    continue
                h = max(2.0, plot_h - y_of(v))
                parts.append(
                    f'<rect x="{_num(x_of(i) - bar_w / 2)}" y="{_num(plot_h - h)}" '
                    f'width="{_num(bar_w)}" height="{_num(h)}"/>'
                )
            parts.append("</g>")
            continue
        if n == 0:
            continue
        points = [(x_of(i), y_of(v)) for i, v in enumerate(vals)]
        line = "M" + " L".join(f"{_num(x)},{_num(y)}" for x, y in points)
        if s.style == "area" and n > 1:
            area = (
                f"M{_num(points[0][0])},{_num(plot_h)} L"
                + " L".join(f"{_num(x)},{_num(y)}" for x, y in points)
                + f" L{_num(points[-1][0])},{_num(plot_h)} Z"
            )
            parts.append(
                f'<path class="{css}-fill" d="{area}" fill="{_text(s.color)}" '
                f'fill-opacity="0.12" stroke="none"/>'
            )
        if n > 1:
            parts.append(
                f'<path class="{css}" d="{line}" fill="none" stroke="{_text(s.color)}" '
                f'stroke-width="2.25" stroke-linejoin="round" stroke-linecap="round" '
                f'vector-effect="non-scaling-stroke"/>'
            )
    parts.append("</svg>")

    # Point markers (percent x, so they stay round); a single day is only a marker.
    parts.append('<g class="chart-markers" aria-hidden="true">')
    for s, vals in zip(series, values, strict=True):
        if s.style == "bars" or not (n == 1 or n <= markers_up_to):
            continue
        r = 3.5 if n > 1 else 5
        for i, v in enumerate(vals):
            parts.append(
                f'<circle cx="{_pct((i + 0.5) * 100 / n)}" cy="{_num(top_pad + y_of(v))}" '
                f'r="{_num(r)}" fill="{_text(s.color)}" stroke="#fff" stroke-width="1.5"/>'
            )
    parts.append("</g>")

    # X labels.
    parts.append(f'<g class="chart-x" aria-hidden="true" fill="{TICK}" text-anchor="middle">')
    for i in _tick_indexes(n, max_x_labels):
        parts.append(
            f'<text class="chart-tick" x="{_pct((i + 0.5) * 100 / n)}" '
            f'y="{_num(height - 8)}">{_text(_day_label(days[i], n))}</text>'
        )
    parts.append("</g>")

    # Hover targets: one column per day, its exact numbers in a tooltip.
    parts.append('<g class="chart-hits">')
    for i, day in enumerate(days):
        tip = ", ".join(
            _amount(vals[i], s.unit, s.label) for s, vals in zip(series, values, strict=True)
        )
        parts.append(
            f'<rect class="chart-hit" x="{_pct(i * 100 / n)}" y="0" width="{_pct(100 / n)}" '
            f'height="{_num(top_pad + plot_h)}" fill="transparent" data-day="{day.isoformat()}">'
            f"<title>{_text(day.strftime('%a %d %b %Y'))}: {_text(tip)}</title></rect>"
        )
    parts.append("</g></svg>")
    return _done(parts)


# ---- horizontal bars -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: Number
    #: A second, quieter figure after the value, e.g. a share ("41%").
    note: str = ""


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    if text.startswith("/") and "/" in text[1:]:
        # A path: keep its start and its end, which name the page best ("/used-cars/…/golf-gti").
        head = limit // 2 - 1
        tail = limit - head - 1
        return text[:head] + "…" + text[-tail:]
    return text[: limit - 1] + "…"


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    summary: str = "",
    color: str = PRIMARY,
    value_format: Callable[[Number], str] = format_count,
    label_chars: int = 44,
    label_width: str = "70%",
    row_height: int = 42,
) -> Markup:
    """Horizontal bars, longest first as given: each row has its label (shortened to
    ``label_chars``, clipped at ``label_width`` so it never runs into the value) and the value at
    the right, the bar under them. The longest bar fills the width; the full label is the row's
    tooltip."""
    if not bars:
        height = 40
        return _done(
            [
                _open("chart-bars", title, summary or "No data.", height),
                f'<text x="0" y="24" fill="{TICK}">No data</text></svg>',
            ]
        )
    values = _clean([b.value for b in bars])
    peak = max(values) or 1.0
    height = len(bars) * row_height
    parts = [_open("chart-bars", title, summary, height)]
    # Long labels fade out where they are clipped (on a phone) instead of being cut mid-letter.
    # The gradient's id comes from the content: unique per chart, identical if repeated.
    digest = hashlib.blake2s(
        "\x1f".join([title, *(b.label for b in bars)]).encode(), digest_size=5
    ).hexdigest()
    fade = f"chart-fade-{digest}"
    parts.append(
        f'<defs><linearGradient id="{fade}"><stop offset="0" stop-color="#fff" '
        f'stop-opacity="0"/><stop offset="1" stop-color="#fff"/></linearGradient></defs>'
    )
    for i, (b, v) in enumerate(zip(bars, values, strict=True)):
        y0 = i * row_height
        label = _text(b.label)
        parts.append(f'<g class="chart-bar-row"><title>{label}: {_text(value_format(v))}</title>')
        shown = _shorten(b.label, label_chars)
        fade_rect = (
            f'<rect x="100%" y="0" width="28" height="20" transform="translate(-28 0)" '
            f'fill="url(#{fade})"/>'
            if len(shown) > FADE_FROM_CHARS
            else ""
        )
        parts.append(
            f'<svg x="0" y="{_num(y0)}" width="{_text(label_width)}" height="20" '
            f'overflow="hidden"><text class="chart-bar-label" x="0" y="15" font-size="13" '
            f'fill="#1a2130">{_text(shown)}</text>{fade_rect}</svg>'
        )
        note = (
            f'<tspan class="chart-bar-note" fill="{TICK}" font-weight="400" dx="6">'
            f"{_text(b.note)}</tspan>"
            if b.note
            else ""
        )
        parts.append(
            f'<text class="chart-bar-value" x="100%" y="{_num(y0 + 15)}" text-anchor="end" '
            f'font-size="13" font-weight="600" fill="#1a2130">{_text(value_format(v))}{note}</text>'
        )
        bar_y = y0 + 22
        parts.append(
            f'<rect class="chart-track" x="0" y="{_num(bar_y)}" width="100%" height="8" rx="4" '
            f'fill="{TRACK}"/>'
        )
        if v > 0:
            width = max(0.75, v / peak * 100)
            parts.append(
                f'<rect class="chart-bar" x="0" y="{_num(bar_y)}" width="{_pct(width)}" '
                f'height="8" rx="4" fill="{_text(color)}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return _done(parts)


# ---- sparkline -------------------------------------------------------------------------------


def sparkline(
    values: Sequence[Number],
    *,
    title: str,
    summary: str = "",
    height: int = 36,
    color: str = PRIMARY,
) -> Markup:
    """A small area chart without axes, for a list of sites."""
    vals = _clean(values)
    n = len(vals)
    peak = max(vals, default=0.0)
    inner_h = float(height - 4)

    def y_of(v: float) -> float:
        return 2 + (inner_h * (1 - v / peak) if peak else inner_h)

    parts = [_open("chart-spark", title, summary, height)]
    if n:
        band = 1000.0 / n
        points = [(band * (i + 0.5), y_of(v)) for i, v in enumerate(vals)]
        if n == 1:
            points = [(0.0, points[0][1]), (1000.0, points[0][1])]
        line = "M" + " L".join(f"{_num(x)},{_num(y)}" for x, y in points)
        area = (
            f"M{_num(points[0][0])},{_num(height)} L"
            + " L".join(f"{_num(x)},{_num(y)}" for x, y in points)
            + f" L{_num(points[-1][0])},{_num(height)} Z"
        )
        stroke = _text(color) if peak else AXIS  # nothing recorded: a quiet baseline
        parts.append(
            f'<svg x="0" y="0" width="100%" height="{_num(height)}" viewBox="0 0 1000 '
            f'{_num(height)}" preserveAspectRatio="none" aria-hidden="true">'
            + (f'<path d="{area}" fill="{_text(color)}" fill-opacity="0.12"/>' if peak else "")
            + f'<path d="{line}" fill="none" stroke="{stroke}" stroke-width="1.75" '
            f'stroke-linejoin="round" vector-effect="non-scaling-stroke"/></svg>'
        )
    parts.append("</svg>")
    return _done(parts)
