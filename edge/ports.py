"""pyserial-shaped ports, opened by URL.

``open_port`` understands what ``serial.serial_for_url`` does (``/dev/ttyUSB0``,
``socket://host:port``, ``loop://``, ``rfc2217://``) plus ``sim://…``, which is
handed to whatever package registered the ``sim`` name in the ``epr.ports`` entry
point group (``firmware_sim`` does). The edge package thus runs against emulators
without importing them, the way OctoPrint picks its virtual printer by port name.

pyserial is imported lazily: a container agent with only an HC-SR04 on GPIO never
loads it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

ENTRY_POINT_GROUP = "epr.ports"


class PortError(OSError):
    """A port URL that cannot be opened, naming the URL and the reason."""


@runtime_checkable
class Port(Protocol):
    """The subset of ``serial.Serial`` the drivers use."""

    timeout: float | None

    def readline(self) -> bytes:
        """One line including its terminator, or what arrived before the timeout (b"")."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


def open_port(url: str, *, baudrate: int = 9600, timeout: float = 0.5) -> Port:
    """Open ``url`` as a :class:`Port`."""
    scheme = urlsplit(url).scheme
    if scheme and scheme not in {"socket", "loop", "rfc2217", "spy", "hwgrep", "alt"}:
        return _open_plugin(scheme, url, baudrate=baudrate, timeout=timeout)
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - the [edge] extra installs it
        raise PortError(f"{url}: pyserial is not installed (pip install '.[edge]')") from exc
    try:
        port: Port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, ValueError) as exc:
        raise PortError(f"{url}: {exc}") from exc
    return port


def _open_plugin(scheme: str, url: str, *, baudrate: int, timeout: float) -> Port:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not found:
        raise PortError(
            f"{url}: no port provider for {scheme}:// (install the package that provides it,"
            " e.g. firmware_sim for sim://)"
        )
    opener = found[0].load()
    try:
        port: Port = opener(url, baudrate=baudrate, timeout=timeout)
    except (ValueError, KeyError) as exc:
        raise PortError(f"{url}: {exc}") from exc
    return port
