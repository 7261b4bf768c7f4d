"""Inline SVG charts for the report: a bar chart and a multi-series line chart. Pure (strings out, no JS).

Hand-drawn rather than a plotting library: two chart kinds, fixed layout, and the HTML must open anywhere (an
operator's browser offline, a mail attachment). Every label is XML-escaped; each chart carries ``role="img"``, a
``<title>`` and ``<desc>`` for screen readers, and the numbers also appear in the report's tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

PALETTE = ("#1f6fb2", "#e0782b", "#3a9a4a", "#c0392b", "#7d5ba6", "#8c6d31")
_FONT = 'font-family="sans-serif" font-size="11"'


def axis_steps(value: float) -> tuple[float, int]:
    """The y axis for counts up to ``value``: (tick step, number of steps), a step of 1, 2 or 5 times a power of
    ten and at most five steps, so that every tick is a round whole number (an all-zero chart: one step of 1)."""
    magnitude = 1.0
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            steps = math.ceil(value / step)
            if steps <= 5:
                return step, max(1, steps)
        magnitude *= 10


def nice_max(value: float) -> float:
    """The top of the y axis for ``value``."""
    step, steps = axis_steps(value)
    return step * steps


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _frame(title: str, desc: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="chart">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>" + "".join(body) + "</svg>"
    )


def _left_margin(top_value: float) -> int:
    """Room for the widest tick label (about 7 px a character at 11 px)."""
    return max(36, 7 * len(_number(top_value)) + 12)


def _axis(left: int, top: int, plot_w: int, plot_h: int, value: float) -> list[str]:
    step, steps = axis_steps(value)
    parts = []
    for i in range(steps + 1):
        y = top + plot_h - plot_h * i / steps
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_number(step * i)}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>')
    return parts


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], width: int = 560, height: int = 260) -> str:
    """Vertical bars, one per label, value written above each bar."""
    highest = max(values, default=0)
    top_value = nice_max(highest)
    left, top, bottom = _left_margin(top_value), 24, 30
    plot_w, plot_h = width - left - 16, height - top - bottom
    slot = plot_w / max(1, len(values))
    body = [f'<text x="{width / 2}" y="14" text-anchor="middle" {_FONT} font-weight="bold">{escape(title)}</text>']
    body += _axis(left, top, plot_w, plot_h, highest)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top_value
        if value > 0:  # a small count beside a large one stays visible
            h = max(h, 1.5)
        x = left + i * slot + slot * 0.15
        y = top + plot_h - h
        color = PALETTE[i % len(PALETTE)]
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(label)}: {_number(value)}</title></rect>"
        )
        body.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle" {_FONT}>{_number(value)}</text>'
        )
        body.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>'
            f"{escape(label)}</text>"
        )
    desc = "; ".join(f"{label}: {_number(value)}" for label, value in zip(labels, values, strict=True))
    return _frame(title, desc, width, height, body)


def line_chart(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], width: int = 640, height: int = 300
) -> str:
    """One line per series over the same labels (the months), with a legend under the plot."""
    highest = max((v for values in series.values() for v in values), default=0)
    top_value = nice_max(highest)
    left, top, bottom = _left_margin(top_value), 24, 56
    plot_w, plot_h = width - left - 16, height - top - bottom
    slot = plot_w / max(1, len(labels))  # each point in the middle of its month's slot
    body = [f'<text x="{width / 2}" y="14" text-anchor="middle" {_FONT} font-weight="bold">{escape(title)}</text>']
    body += _axis(left, top, plot_w, plot_h, highest)
    for i, label in enumerate(labels):
        body.append(
            f'<text x="{left + (i + 0.5) * slot:.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>'
            f"{escape(label)}</text>"
        )
    for n, (name, values) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        points = [(left + (i + 0.5) * slot, top + plot_h - plot_h * v / top_value) for i, v in enumerate(values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, values, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)}, {escape(label)}: {_number(value)}</title></circle>"
            )
        lx = left + n * 150
        ly = top + plot_h + 36
        body.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="12" fill="{color}"/>')
        body.append(f'<text x="{lx + 16}" y="{ly + 1}" {_FONT}>{escape(name)}</text>')
    desc = "; ".join(
        f"{name}: " + ", ".join(f"{label} {_number(v)}" for label, v in zip(labels, values, strict=True))
        for name, values in series.items()
    )
    return _frame(title, desc, width, height, body)
