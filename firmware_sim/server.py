"""Serve an emulator over TCP, so an agent reaches it as ``socket://host:port``.

One client at a time (a serial line has one end); bytes the client writes go to the
device's ``write``, lines the device produces go to the client. A client that
disconnects can reconnect; the device keeps its state, like a real indicator.
"""

from __future__ import annotations

import logging
import socket
import threading

from edge.ports import Port

log = logging.getLogger(__name__)


class PortServer:
    def __init__(self, device: Port, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

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
            client.settimeout(0.0)
            self._pump(client)

    def _pump(self, client: socket.socket) -> None:
        while not self._stop.is_set() and self._client is client:
            try:
                data = client.recv(256)
                if data == b"":
                    break
                self.device.write(data)
            except BlockingIOError:
                pass
            except OSError:
                break
            line = self.device.readline()
            if not line:
                continue
            try:
                client.sendall(line)
            except OSError:
                break
        if self._client is client:
            self.drop_client()
