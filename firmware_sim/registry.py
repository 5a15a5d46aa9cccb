"""Emulators registered by name in this process, for ``sim://attach/<name>``.

A demo or test builds a scripted device, registers it, and hands the agent the URL;
the agent opens it through :func:`edge.ports.open_port` exactly as it would a tty.
"""

from __future__ import annotations

import threading

from edge.ports import Port

_devices: dict[str, Port] = {}
_lock = threading.Lock()


def register(name: str, device: Port) -> str:
    """Register ``device``; returns its ``sim://attach/<name>`` URL."""
    with _lock:
        _devices[name] = device
    return f"sim://attach/{name}"


def lookup(name: str) -> Port:
    with _lock:
        try:
            return _devices[name]
        except KeyError:
            raise KeyError(f"no simulated device registered as {name!r}") from None


def unregister(name: str) -> None:
    with _lock:
        _devices.pop(name, None)
