"""Server-rendered SVG charts: well-formed, accessible, scaled right, safe with any label."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from markupsafe import Markup

from confide.web import charts
from confide.web.charts import Bar, Series, bar_chart, nice_scale, sparkline, time_series

NS = {"s": "http://www.w3.org/2000/svg"}
EVIL = "<script>alert(1)</script>"


def _days(n: int, start: date = date(2026, 3, 1)) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def _accessible(root: ET.Element, title: str) -> None:
    assert root.get("role") == "img"
    assert title in (root.get("aria-label") or "")
    first = root[0]
    assert first.tag == "{http://www.w3.org/2000/svg}title"
    assert first.text == title


def _plot(root: ET.Element) -> ET.Element:
    plot = root.find("s:svg[@class='chart-plot']", NS)
    assert plot is not None
    return plot


def _points(path_d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path_d)]


# ---- scales ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "top", "step"),
    [
        (0, 4, 1),
        (1, 1, 1),
        (3, 3, 1),
        (9, 10, 5),
        (10, 10, 5),
        (29, 30, 10),
        (101, 150, 50),
        (380, 400, 100),
        (1234, 1500, 500),
        (0.4, 1, 1),
    ],
)
def test_nice_scale_gives_round_integer_ticks(peak: float, top: float, step: float) -> None:
    assert nice_scale(peak) == (top, step)


def test_nice_scale_never_cuts_off_the_peak() -> None:
    for peak in range(1, 3000, 7):
        top, step = nice_scale(peak)
        assert top >= peak
        assert step >= 1 and step == int(step)
        assert top / step <= 5


def test_format_count() -> None:
    assert charts.format_count(0) == "0"
    assert charts.format_count(1234) == "1,234"
    assert charts.format_count(12_500) == "12.5k"
    assert charts.format_count(20_000) == "20k"
    assert charts.format_count(3_400_000) == "3.4M"


# ---- time series -------------------------------------------------------------------------------


def test_time_series_is_well_formed_accessible_markup() -> None:
    svg = time_series(
        _days(30),
        [Series("Visits", list(range(30))), Series("Chats", [1] * 30, style="bars")],
        title="Visits and chats per day",
        summary="435 visits and 30 chats.",
    )
    assert isinstance(svg, Markup)  # safe to place in a template as it is
    root = _parse(svg)
    _accessible(root, "Visits and chats per day")
    assert root.get("aria-label") == "Visits and chats per day. 435 visits and 30 chats."
    desc = root.find("s:desc", NS)
    assert desc is not None and desc.text == "435 visits and 30 chats."
    # No style attributes anywhere: the page's CSP (no 'unsafe-inline') would block them.
    assert 'style="' not in svg


def test_time_series_scales_values_onto_the_axis() -> None:
    values = [0, 5, 10, 2]
    root = _parse(time_series(_days(4), [Series("Visits", values, style="line")], title="T"))
    plot = _plot(root)
    height = float(plot.get("height") or 0)
    width = float((plot.get("viewBox") or "").split()[2])
    line = plot.find("s:path[@class='chart-s0 chart-line']", NS)
    assert line is not None
    points = _points(line.get("d") or "")
    assert len(points) == 4
    # Peak 10 → axis top 10: the peak touches the top, zero sits on the baseline, 5 is halfway.
    ys = [y for _x, y in points]
    assert ys[0] == pytest.approx(height)
    assert ys[2] == pytest.approx(0)
    assert ys[1] == pytest.approx(height / 2)
    assert ys[3] == pytest.approx(height * 0.8)
    # Each day sits at the centre of its column, left to right.
    xs = [x for x, _y in points]
    assert xs == pytest.approx([width * (i + 0.5) / 4 for i in range(4)])
    # Gridlines and labels for 0, 5, 10 (the zero line is the unlabelled baseline).
    ticks = [t.text for t in root.findall("s:g[@class='chart-grid']/s:text", NS)]
    assert ticks == ["5", "10"]
    assert len(root.findall("s:g[@class='chart-grid']/s:line", NS)) == 3


def test_time_series_bars_share_the_scale() -> None:
    root = _parse(
        time_series(
            _days(2),
            [Series("Visits", [10, 4]), Series("Chats", [2, 0], style="bars")],
            title="T",
        )
    )
    plot = _plot(root)
    height = float(plot.get("height") or 0)
    bars = plot.findall("s:g[@class='chart-s1 chart-bars']/s:rect", NS)
    assert len(bars) == 1  # a zero day draws no bar
    assert float(bars[0].get("height") or 0) == pytest.approx(height * 2 / 10)  # axis top 10


def test_time_series_all_zero_keeps_a_readable_frame() -> None:
    svg = time_series(_days(7), [Series("Visits", [0] * 7)], title="Nothing")
    root = _parse(svg)
    ticks = [t.text for t in root.findall("s:g[@class='chart-grid']/s:text", NS)]
    assert ticks == ["1", "2", "3", "4"]
    line = _plot(root).find("s:path[@class='chart-s0 chart-area']", NS)
    assert line is not None
    height = float(_plot(root).get("height") or 0)
    assert all(y == pytest.approx(height) for _x, y in _points(line.get("d") or ""))
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_time_series_single_day_is_a_centred_marker() -> None:
    root = _parse(time_series(_days(1), [Series("Visits", [3])], title="One day"))
    assert _plot(root).find("s:path", NS) is None  # no line through one point
    markers = root.findall("s:g[@class='chart-markers']/s:circle", NS)
    assert len(markers) == 1
    assert markers[0].get("cx") == "50%"
    labels = [t.text for t in root.findall("s:g[@class='chart-x']/s:text", NS)]
    assert labels == ["1 Mar"]
    hits = root.findall("s:g[@class='chart-hits']/s:rect", NS)
    assert len(hits) == 1 and hits[0].get("width") == "100%"


def test_time_series_with_no_days() -> None:
    root = _parse(time_series([], [Series("Visits", [])], title="Empty"))
    _accessible(root, "Empty")


def test_time_series_labels_a_few_days_and_tooltips_every_day() -> None:
    days = _days(90)
    root = _parse(
        time_series(
            days,
            [Series("Visits", [i % 7 for i in range(90)], unit=("visit", "visits"))],
            title="T",
        )
    )
    labels = root.findall("s:g[@class='chart-x']/s:text", NS)
    assert 3 <= len(labels) <= 6
    assert labels[0].text == "1 Mar"
    hits = root.findall("s:g[@class='chart-hits']/s:rect", NS)
    assert len(hits) == 90
    tips = [h.findtext("s:title", namespaces=NS) for h in hits]
    assert tips[0] == "Sun 01 Mar 2026: 0 visits"
    assert tips[1] == "Mon 02 Mar 2026: 1 visit"
    # Markers would crowd a 90-day chart.
    assert not root.findall("s:g[@class='chart-markers']/s:circle", NS)


def test_time_series_rejects_mismatched_series() -> None:
    with pytest.raises(ValueError):
        time_series(_days(3), [Series("Visits", [1, 2])], title="T")


def test_time_series_escapes_text() -> None:
    svg = time_series(
        _days(2), [Series(EVIL, [1, 2])], title=f"Title {EVIL}", summary=f'"{EVIL}" & more'
    )
    root = _parse(svg)
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    assert root.findtext("s:title", namespaces=NS) == f"Title {EVIL}"
    assert EVIL in (root.get("aria-label") or "")


def test_negative_and_non_finite_values_are_drawn_as_zero() -> None:
    svg = time_series(_days(3), [Series("Visits", [-5, float("nan"), float("inf")])], title="T")
    _parse(svg)
    assert "nan" not in svg.lower()


# ---- bars --------------------------------------------------------------------------------------


def test_bar_chart_is_accessible_and_scaled_to_the_longest_bar() -> None:
    svg = bar_chart(
        [Bar("Search engines", 50, "50%"), Bar("Direct", 25, "25%"), Bar("Email", 0, "0%")],
        title="Channels by visits",
        summary="Search engines: 50; Direct: 25; Email: 0.",
    )
    root = _parse(svg)
    _accessible(root, "Channels by visits")
    rows = root.findall("s:g[@class='chart-bar-row']", NS)
    assert len(rows) == 3
    widths = [
        (row.find("s:rect[@class='chart-bar']", NS), row.findtext("s:title", namespaces=NS))
        for row in rows
    ]
    assert widths[0][0] is not None and widths[0][0].get("width") == "100%"
    assert widths[1][0] is not None and widths[1][0].get("width") == "50%"
    assert widths[2][0] is None  # nothing to draw for zero, only the track
    assert widths[0][1] == "Search engines: 50"
    values = [t.text for t in root.findall("s:g/s:text[@class='chart-bar-value']", NS)]
    assert values == ["50", "25", "0"]
    notes = [t.text for t in root.findall("s:g/s:text/s:tspan", NS)]
    assert notes == ["50%", "25%", "0%"]
    assert int(root.get("height") or 0) == 3 * 42


def test_bar_chart_escapes_and_shortens_labels() -> None:
    long_path = "/used-cars/volkswagen/golf-gti-2019-performance-pack-with-extras"
    svg = bar_chart([Bar(EVIL, 3), Bar(long_path, 2), Bar('Quote " & amp', 1)], title="Top pages")
    root = _parse(svg)
    assert "<script" not in svg
    labels = [t.text or "" for t in root.findall(".//s:text[@class='chart-bar-label']", NS)]
    assert labels[0] == EVIL  # shown as text
    assert labels[1].startswith("/used-cars/") and labels[1].endswith("with-extras")
    assert "…" in labels[1] and len(labels[1]) <= 44
    assert labels[2] == 'Quote " & amp'
    # The full label stays available as the row's tooltip.
    titles = [r.findtext("s:title", namespaces=NS) for r in root.findall("s:g", NS)]
    assert f"{long_path}: 2" in titles


def test_bar_chart_gradient_ids_differ_between_charts() -> None:
    a = bar_chart([Bar("x" * 40, 1)], title="A")
    b = bar_chart([Bar("x" * 40, 1)], title="B")
    id_a = re.search(r'id="([^"]+)"', a)
    id_b = re.search(r'id="([^"]+)"', b)
    assert id_a and id_b and id_a.group(1) != id_b.group(1)
    assert f"url(#{id_a.group(1)})" in a


def test_bar_chart_without_bars_says_so() -> None:
    root = _parse(bar_chart([], title="Browsers"))
    _accessible(root, "Browsers")
    assert "No data" in ET.tostring(root, encoding="unicode")


def test_control_characters_cannot_break_the_xml() -> None:
    _parse(bar_chart([Bar("bad\x00\x07char\x1b", 1)], title="T\x01"))


# ---- sparkline ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [0], [4], [0, 0, 0], [1, 5, 2, 8]])
def test_sparkline_is_well_formed_for_any_series(values: list[int]) -> None:
    root = _parse(sparkline(values, title=f"Visits {EVIL}", summary="12 visits."))
    _accessible(root, f"Visits {EVIL}")
