"""Bar charts as server-rendered SVG: numbers in, the bars' geometry out (pure).

The template draws the rectangles (``templates/_chart.html``); nothing here is markup, so every
label goes through the template's escaping. No script draws anything.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 140
LABEL = 18  # room under the bars for the first and last day


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: its day and value
    value: float


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    top: str  # the largest value, as shown
    first: str
    last: str
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def base(self) -> int:
        return self.height - LABEL


def bars(title: str, points: list[tuple[str, float]], unit: str = "") -> Chart:
    """A chart of ``points`` (label, value), one bar each, scaled to the largest value."""
    top = max((v for _, v in points), default=0.0)
    area = HEIGHT - LABEL - 4
    step = WIDTH / max(1, len(points))
    width = max(1.0, step * 0.8)
    drawn = []
    for index, (label, value) in enumerate(points):
        height = 0.0 if top <= 0 else area * value / top
        drawn.append(
            Bar(
                x=round(index * step + (step - width) / 2, 2),
                y=round(HEIGHT - LABEL - height, 2),
                width=round(width, 2),
                height=round(height, 2),
                label=f"{label}: {show(value, unit)}",
                value=value,
            )
        )
    return Chart(
        title=title,
        bars=drawn,
        top=show(top, unit),
        first=points[0][0] if points else "",
        last=points[-1][0] if points else "",
    )


def show(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    return f"{value:,.0f}"
