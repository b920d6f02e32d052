"""A loopback TCP proxy the test can cut, slow down or freeze. Cut: every open connection is
closed and new ones are refused until it is restored. Slow (``delay``): every chunk the server
sends waits that long first. Frozen: connections stay open and new ones are accepted, but
nothing is passed on either way until it thaws (a server that hangs). It stands in front of the
shared PostgreSQL server so a test can make the database go down, slow or silent without
stopping a server other engineers use. Every wait is bounded by the test: ``stop`` ends it.

Given several targets it is a round-robin load balancer without session affinity: each new
connection goes to the next target in turn, and ``connections`` counts what each one got
(test_scale_out.py puts three gateway replicas behind it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

POLL_SECONDS = 0.01


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *more: tuple[str, int]) -> None:
        self._targets = [(target_host, target_port), *more]
        self.connections = [0] * len(self._targets)  # accepted connections sent to each target
        self._turn = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False
        self.delay = 0.0  # seconds each chunk from the server waits
        self._thawed = threading.Event()
        self._thawed.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            index = self._turn % len(self._targets)
            self._turn += 1
            self.connections[index] += 1
            try:
                upstream = socket.create_connection(self._targets[index], timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, answers), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while True:
                self._hold()
                data = source.recv(65536)
                if not data:
                    break
                if answers and self.delay:
                    time.sleep(self.delay)
                self._hold()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
                with self._lock:
                    self._open.discard(s)

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._cut = False

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def _hold(self) -> None:
        while not self._thawed.wait(POLL_SECONDS):
            if self._stopped or self._cut:
                raise OSError("proxy stopped while frozen")

    def stop(self) -> None:
        self._stopped = True
        self._thawed.set()
        self.cut()
        self._listener.close()
