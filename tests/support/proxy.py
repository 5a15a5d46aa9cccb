"""A TCP proxy a test controls: the network between devices and the broker.

Every client connection is relayed to ``target``; :meth:`TcpProxy.cut` drops every
open connection at once and refuses new ones (a cellular outage, a cut cable) until
:meth:`TcpProxy.restore`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._server = socket.create_server((host, 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = threading.Event()
        self._stop = threading.Event()
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://{self.target[0]}:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until :meth:`restore`."""
        self._cut.set()
        self.cuts += 1
        self._close_all()

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        self._close_all()
        self._thread.join(timeout=5)
        self._server.close()

    def _close_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()  # the broker is down: so is the device's connection
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(
                target=self._relay, args=(client, upstream), name="tcp-relay", daemon=True
            ).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                if self._stop.is_set():
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except (OSError, ValueError):
            return  # cut, or the other side went away
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))
