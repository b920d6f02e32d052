"""`python -m bench.otlp_sink PORT`: an OTLP/HTTP endpoint on 127.0.0.1 for the observed
Sealgate target (`sealgate-observed`). It reads each export and answers 200 with an empty
``Export*ServiceResponse`` (which encodes as zero bytes), so the gateway's exporter does all the
work it does against a real collector (batching, protobuf encoding, one POST per batch) and the
sink costs the machine as little as it can. It keeps no data."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # the harness's readiness probe
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()


if __name__ == "__main__":
    main()
