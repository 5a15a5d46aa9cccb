"""Serve an emulator over TCP or a pseudo-terminal, so the real agent runs unchanged.

* :class:`PortServer`: the agent opens ``socket://host:port`` (pyserial's socket URL).
* :class:`PtyServer`: the agent opens ``/dev/pts/N`` as a serial port, exactly like a
  USB adapter's ``/dev/ttyUSB0``; termios settings (baud rate…) are accepted and
  ignored, as a pty does.

One client at a time (a serial line has one end); bytes the client writes go to the
device's ``write``, what the device produces goes to the client. A device that
raises ``OSError`` (a disconnect fault) makes a TCP server cut its client, who may
reconnect; the device keeps its state, like a real indicator.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import tty
from typing import Protocol

log = logging.getLogger(__name__)


class ServedDevice(Protocol):
    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def readline(self) -> bytes: ...


def _next_output(device: ServedDevice) -> bytes:
    chunk = getattr(device, "read_chunk", None)
    if chunk is not None:
        data: bytes = chunk()
        return data
    return device.readline()


class PortServer:
    def __init__(self, device: ServedDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: socket.socket | None = None
        #: Clients accepted so far (a reconnecting agent shows up here).
        self.connections = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    @property
    def client_connected(self) -> bool:
        return self._client is not None

    def start(self) -> PortServer:
        self._thread = threading.Thread(target=self._serve, name="sim-port", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.drop_client()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def drop_client(self) -> None:
        """Cut the line (a disconnect fault)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("client already gone")
            client.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._client = client
            self.connections += 1
            client.settimeout(0.0)
            self._pump(client)

    def _pump(self, client: socket.socket) -> None:
        while not self._stop.is_set() and self._client is client:
            try:
                data: bytes | None = client.recv(256)
            except BlockingIOError:
                data = None  # nothing from the agent this turn
            except OSError:
                break
            if data == b"":
                break
            if data:
                self.device.write(data)
            try:
                out = _next_output(self.device)
            except OSError as exc:
                log.info("device dropped the line: %s", exc)
                break
            if not out:
                continue
            try:
                client.sendall(out)
            except OSError:
                break
        if self._client is client:
            self.drop_client()


class PtyServer:
    """The device on the master side of a pseudo-terminal; :attr:`path` is the tty to open."""

    def __init__(self, device: ServedDevice) -> None:
        self.device = device
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as on a UART
        # Nobody reading the tty must not stall the device: like a UART, bytes are lost.
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PtyServer:
        self._thread = threading.Thread(target=self._pump, name="sim-pty", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                log.debug("pty fd already closed")

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0)
            if ready:
                try:
                    data = os.read(self._master, 256)
                except OSError:
                    return
                self.device.write(data)
            try:
                out = _next_output(self.device)
            except OSError as exc:
                # A pty cannot be "unplugged"; the fault shows as a gap in the stream.
                log.info("device fault on pty: %s", exc)
                continue
            if out:
                try:
                    os.write(self._master, out)
                except BlockingIOError:
                    log.debug("pty buffer full, %d bytes lost", len(out))
                except OSError:
                    return
