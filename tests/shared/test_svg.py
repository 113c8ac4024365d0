"""The inline SVG renderer: empty data, tiny inputs, escaping, accessibility, well-formedness."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from hitl_shared.svg import (
    Bars,
    Point,
    Series,
    Strip,
    bar_chart,
    empty_chart,
    nice_ticks,
    number,
    xy_chart,
)

NS = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>'


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own output)


def of_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == cls]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def xy(**overrides: object) -> str:
    args: dict[str, object] = {
        "chart_id": "c",
        "title": "Reliability",
        "description": "Accuracy against confidence",
        "x_label": "Confidence",
        "y_label": "Accuracy",
        "series": [Series("calibrated", [Point(0.55, 0.5, 0.3, 0.7, "5 items")])],
        "empty_message": "No decisions yet for this workflow",
    }
    args.update(overrides)
    return xy_chart(**args)  # type: ignore[arg-type]


def bars(**overrides: object) -> str:
    args: dict[str, object] = {
        "chart_id": "b",
        "title": "Review time",
        "description": "Histogram",
        "x_label": "Seconds",
        "y_label": "Decisions",
        "categories": ["< 5 s", "5\u201310 s"],
        "series": [Bars("light", [3, 0]), Bars("full", [1, 2])],
        "empty_message": "No decisions yet for this workflow",
    }
    args.update(overrides)
    return bar_chart(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "render",
    [
        lambda: xy(series=[]),
        lambda: xy(series=[Series("a", []), Series("b", [None, None])]),
        lambda: bars(series=[]),
        lambda: bars(categories=[], series=[Bars("light", [])]),
        lambda: bars(series=[Bars("light", [0, 0])]),
    ],
)
def test_nothing_to_plot_is_a_sentence_not_an_empty_chart(render) -> None:  # type: ignore[no-untyped-def]
    out = render()
    assert "<svg" not in out
    assert out == '<p class="chart-empty" role="note">No decisions yet for this workflow</p>'


def test_one_point_is_a_readable_accessible_chart() -> None:
    root = parse(xy(diagonal="perfect calibration"))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-title c-desc"
    assert root.find(f"{NS}title").text == "Reliability"  # type: ignore[union-attr]
    assert root.find(f"{NS}desc").text == "Accuracy against confidence"  # type: ignore[union-attr]
    words = texts(root)
    # Visible title, both axis labels, tick labels and the legend.
    for expected in ("Reliability", "Confidence", "Accuracy", "0", "0.4", "1", "calibrated"):
        assert expected in words, expected
    assert "perfect calibration" in words
    (point,) = of_class(root, "point")
    assert (point.get("data-x"), point.get("data-y")) == ("0.55", "0.5")
    assert point.find(f"{NS}title").text == "calibrated: 5 items"  # type: ignore[union-attr]
    assert len(of_class(root, "error-bar")) == 1
    assert len(of_class(root, "diagonal")) == 1
    # The point sits inside the plot: x = 55% of the way across, y half-way up.
    circle = point.find(f"{NS}circle")
    assert circle is not None
    x, y = float(circle.get("cx", "0")), float(circle.get("cy", "0"))
    assert 62 < x < 640 - 16 and 40 < y < 380 - 46


def test_points_break_lines_at_gaps_and_strip_shows_counts() -> None:
    series = [
        Series("light", [Point(0, 0.9), Point(1, 0.8), None, Point(3, 0.95)]),
        Series("full", [Point(0.1, 0.7)]),
    ]
    strip = Strip("items", [(0, 0.5), (0.5, 1)], [[4, 0], [2, 1]])
    root = parse(
        xy(
            series=series,
            x_domain=(-0.5, 3.5),
            x_ticks=[(0, "1 Mar"), (1, "2 Mar"), (2, "3 Mar"), (3, "4 Mar")],
            strip=strip,
        )
    )
    assert len(of_class(root, "point")) == 4
    # One line for the first run of two points; a lone point after the gap has none.
    assert len(list(root.iter(f"{NS}polyline"))) == 1
    counts = [int(r.get("data-count", "-1")) for r in root.iter(f"{NS}rect") if r.get("data-count")]
    assert sorted(counts) == [0, 1, 2, 4]
    assert {"1 Mar", "4 Mar", "items"} <= set(texts(root))


def test_grouped_and_stacked_bars_plot_every_value() -> None:
    grouped = parse(bars())
    values = [(b.get("data-category"), b.get("data-value")) for b in of_class(grouped, "bar")]
    assert values == [("< 5 s", "3"), ("< 5 s", "1"), ("5\u201310 s", "2")]  # zeros draw nothing
    assert {"light", "full", "Seconds", "Decisions"} <= set(texts(grouped))
    stacked = parse(bars(stacked=True))
    rects = of_class(stacked, "bar")
    assert len(rects) == 3
    # Stacked: the second series starts where the first ends.
    first, second = rects[0], rects[1]
    assert float(first.get("y", "0")) == pytest.approx(
        float(second.get("y", "0")) + float(second.get("height", "0"))
    )
    assert [t.text for t in of_class(stacked, "totals")[0]] == ["4", "2"]


def test_every_text_is_escaped() -> None:
    out = xy(
        chart_id='x" onload="alert(1)',
        title=EVIL,
        description=EVIL,
        x_label=EVIL,
        y_label=EVIL,
        series=[Series(EVIL, [Point(0.5, 0.5, note=EVIL)])],
        x_ticks=[(0.5, EVIL)],
        diagonal=EVIL,
    )
    out += bars(title=EVIL, categories=[EVIL, "b"], series=[Bars(EVIL, [1, 2], notes=[EVIL, EVIL])])
    out += empty_chart(EVIL)
    assert "<script" not in out
    assert 'onload="' not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    parse(xy(title=EVIL, series=[Series(EVIL, [Point(0.5, 0.5, note=EVIL)])]))


def test_ticks_and_numbers() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 7, integer=True) == [0, 2, 4, 6, 8]
    assert nice_ticks(0, 1, integer=True)[-1] >= 1
    assert nice_ticks(0, 0) == nice_ticks(0, 1)
    assert (number(3.0), number(0.25), number(1 / 3)) == ("3", "0.25", "0.33")
