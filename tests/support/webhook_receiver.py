"""A webhook receiver on loopback for the sink tests: a real HTTP server (the standard library's)
that checks each batch's HMAC-SHA256 signature with the shared secret, keeps the batches, and can
refuse (answer 503) or go away entirely (its socket closed) and come back on the same port."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self, secret: str, port: int) -> None:
        self.secret = secret.encode()
        self.port = port
        self.bodies: list[bytes] = []  # every body accepted, raw
        self.bad_signatures = 0
        self.refused = 0
        self.refusing = False  # answer 503 without keeping the batch
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verifies(self, body: bytes, header: str) -> bool:
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            bodies = list(self.bodies)
        return [event for body in bodies for event in json.loads(body)["events"]]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                signature = self.headers.get("x-sealgate-signature", "")
                with receiver._lock:
                    if not receiver.verifies(body, signature):
                        receiver.bad_signatures += 1
                        status = 401
                    elif receiver.refusing:
                        receiver.refused += 1
                        status = 503
                    else:
                        receiver.bodies.append(body)
                        status = 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Gone: connections to the port are refused until ``start`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
