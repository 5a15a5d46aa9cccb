"""Statement previews and tonnage without a contract rendered for a terminal (rich
tables). Amounts never wrap; column titles come from the caller's ``label`` (message
id -> text in the command's language; this part speaks no language of its own)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Final

from rich.console import Console
from rich.table import Table

from server.money.lines import Statement


def money(value: Decimal) -> str:
    """Tenge with thin grouping: 1 234 567.89."""
    return f"{value:,.2f}".replace(",", " ")


def tonnes_str(value: Decimal) -> str:
    return f"{value:,.3f}".replace(",", " ")


#: English titles, for callers without a language (the demo).
ENGLISH: Final = {
    "cli.col.contract": "contract",
    "cli.col.category": "category",
    "cli.col.stage": "stage",
    "cli.col.tickets": "tickets",
    "cli.col.tonnes": "tonnes",
    "cli.col.rate_kzt_t": "rate KZT/t",
    "cli.col.amount_kzt": "amount KZT",
    "cli.total": "total",
}
NUMERIC: Final = frozenset({"cli.col.tickets", "cli.col.tonnes", "cli.col.rate_kzt_t",
                            "cli.col.amount_kzt"})  # fmt: skip


def print_statements(
    statements: Sequence[Statement],
    console: Console | None = None,
    label: Callable[[str], str] = ENGLISH.__getitem__,
) -> None:
    console = console or Console()
    if not statements:
        console.print("[yellow]no statements: no contract covers this period[/]")
        return
    for st in statements:
        table = Table(
            title=f"{st.contractor_name} (BIN {st.contractor_bin}) — {st.period}",
            title_justify="left",
        )
        for col in (
            "cli.col.contract",
            "cli.col.category",
            "cli.col.stage",
            "cli.col.tickets",
            "cli.col.tonnes",
            "cli.col.rate_kzt_t",
            "cli.col.amount_kzt",
        ):
            if col in NUMERIC:
                table.add_column(label(col), justify="right", no_wrap=True)
            else:
                table.add_column(label(col), overflow="fold")
        for ln in st.lines:
            rate = money(ln.rate_kzt_per_t)
            if ln.rate_unit == "MRP/t" and ln.mrp_kzt is not None:
                rate = f"{ln.rate} MRP × {money(ln.mrp_kzt)} = {rate}"
            table.add_row(
                f"{ln.contract_id} v{ln.version}",
                ln.category,
                ln.stage,
                str(ln.tickets),
                tonnes_str(ln.tonnes),
                rate,
                money(ln.amount_kzt),
            )
        for u in st.over_cap:
            table.add_row(
                f"{u.contract_id or '—'}",
                u.category,
                u.stage,
                "",
                tonnes_str(u.tonnes),
                "",
                f"[yellow]{u.reason.value.replace('_', ' ')}, unpaid[/]",
            )
        for h in st.held:
            reasons = ", ".join(r.replace("_", " ") for r, _ in h.reasons)
            table.add_row(
                f"{h.device_id}:{h.seq}",
                h.category,
                ",".join(h.stages),
                "1",
                tonnes_str(h.tonnes),
                "",
                f"[red]held ({h.status}): {reasons}[/]",
            )
        table.add_section()
        table.add_row(
            label("cli.total"),
            "",
            "",
            "",
            tonnes_str(st.total_tonnes),
            "",
            f"[bold]{money(st.total_kzt)}[/]",
        )
        console.print(table)
        console.print(f"  statement sha256 {st.hash}\n", style="dim")


def print_unattributed(
    unattributed: Mapping[tuple[str, str, str], Sequence[int]],
    period: str,
    console: Console | None = None,
) -> None:
    """Tonnage no contract covers (no statement shows it): for the operator."""
    console = console or Console()
    rows = sorted((k, v) for k, v in unattributed.items() if k[2] == period and v[0] > 0)
    if not rows:
        return
    table = Table(title=f"no contract — {period}", title_justify="left")
    for col in ("stage", "category", "tickets", "tonnes"):
        table.add_column(col, justify="right" if col in ("tickets", "tonnes") else "left")
    for (stage, category, _), (grams, count) in rows:
        table.add_row(stage, category, str(count), tonnes_str(Decimal(grams) / 1_000_000))
    console.print(table)
