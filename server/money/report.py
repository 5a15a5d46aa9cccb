"""Statements, holds and verification results rendered for a terminal (rich tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from server.ledger.accounting import StoredStatement
from server.money.hold_rules import REASONS
from server.money.holds import HoldView
from server.money.lines import Statement


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
            "total", "", "", "", tonnes_str(st.total_tonnes), "", f"[bold]{money(st.total_kzt)}[/]"
        )
        console.print(table)
        console.print(f"  statement sha256 {st.hash}\n", style="dim")


def print_stored(rows: Sequence[StoredStatement], console: Console | None = None) -> None:
    console = console or Console()
    if not rows:
        console.print("[yellow]no stored statements[/]")
        return
    table = Table(title="stored statements", title_justify="left")
    cols = (
        "id",
        "period",
        "contractor",
        "kind",
        "status",
        "total KZT",
        "sha256",
        "computed/approved/paid by",
    )
    for col in cols:
        table.add_column(col, justify="right" if col in ("id", "total KZT") else "left")
    for r in rows:
        kind = r.kind if r.adjusts_id is None else f"{r.kind} of {r.adjusts_id}"
        by = " / ".join(who or "-" for who in (r.computed_by, r.approved_by, r.paid_by))
        table.add_row(
            str(r.id),
            r.period,
            r.contractor_bin,
            kind,
            r.status,
            money(r.total_kzt),
            r.sha256[:16] + "…",
            by,
        )
    console.print(table)


def print_holds(holds: Sequence[HoldView], console: Console | None = None) -> None:
    console = console or Console()
    if not holds:
        console.print("[green]no holds[/]")
        return
    table = Table(title="holds", title_justify="left")
    for col in ("hold", "ticket", "weighed at", "site", "category", "kg", "reason", "status"):
        table.add_column(col)
    for h in holds:
        status = h.status
        if h.decided_by:
            status += f" by {h.decided_by}: {h.decision_reason}"
        table.add_row(
            str(h.hold_id),
            f"{h.device_id}:{h.seq}",
            h.weighed_at.strftime("%Y-%m-%d %H:%M"),
            h.site_id,
            h.category,
            format(Decimal(h.net_g) / 1000, "f"),
            f"{REASONS.get(h.reason, h.reason)} ({h.detail})",
            status,
        )
    console.print(table)


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
