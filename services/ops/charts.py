"""Server-side SVG line charts (no scripts, no inline styles: the page's CSP forbids both).

    chart = line_chart({"preprocess.session.approved": [(t0, 3), (t1, 5)]}, start=t0, end=t1)
    chart.paths  -> [Series(name, points="x,y x,y", css="series-0", last=5)]

The template draws the axes and one <polyline> per series; colours come from ops.css classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 600, 200, 40, 20, 10
MAX_SERIES = 8


@dataclass(frozen=True)
class Series:
    name: str
    points: str
    css: str
    last: int
    peak: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int  # the value at the top of the y axis
    series: list[Series]
    ticks: list[tuple[float, str]]  # x position, label
    plot_left: int = PAD_LEFT
    plot_bottom: int = HEIGHT - PAD_BOTTOM
    plot_top: int = PAD_TOP


def _nice_top(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if peak <= step:
            return step
    return peak


def line_chart(data: dict[str, list[tuple[datetime, int]]], *, start: datetime, end: datetime) -> Chart:
    """One line per series that was ever above zero, the busiest MAX_SERIES (every queue is in the table)."""
    span = max((end - start).total_seconds(), 1.0)
    # Flat-zero lines would hide each other along the axis: an empty queue is not drawn.
    moving = {name: points for name, points in data.items() if any(v for _, v in points)}
    busiest = sorted(moving.items(), key=lambda kv: (-max(v for _, v in kv[1]), kv[0]))[:MAX_SERIES]
    peak = max((v for _, points in busiest for _, v in points), default=0)
    top = _nice_top(max(peak, 1))
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP

    def xy(at: datetime, value: int) -> str:
        x = PAD_LEFT + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)
        y = PAD_TOP + plot_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    series = [
        Series(
            name=name,
            points=" ".join(xy(at, v) for at, v in sorted(points)),
            css=f"series-{i}",
            last=sorted(points)[-1][1] if points else 0,
            peak=max((v for _, v in points), default=0),
        )
        for i, (name, points) in enumerate(busiest)
    ]
    ticks = [
        (PAD_LEFT + plot_w * f, f"-{round((1 - f) * span / 60)} min" if f < 1 else "now")
        for f in (0, 0.25, 0.5, 0.75, 1)
    ]
    return Chart(WIDTH, HEIGHT, top, series, ticks)
