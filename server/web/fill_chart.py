"""A container's fill history as a server-rendered SVG: hourly level (last reading,
with the hour's minimum–maximum band), emptied events, the threshold and the
forecast path to it. No script, no external request: the page works offline and
under the strict content security policy."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape
from typing import Final

from server.logistics.history import ContainerDetail
from server.money.amounts import LOCAL_TZ

WIDTH: Final = 760
HEIGHT: Final = 260
LEFT: Final = 40
RIGHT: Final = 12
TOP: Final = 12
BOTTOM: Final = 28


def svg(detail: ContainerDetail, *, now: datetime, labels: dict[str, str]) -> str:
    """The chart; ``labels`` gives the translated words (``threshold``, ``emptied``,
    ``forecast``, ``title``)."""
    f = detail.forecast
    ahead = min(len(f.path), 96) if f.measured_at is not None else 0
    start = detail.since
    end = max(now, f.measured_at + timedelta(hours=ahead) if f.measured_at else now)
    span = max((end - start).total_seconds(), 3600.0)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    def y(pct: float) -> float:
        return TOP + plot_h * (1 - min(max(pct, 0.0), 110.0) / 110.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fill-chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(labels["title"])}">'
    ]
    for pct in (0, 25, 50, 75, 100):
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(pct):.1f}" y2="{y(pct):.1f}"'
            ' stroke="#d9dee2" stroke-width="1"/>'
            f'<text x="{LEFT - 4}" y="{y(pct) + 4:.1f}" text-anchor="end" font-size="10"'
            f' fill="#5f6b73">{pct}%</text>'
        )
    day = start.astimezone(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    step = 1 if span <= 8 * 86400 else 2
    while day <= end:
        if day >= start:
            out.append(
                f'<text x="{x(day):.1f}" y="{HEIGHT - 8}" font-size="10" fill="#5f6b73"'
                f' text-anchor="middle">{day.strftime("%d.%m")}</text>'
            )
        day += timedelta(days=step)
    if detail.points:
        band = [f"{x(p.hour):.1f},{y(p.high):.1f}" for p in detail.points]
        band += [f"{x(p.hour):.1f},{y(p.low):.1f}" for p in reversed(detail.points)]
        out.append(f'<polygon class="band" points="{" ".join(band)}" fill="#cfe0f3"/>')
        line = " ".join(
            f"{x(p.hour + timedelta(hours=1)):.1f},{y(p.last):.1f}" for p in detail.points
        )
        out.append(
            f'<polyline class="level" points="{line}" fill="none" stroke="#0b5cad"'
            ' stroke-width="1.6"/>'
        )
    threshold = detail.threshold
    out.append(
        f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold):.1f}"'
        f' y2="{y(threshold):.1f}" stroke="#b3261e" stroke-dasharray="4 3"/>'
        f'<text x="{WIDTH - RIGHT}" y="{y(threshold) - 3:.1f}" text-anchor="end" font-size="10"'
        f' fill="#b3261e">{escape(labels["threshold"])} {threshold:g}%</text>'
    )
    for e in detail.events:
        if e.event != "emptied":
            continue
        ex = x(e.measured_at)
        out.append(
            f'<line class="emptied" x1="{ex:.1f}" x2="{ex:.1f}" y1="{TOP}" y2="{TOP + plot_h}"'
            ' stroke="#1b7f3b" stroke-width="1"><title>'
            f"{escape(labels['emptied'])} {e.measured_at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}"
            "</title></line>"
        )
    if f.measured_at is not None and f.level is not None and ahead:
        pts = [f"{x(f.measured_at):.1f},{y(f.level):.1f}"] + [
            f"{x(f.measured_at + timedelta(hours=i + 1)):.1f},{y(v):.1f}"
            for i, v in enumerate(f.path[:ahead])
        ]
        out.append(
            f'<polyline class="forecast" points="{" ".join(pts)}" fill="none" stroke="#9a6700"'
            ' stroke-width="1.6" stroke-dasharray="5 3"/>'
        )
        if not math.isinf(f.hours):
            at = now + timedelta(hours=f.hours)
            if at <= end:
                out.append(
                    f'<circle class="predicted" cx="{x(at):.1f}" cy="{y(threshold):.1f}" r="4"'
                    f' fill="#9a6700"><title>{escape(labels["forecast"])}'
                    f" {at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}</title></circle>"
                )
    nx = x(now)
    out.append(
        f'<line x1="{nx:.1f}" x2="{nx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#1d2327"'
        ' stroke-width="0.8" stroke-dasharray="2 2"/>'
    )
    out.append("</svg>")
    return "".join(out)
