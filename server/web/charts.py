"""Charts drawn on the server as SVG: no script, no library, nothing fetched.

A chart is markup in the page, so it works offline and prints; it carries a ``<title>``
and a ``<desc>`` (what a screen reader announces) and writes its figures as text
labels, so nothing is known only from a bar's length. Coordinates are computed in
``Decimal`` (the figures are exact decimals; no float touches them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from markupsafe import Markup, escape

WIDTH: Final = 720
HEIGHT: Final = 280
LEFT: Final = 96
RIGHT: Final = 16
TOP: Final = 28
BOTTOM: Final = 26


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    """Shown under the bar (e.g. ``03``)."""
    paid: Decimal
    over: Decimal
    to_date: Decimal
    """Running total of ``paid``, drawn as a line against the cap."""


def _n(x: Decimal) -> str:
    return format(x.quantize(Decimal("0.1")), "f")


def cap_chart(
    bars: Sequence[Bar],
    cap: Decimal,
    *,
    title: str,
    desc: str,
    legend: tuple[str, str, str, str],
    number: Callable[[Decimal], str],
    chart_id: str,
) -> Markup:
    """Monthly bars (paid, and over the cap on top) with the paid-to-date line and the
    cap as a dashed line, all on one tonnes axis. ``legend``: labels for paid, over
    cap, paid to date and the cap (the page shows them as a legend in HTML, where long
    words wrap; here they name each bar's parts); ``number`` formats a tonnes figure
    for the page's language."""
    top = max([cap, *(b.paid + b.over for b in bars), *(b.to_date for b in bars), Decimal(1)])
    scale_max = top * Decimal("1.1")
    plot_w = Decimal(WIDTH - LEFT - RIGHT)
    plot_h = Decimal(HEIGHT - TOP - BOTTOM)
    base = Decimal(TOP) + plot_h

    def y(value: Decimal) -> Decimal:
        return base - value * plot_h / scale_max

    slot = plot_w / max(len(bars), 1)
    bar_w = slot * Decimal("0.6")
    e = escape
    out = [
        f'<svg class="chart" id="{e(chart_id)}" role="img" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' aria-labelledby="{e(chart_id)}-title {e(chart_id)}-desc"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{e(chart_id)}-title">{e(title)}</title>',
        f'<desc id="{e(chart_id)}-desc">{e(desc)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{_n(base)}" x2="{WIDTH - RIGHT}" y2="{_n(base)}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{_n(base)}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{_n(base)}" text-anchor="end">0</text>',
    ]
    points = []
    for i, b in enumerate(bars):
        x = Decimal(LEFT) + slot * i + (slot - bar_w) / 2
        mid = Decimal(LEFT) + slot * i + slot / 2
        paid_top = y(b.paid)
        over_top = y(b.paid + b.over)
        out.append(
            f'<rect class="paid" x="{_n(x)}" y="{_n(paid_top)}" width="{_n(bar_w)}"'
            f' height="{_n(base - paid_top)}"><title>{e(b.label)}: {e(legend[0])}'
            f" {e(number(b.paid))}</title></rect>"
        )
        if b.over > 0:
            out.append(
                f'<rect class="over" x="{_n(x)}" y="{_n(over_top)}" width="{_n(bar_w)}"'
                f' height="{_n(paid_top - over_top)}"><title>{e(b.label)}: {e(legend[1])}'
                f" {e(number(b.over))}</title></rect>"
            )
        if b.paid + b.over > 0:
            out.append(
                f'<text class="value" x="{_n(mid)}" y="{_n(over_top - 4)}"'
                f' text-anchor="middle">{e(number(b.paid + b.over))}</text>'
            )
        out.append(
            f'<text class="tick" x="{_n(mid)}" y="{_n(base + 16)}"'
            f' text-anchor="middle">{e(b.label)}</text>'
        )
        points.append(f"{_n(mid)},{_n(y(b.to_date))}")
    if points:
        out.append(f'<polyline class="to-date" points="{" ".join(points)}"/>')
    cap_y = _n(y(cap))
    out += [
        f'<line class="cap" x1="{LEFT}" y1="{cap_y}" x2="{WIDTH - RIGHT}" y2="{cap_y}"/>',
        f'<text class="cap-label" x="{LEFT - 6}" y="{cap_y}" text-anchor="end">'
        f"{e(number(cap))}</text>",
    ]
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text and attribute is escaped above
