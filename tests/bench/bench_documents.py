"""``make bench-documents``: how long a large statement takes as PDF and as XLSX.

A synthetic stored statement (``n`` contract lines over every category and stage, one
over-cap line per ten contract lines and as many held tickets, paid, with its hash) is
rendered the way the API renders it, in Russian. Each format is made once to warm up,
then three times; the best time counts. :func:`measure` is what another benchmark (the
API's) calls. Targets: 500 lines as PDF within 3 s, as XLSX within 1 s.
The last line is ``documents lines=<n> pdf_s=<s> xlsx_s=<s>``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from server.ledger.accounting import StoredStatement
from server.ledger.audit import canonical_json
from server.money.allocation import Portion
from server.money.amounts import line_amount
from server.money.documents import render_statement
from server.money.lines import HeldLine, Statement, StatementLine, UnpaidLine
from server.money.statements import sha256_hex

CATEGORIES = ("tyres", "used_oil", "batteries", "packaging_polymer", "packaging_glass")
STAGES = ("collection", "transport", "processing")
T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def synthetic_statement(n_lines: int) -> StoredStatement:
    """A paid statement of ``n_lines`` lines, as the ledger would store it."""
    lines = []
    for i in range(n_lines):
        tonnes = Decimal(1_000_000 + i * 7919) / Decimal(1_000_000)
        rate = Decimal("53082.00") + i
        lines.append(
            StatementLine(
                f"EPR-{i // 3:04d}",
                1,
                CATEGORIES[i % len(CATEGORIES)],
                STAGES[i % len(STAGES)],
                1 + i % 40,
                tonnes,
                rate,
                "KZT/t",
                None,
                rate,
                line_amount(tonnes, rate),
            )
        )
    over = tuple(
        UnpaidLine(ln.contract_id, ln.category, ln.stage, Portion.OVER_CAP, Decimal("1.5"))
        for ln in lines[::10]
    )
    held = tuple(
        HeldLine(
            f"rp-{i:04d}",
            i + 1,
            T0 + timedelta(hours=i),
            f"site-{i:04d}",
            CATEGORIES[i % len(CATEGORIES)],
            Decimal("0.0002"),
            (("implausible_weight", "open"),),
            ("collection",),
        )
        for i in range(max(1, n_lines // 10))
    )
    statement = Statement(
        contractor_bin="120440012349",
        contractor_name="Eco Tyre Recycling LLP",
        period="2026-03",
        lines=tuple(lines),
        over_cap=over,
        total_tonnes=sum((ln.tonnes for ln in lines), Decimal(0)),
        total_kzt=sum((ln.amount_kzt for ln in lines), Decimal("0.00")),
        held=held,
    )
    body = canonical_json(statement.canonical())
    return StoredStatement(
        id=7,
        run_id=1,
        contractor_bin=statement.contractor_bin,
        period=statement.period,
        kind="original",
        adjusts_id=None,
        status="paid",
        body=body,
        sha256=sha256_hex(body),
        total_kzt=statement.total_kzt,
        computed_at=T0,
        computed_by="ops",
        approved_at=T0 + timedelta(days=1),
        approved_by="head.of.payments",
        paid_at=T0 + timedelta(days=2),
        paid_by="treasury",
        payment_ref="PP-2026-0412",
    )


def _best(make: Callable[[], bytes], repeat: int) -> float:
    make()  # warm-up: imports, font files in the page cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        make()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(n_lines: int, *, repeat: int = 3, lang: str = "ru") -> tuple[float, float]:
    """Seconds to render an ``n_lines`` statement as PDF and as XLSX (best of ``repeat``)."""
    row = synthetic_statement(n_lines)
    base = "http://127.0.0.1:8000"
    pdf_s = _best(lambda: render_statement(row, fmt="pdf", lang=lang, base_url=base), repeat)
    xlsx_s = _best(lambda: render_statement(row, fmt="xlsx", lang=lang, base_url=base), repeat)
    return pdf_s, xlsx_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    pdf_s, xlsx_s = measure(args.lines, repeat=args.repeat)
    ok = pdf_s <= 3.0 and xlsx_s <= 1.0
    print(f"targets: pdf <= 3 s, xlsx <= 1 s: {'met' if ok else 'MISSED'}")
    print(f"documents lines={args.lines} pdf_s={pdf_s:.3f} xlsx_s={xlsx_s:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
