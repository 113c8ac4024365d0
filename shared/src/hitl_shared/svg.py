"""Small charts as inline SVG, rendered on the server: no JavaScript, no build step.

Two shapes cover the figures leads need: points with error bars on two numeric or
categorical axes (``xy_chart``: reliability diagrams, accuracy over time) and bars, grouped
or stacked (``bar_chart``: histograms, daily load). Every chart has a visible title, labelled
axes and a legend, an accessible name (``<title>``/``<desc>``, ``role="img"``) and a tooltip
(``<title>``) on each mark. Every piece of text is escaped. With nothing to plot a chart is a
plain sentence instead of an empty frame.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
TEXT = "#1d2330"
MUTED = "#667085"
GRID = "#e3e6eb"
AXIS = "#9aa1ad"

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies); review
# levels keep one colour on every chart.
LEVEL_COLOURS = {
    "auto": "#7a7f8a",
    "light": "#009e73",
    "full": "#0072b2",
    "manual": "#d55e00",
    "batch": "#cc79a7",
    "escalated": "#a0282d",
}
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7a7f8a")
MARKERS = ("circle", "square", "diamond", "triangle")
DASH = "\u2013"  # en dash, for ranges in labels

Format = Callable[[float], str]


def esc(value: object) -> str:
    """Text for SVG/HTML content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def colour_for(name: str, index: int) -> str:
    return LEVEL_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def number(value: float) -> str:
    """A short label: integers without decimals, others with at most two."""
    if math.isclose(value, round(value), abs_tol=1e-9):
        return str(round(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def empty_chart(message: str) -> str:
    return f'<p class="chart-empty" role="note">{esc(message)}</p>'


def nice_ticks(low: float, high: float, target: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, round(step))
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


@dataclass
class Point:
    x: float
    y: float
    low: float | None = None  # error bar, on the y scale
    high: float | None = None
    note: str = ""  # tooltip text


@dataclass
class Series:
    name: str
    # None breaks the connecting line (a period without data).
    points: Sequence[Point | None]
    colour: str | None = None
    line: bool = True
    dashed: bool = False


@dataclass
class Bars:
    name: str
    values: Sequence[float]
    colour: str | None = None
    notes: Sequence[str] | None = None  # tooltip per value


@dataclass
class Strip:
    """Counts drawn under an xy chart on the same x scale (items per reliability bin)."""

    label: str
    bins: Sequence[tuple[float, float]]
    counts: Sequence[Sequence[int]]  # per series, per bin


@dataclass
class _Frame:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    x_domain: tuple[float, float]
    y_domain: tuple[float, float]

    def sx(self, x: float) -> float:
        lo, hi = self.x_domain
        return self.left + (x - lo) / (hi - lo) * (self.right - self.left)

    def sy(self, y: float) -> float:
        lo, hi = self.y_domain
        return self.bottom - (y - lo) / (hi - lo) * (self.bottom - self.top)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _open(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    cid = esc(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" font-family="{esc(FONT)}" font-size="12" '
        f'fill="{TEXT}">',
        f'<title id="{cid}-title">{esc(title)}</title>',
        f'<desc id="{cid}-desc">{esc(description)}</desc>',
        f'<text class="chart-title" x="12" y="20" font-size="15" font-weight="600">'
        f"{esc(title)}</text>",
    ]


def _legend(entries: Sequence[tuple[str, str, str]], x: float, y: float, width: float) -> str:
    """Entries of (name, colour, kind) in rows from (x, y); kind is a marker, "bar" or "dash"."""
    parts = ['<g class="legend">']
    cx, cy = x, y
    for name, colour, kind in entries:
        size = 22 + 7 * len(name)
        if cx + size > x + width and cx > x:
            cx, cy = x, cy + 18
        if kind == "bar":
            parts.append(
                f'<rect x="{_f(cx)}" y="{_f(cy - 9)}" width="12" height="12" fill="{esc(colour)}"/>'
            )
        elif kind == "dash":
            parts.append(
                f'<line x1="{_f(cx)}" y1="{_f(cy - 3)}" x2="{_f(cx + 14)}" y2="{_f(cy - 3)}" '
                f'stroke="{esc(colour)}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
        else:
            parts.append(_marker(kind, cx + 6, cy - 3, colour))
        parts.append(f'<text x="{_f(cx + 18)}" y="{_f(cy)}">{esc(name)}</text>')
        cx += size
    parts.append("</g>")
    return "".join(parts)


def _legend_rows(entries: Sequence[tuple[str, str, str]], width: float) -> int:
    rows, used = 1, 0.0
    for name, _c, _k in entries:
        size = 22 + 7 * len(name)
        if used + size > width and used > 0:
            rows, used = rows + 1, 0.0
        used += size
    return rows


def _marker(kind: str, x: float, y: float, colour: str, r: float = 4.5) -> str:
    c = esc(colour)
    if kind == "square":
        return (
            f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" height="{_f(2 * r)}" '
            f'fill="{c}"/>'
        )
    if kind == "diamond":
        return (
            f'<path d="M{_f(x)} {_f(y - r - 1)}L{_f(x + r + 1)} {_f(y)}L{_f(x)} {_f(y + r + 1)}'
            f'L{_f(x - r - 1)} {_f(y)}Z" fill="{c}"/>'
        )
    if kind == "triangle":
        return (
            f'<path d="M{_f(x)} {_f(y - r - 1)}L{_f(x + r + 1)} {_f(y + r)}'
            f'L{_f(x - r - 1)} {_f(y + r)}Z" fill="{c}"/>'
        )
    return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" fill="{c}"/>'


def _y_axis(
    frame: _Frame, ticks: Sequence[float], fmt: Format, label: str, grid: bool = True
) -> list[str]:
    parts = ['<g class="y-axis">']
    for t in ticks:
        y = frame.sy(t)
        if grid:
            parts.append(
                f'<line x1="{_f(frame.left)}" y1="{_f(y)}" x2="{_f(frame.right)}" y2="{_f(y)}" '
                f'stroke="{GRID}"/>'
            )
        parts.append(
            f'<text x="{_f(frame.left - 6)}" y="{_f(y + 4)}" text-anchor="end" fill="{MUTED}">'
            f"{esc(fmt(t))}</text>"
        )
    parts.append(
        f'<line x1="{_f(frame.left)}" y1="{_f(frame.top)}" x2="{_f(frame.left)}" '
        f'y2="{_f(frame.bottom)}" stroke="{AXIS}"/>'
    )
    mid = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="axis-label" x="14" y="{_f(mid)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_f(mid)})">{esc(label)}</text>'
    )
    parts.append("</g>")
    return parts


def _x_label(frame: _Frame, label: str) -> str:
    return (
        f'<text class="axis-label" x="{_f((frame.left + frame.right) / 2)}" '
        f'y="{frame.height - 8}" text-anchor="middle">{esc(label)}</text>'
    )


def _thin(count: int, most: int) -> int:
    """Label every n-th category so at most ``most`` labels show."""
    return max(1, math.ceil(count / max(most, 1)))


def xy_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    empty_message: str,
    x_domain: tuple[float, float] = (0.0, 1.0),
    y_domain: tuple[float, float] = (0.0, 1.0),
    x_ticks: Sequence[tuple[float, str]] | None = None,
    x_format: Format = number,
    y_format: Format = number,
    diagonal: str | None = None,
    strip: Strip | None = None,
    width: int = 640,
    height: int = 380,
) -> str:
    """Points (with optional error bars and connecting lines) on two linear axes.

    ``x_ticks`` labels categories placed at integer x (time periods); ``diagonal`` draws and
    names the line y = x (a reliability diagram's perfect calibration).
    """
    if not any(p is not None for s in series for p in s.points):
        return empty_chart(empty_message)
    entries = [
        (s.name, s.colour or colour_for(s.name, i), MARKERS[i % len(MARKERS)])
        for i, s in enumerate(series)
    ]
    if diagonal:
        entries.append((diagonal, MUTED, "dash"))
    left, right = 62.0, width - 16.0
    legend_rows = _legend_rows(entries, right - left)
    top = 40.0 + 18 * legend_rows
    strip_h = 64.0 if strip else 0.0
    bottom = height - 46.0 - strip_h
    frame = _Frame(width, height, left, right, top, bottom, x_domain, y_domain)
    parts = _open(chart_id, title, description, width, height)
    parts.append(_legend(entries, left, 40.0, right - left))
    y_ticks = [t for t in nice_ticks(*y_domain) if y_domain[0] <= t <= y_domain[1]]
    parts += _y_axis(frame, y_ticks, y_format, y_label)

    # x axis: ticks under the plot (and under the strip, if any).
    axis_y = bottom + strip_h
    parts.append('<g class="x-axis">')
    parts.append(
        f'<line x1="{_f(left)}" y1="{_f(bottom)}" x2="{_f(right)}" y2="{_f(bottom)}" '
        f'stroke="{AXIS}"/>'
    )
    if x_ticks is None:
        ticks = [t for t in nice_ticks(*x_domain) if x_domain[0] <= t <= x_domain[1]]
        x_ticks = [(t, x_format(t)) for t in ticks]
    every = _thin(len(x_ticks), int((right - left) // 56))
    for n, (t, text) in enumerate(x_ticks):
        x = frame.sx(t)
        parts.append(
            f'<line x1="{_f(x)}" y1="{_f(axis_y)}" x2="{_f(x)}" y2="{_f(axis_y + 4)}" '
            f'stroke="{AXIS}"/>'
        )
        if n % every == 0:
            parts.append(
                f'<text x="{_f(x)}" y="{_f(axis_y + 17)}" text-anchor="middle" fill="{MUTED}">'
                f"{esc(text)}</text>"
            )
    parts.append("</g>")
    parts.append(_x_label(frame, x_label))

    if diagonal:
        lo = max(x_domain[0], y_domain[0])
        hi = min(x_domain[1], y_domain[1])
        parts.append(
            f'<line class="diagonal" x1="{_f(frame.sx(lo))}" y1="{_f(frame.sy(lo))}" '
            f'x2="{_f(frame.sx(hi))}" y2="{_f(frame.sy(hi))}" stroke="{MUTED}" '
            f'stroke-width="1.5" stroke-dasharray="4 3"><title>{esc(diagonal)}</title></line>'
        )
    if strip:
        parts += _strip(frame, strip, [e[1] for e in entries[: len(series)]], strip_h)

    for i, s in enumerate(series):
        colour = entries[i][1]
        kind = MARKERS[i % len(MARKERS)]
        parts.append(f'<g class="series" data-series="{esc(s.name)}">')
        if s.line:
            for run in _runs(s.points):
                if len(run) > 1:
                    coords = " ".join(f"{_f(frame.sx(p.x))},{_f(frame.sy(p.y))}" for p in run)
                    dash = ' stroke-dasharray="5 3"' if s.dashed else ""
                    parts.append(
                        f'<polyline points="{coords}" fill="none" stroke="{esc(colour)}" '
                        f'stroke-width="1.5" stroke-opacity="0.8"{dash}/>'
                    )
        for p in s.points:
            if p is None:
                continue
            x, y = frame.sx(p.x), frame.sy(p.y)
            parts.append(
                f'<g class="point" data-x="{esc(number(p.x))}" data-y="{esc(number(p.y))}">'
            )
            parts.append(f"<title>{esc(s.name)}: {esc(p.note or y_format(p.y))}</title>")
            if p.low is not None and p.high is not None:
                y1, y2 = frame.sy(p.low), frame.sy(p.high)
                parts.append(
                    f'<path class="error-bar" d="M{_f(x)} {_f(y1)}V{_f(y2)}'
                    f'M{_f(x - 4)} {_f(y1)}H{_f(x + 4)}M{_f(x - 4)} {_f(y2)}H{_f(x + 4)}" '
                    f'stroke="{esc(colour)}" stroke-width="1.2" fill="none"/>'
                )
            parts.append(_marker(kind, x, y, colour))
            parts.append("</g>")
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: Sequence[Point | None]) -> list[list[Point]]:
    runs: list[list[Point]] = [[]]
    for p in points:
        if p is None:
            runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def _strip(frame: _Frame, strip: Strip, colours: Sequence[str], height: float) -> list[str]:
    top = frame.bottom + 10
    bottom = frame.bottom + height - 6
    most = max((c for counts in strip.counts for c in counts), default=0) or 1
    groups = max(len(strip.counts), 1)
    parts = [
        '<g class="count-strip">',
        f'<text x="{_f(frame.left - 6)}" y="{_f((top + bottom) / 2 + 4)}" text-anchor="end" '
        f'fill="{MUTED}" font-size="11">{esc(strip.label)}</text>',
    ]
    for b, (lo, hi) in enumerate(strip.bins):
        x0, x1 = frame.sx(lo), frame.sx(hi)
        inner = (x1 - x0) * 0.8
        w = inner / groups
        for g, counts in enumerate(strip.counts):
            n = counts[b] if b < len(counts) else 0
            h = (bottom - top - 12) * n / most
            x = x0 + (x1 - x0) * 0.1 + g * w
            colour = esc(colours[g] if g < len(colours) else MUTED)
            parts.append(
                f'<rect x="{_f(x)}" y="{_f(bottom - h)}" width="{_f(max(w - 1, 1))}" '
                f'height="{_f(h)}" fill="{colour}" fill-opacity="0.55" data-count="{n}">'
                f"<title>{esc(number(lo))}{DASH}{esc(number(hi))}: {n}</title></rect>"
            )
            if n:
                parts.append(
                    f'<text x="{_f(x + w / 2)}" y="{_f(bottom - h - 2)}" text-anchor="middle" '
                    f'font-size="10" fill="{MUTED}">{n}</text>'
                )
    parts.append(
        f'<line x1="{_f(frame.left)}" y1="{_f(bottom)}" x2="{_f(frame.right)}" '
        f'y2="{_f(bottom)}" stroke="{AXIS}"/>'
    )
    parts.append("</g>")
    return parts


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    categories: Sequence[str],
    series: Sequence[Bars],
    empty_message: str,
    stacked: bool = False,
    value_format: Format = number,
    width: int = 640,
    height: int = 340,
) -> str:
    """Bars per category, one per series side by side or stacked; counts start at zero."""
    if not categories or not any(v > 0 for s in series for v in s.values):
        return empty_chart(empty_message)
    entries = [(s.name, s.colour or colour_for(s.name, i), "bar") for i, s in enumerate(series)]
    left, right = 62.0, width - 16.0
    top = 40.0 + 18 * _legend_rows(entries, right - left)
    bottom = height - 46.0
    n = len(categories)
    if stacked:
        heights = [sum(s.values[c] for s in series if c < len(s.values)) for c in range(n)]
    else:
        heights = [v for s in series for v in s.values]
    ticks = nice_ticks(0, max(heights), integer=True)
    frame = _Frame(width, height, left, right, top, bottom, (0, n), (0, ticks[-1]))
    parts = _open(chart_id, title, description, width, height)
    parts.append(_legend(entries, left, 40.0, right - left))
    parts += _y_axis(frame, ticks, value_format, y_label)
    band = (right - left) / n
    every = _thin(n, int((right - left) // 48))
    parts.append('<g class="x-axis">')
    parts.append(
        f'<line x1="{_f(left)}" y1="{_f(bottom)}" x2="{_f(right)}" y2="{_f(bottom)}" '
        f'stroke="{AXIS}"/>'
    )
    for c, name in enumerate(categories):
        if c % every == 0:
            parts.append(
                f'<text x="{_f(left + band * (c + 0.5))}" y="{_f(bottom + 17)}" '
                f'text-anchor="middle" font-size="11" fill="{MUTED}">{esc(name)}</text>'
            )
    parts.append("</g>")
    parts.append(_x_label(frame, x_label))
    groups = 1 if stacked else max(len(series), 1)
    # Bars no wider than 48 px (one day of data is a bar, not a wall), centred in their band.
    bar_w = min(band * 0.8 / groups, 48.0)
    pad = (band - bar_w * groups) / 2
    show_values = n * groups <= 40
    base = [0.0] * n
    for i, s in enumerate(series):
        colour = esc(entries[i][1])
        parts.append(f'<g class="series" data-series="{esc(s.name)}">')
        for c in range(n):
            v = s.values[c] if c < len(s.values) else 0
            if v <= 0:
                continue
            x = left + band * c + pad + (0 if stacked else i * bar_w)
            y0 = base[c] if stacked else 0.0
            y_top, y_bottom = frame.sy(y0 + v), frame.sy(y0)
            note = s.notes[c] if s.notes and c < len(s.notes) else value_format(v)
            parts.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(y_top)}" width="{_f(max(bar_w - 1, 1))}" '
                f'height="{_f(y_bottom - y_top)}" fill="{colour}" '
                f'data-category="{esc(categories[c])}" data-value="{esc(number(v))}">'
                f"<title>{esc(s.name)} · {esc(categories[c])}: {esc(note)}</title></rect>"
            )
            if show_values and not stacked:
                parts.append(
                    f'<text x="{_f(x + bar_w / 2)}" y="{_f(y_top - 3)}" text-anchor="middle" '
                    f'font-size="10" fill="{MUTED}">{esc(value_format(v))}</text>'
                )
            if stacked:
                base[c] += v
        parts.append("</g>")
    if stacked and n <= 40:
        parts.append('<g class="totals">')
        for c in range(n):
            if base[c] > 0:
                parts.append(
                    f'<text x="{_f(left + band * (c + 0.5))}" y="{_f(frame.sy(base[c]) - 3)}" '
                    f'text-anchor="middle" font-size="10" fill="{MUTED}">'
                    f"{esc(value_format(base[c]))}</text>"
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


__all__ = [
    "LEVEL_COLOURS",
    "Bars",
    "Point",
    "Series",
    "Strip",
    "bar_chart",
    "colour_for",
    "empty_chart",
    "esc",
    "nice_ticks",
    "number",
    "percent",
    "xy_chart",
]
