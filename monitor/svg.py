"""Server-rendered SVG plots: lines and points with axes, a legend and tooltips.

Every piece of text (series names, tooltips, axis labels) goes through ``escape``, so a dataset
named ``<script>`` is drawn as text; the result is marked safe only once it is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 40, 24, 40
LEGEND_WIDTH = 150
#: Points per line drawn with a marker (and its tooltip).
MAX_MARKERS = 150
PALETTE = ("#0d6efd", "#198754", "#dc3545", "#fd7e14", "#6f42c1", "#20c997", "#6c757d", "#d63384", "#0dcaf0")


@dataclass
class Series:
    """One line or point set; ``points`` are (x, y, tooltip)."""

    name: str
    points: list[tuple[float, float, str]] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)


def _span(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        return low - 1, high + 1
    return low, high


def plot(
    series: list[Series],
    *,
    title: str,
    x_label: str = "",  # " (log scale)" is added when the x axis is drawn in log scale
    y_label: str = "",
    lines: bool = True,
    x_format: Callable[[float], str] = lambda value: f"{value:.4g}",
) -> SafeString:
    """An SVG chart of ``series`` (an empty chart says so)."""
    xs = [x for one in series for x, _, _ in one.points]
    ys = [y for one in series for _, y, _ in one.points]
    parts = [
        f'<svg class="plot" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="14" class="plot-title">{escape(title)}</text>',
    ]
    if not xs:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data yet</text></svg>')
        return mark_safe("".join(parts))  # noqa: S308 — every text above is escaped
    # A positive axis spanning three decades or more (learning rates, regularisation strengths) is drawn
    # in log scale, else its small values pile up against the left axis.
    x_log = min(xs) > 0 and max(xs) / min(xs) >= 1000
    if x_log:
        xs = [math.log10(x) for x in xs]
        shown = x_format
        x_format = lambda value: shown(10**value)  # noqa: E731
    x_low, x_high = _span(xs)
    y_low, y_high = _span(ys)
    # Several series get a legend column right of the plot area (inside it, it hid the data); a single
    # series is named by the title.
    legend = len(series) > 1
    right = RIGHT + LEGEND_WIDTH if legend else RIGHT
    inner_w, inner_h = WIDTH - LEFT - right, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * inner_w

    def sy(y: float) -> float:
        return TOP + inner_h - (y - y_low) / (y_high - y_low) * inner_h

    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - right}" y2="{TOP + inner_h}" class="axis"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + inner_h}" class="axis"/>'
    )
    x_ticks = [x_low + (x_high - x_low) * tick / 4 for tick in range(5)]
    if x_log:
        # Decades: 0.01, 0.1, 1, ... (every other one past seven).
        decades = list(range(math.ceil(x_low), math.floor(x_high) + 1))
        x_ticks = decades[:: 1 + len(decades) // 8]
    elif all(float(x).is_integer() for x in xs):
        # Iterations, evaluations: whole-number ticks only (each of them on a short axis).
        if x_high - x_low <= 10:
            x_ticks = list(range(math.ceil(x_low), math.floor(x_high) + 1))
        else:
            x_ticks = sorted({round(x) for x in x_ticks if x_low <= round(x) <= x_high})
    for tick in range(5):
        y = y_low + (y_high - y_low) * tick / 4
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" class="tick">{escape(f"{y:.4g}")}</text>'
        )
    for x in x_ticks:
        parts.append(
            f'<text x="{sx(x):.1f}" y="{TOP + inner_h + 16}" text-anchor="middle" class="tick">'
            f"{escape(x_format(x))}</text>"
        )
    parts.append(
        f'<text x="{LEFT + inner_w / 2}" y="{HEIGHT - 4}" text-anchor="middle" class="tick">'
        f"{escape(x_label + (' (log scale)' if x_log else ''))}</text>"
    )
    parts.append(
        f'<text x="12" y="{TOP + inner_h / 2}" transform="rotate(-90 12 {TOP + inner_h / 2})" '
        f'text-anchor="middle" class="tick">{escape(y_label)}</text>'
    )
    on_top: list[str] = []
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        coords = [(sx(math.log10(x) if x_log else x), sy(y), tip) for x, y, tip in one.points]
        if lines and len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
                f"<title>{escape(one.name)}</title></polyline>"
            )
        # A long line carries no markers (a per-second staging curve would be hundreds of circles); the
        # highlighted points keep theirs.
        markers = not lines or len(coords) <= MAX_MARKERS
        for number, (x, y, tip) in enumerate(coords):
            if not markers and number not in one.highlight:
                continue
            if number in one.highlight:
                # Drawn last, so no later series' marker covers it.
                on_top.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#ffc107" stroke="#000" class="best">'
                    f"<title>{escape(tip)}</title></circle>"
                )
                continue
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(tip)}</title></circle>'
            )
        if legend:
            parts.append(
                f'<rect x="{WIDTH - LEGEND_WIDTH}" y="{TOP + 4 + index * 14}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{WIDTH - LEGEND_WIDTH + 14}" y="{TOP + 13 + index * 14}" class="legend">'
                f"{escape(one.name[:24])}</text>"
            )
    parts.extend(on_top)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text above is escaped
