"""``sim://`` port URLs (found by :mod:`edge.ports` through the ``epr.ports`` entry point).

* ``sim://attach/<name>`` – a device registered in this process (see ``registry``).
* ``sim://scale/ad?loads=12.5,30&rate=10&realtime=1&seed=1&garbage=0.01`` – a new A&D
  scale playing the listed loads (kg), then streaming zero.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from edge.ports import Port
from firmware_sim import registry
from firmware_sim.scales.ad import ADScale
from firmware_sim.scales.script import Load


def open_sim_port(url: str, *, baudrate: int = 9600, timeout: float = 0.5) -> Port:
    parts = urlsplit(url)
    kind, path = parts.netloc, parts.path.strip("/")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if kind == "attach":
        return registry.lookup(path)
    if kind == "scale" and path == "ad":
        try:
            loads = [Load(Decimal(x)) for x in query.get("loads", "").split(",") if x]
        except InvalidOperation:
            raise ValueError(f"loads={query.get('loads')!r} is not a list of kg values") from None
        return ADScale(
            loads,
            rate_hz=float(query.get("rate", "10")),
            realtime=query.get("realtime", "1") != "0",
            timeout=timeout,
            seed=int(query.get("seed", "0")),
            garbage_rate=float(query.get("garbage", "0")),
        )
    raise ValueError(f"unknown simulated device {kind}/{path} (known: attach/<name>, scale/ad)")
