"""``sim://`` port URLs (found by :mod:`edge.ports` through the ``epr.ports`` entry point).

* ``sim://attach/<name>`` – a device registered in this process (see ``registry``).
* ``sim://<kind>/<model>?<params>`` – a new emulator from :mod:`firmware_sim.catalog`,
  e.g. ``sim://scale/ad?loads=12.5,30&rate=10&realtime=1&seed=1&garbage=0.01`` (an A&D
  scale playing the listed loads, then streaming zero), ``sim://scale/toledo?…``,
  ``sim://scale/mtsics?…``, ``sim://rfid/rdm6300?tags=1A0012D687``,
  ``sim://range/maxbotix?mm=1200&noise=5``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from edge.ports import Port
from firmware_sim import registry
from firmware_sim.catalog import build_device


def open_sim_port(url: str, *, baudrate: int = 9600, timeout: float = 0.5) -> Port:
    parts = urlsplit(url)
    kind, path = parts.netloc, parts.path.strip("/")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if kind == "attach":
        return registry.lookup(path)
    return build_device(f"{kind}/{path}", query, timeout=timeout)
