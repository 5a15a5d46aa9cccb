"""Statements rendered for a terminal (rich tables)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from server.payments import Statement


def money(value: Decimal) -> str:
    """Tenge with thin grouping: 1 234 567.89."""
    return f"{value:,.2f}".replace(",", " ")


def tonnes_str(value: Decimal) -> str:
    return f"{value:,.3f}".replace(",", " ")


def print_statements(statements: Sequence[Statement], console: Console | None = None) -> None:
    console = console or Console()
    if not statements:
        console.print("[yellow]no statements: no contract covers this period[/]")
        return
    for st in statements:
        table = Table(
            title=f"{st.contractor_name} (BIN {st.contractor_bin}) — {st.period}",
            title_justify="left",
        )
        for col, justify in (
            ("contract", "left"),
            ("category", "left"),
            ("stage", "left"),
            ("tickets", "right"),
            ("tonnes", "right"),
            ("rate KZT/t", "right"),
            ("amount KZT", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for ln in st.lines:
            table.add_row(
                f"{ln.contract_id} v{ln.version}",
                ln.category,
                ln.stage,
                str(ln.tickets),
                tonnes_str(ln.tonnes),
                money(ln.rate_kzt_per_t),
                money(ln.amount_kzt),
            )
        for u in st.over_cap:
            table.add_row(
                f"{u.contract_id or '—'}",
                u.category,
                u.stage,
                str(u.tickets),
                tonnes_str(u.tonnes),
                "",
                f"[yellow]{u.reason.value.replace('_', ' ')}, unpaid[/]",
            )
        table.add_section()
        table.add_row(
            "total", "", "", "", tonnes_str(st.total_tonnes), "", f"[bold]{money(st.total_kzt)}[/]"
        )
        console.print(table)
        console.print(f"  statement sha256 {st.hash}\n", style="dim")
