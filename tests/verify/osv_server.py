"""A loopback OSV-compatible server (``POST /v1/querybatch``) in a thread, for the vulns tests.

It answers from a table {(name, version): [vulnerability ids]}; ``fail_with`` makes it answer
with that HTTP status instead, ``truncate`` returns fewer results than queries.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OsvServer:
    def __init__(self, table: dict[tuple[str, str], list[str]]) -> None:
        self.table = table
        self.fail_with: int | None = None
        self.truncate = False
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                if outer.fail_with is not None or self.path != "/v1/querybatch":
                    self.send_response(outer.fail_with or 404)
                    self.end_headers()
                    return
                results = [
                    {
                        "vulns": [
                            {"id": i, "modified": "2026-01-01T00:00:00Z"}
                            for i in outer.table.get((q["package"]["name"], q["version"]), [])
                        ]
                    }
                    for q in body["queries"]
                ]
                if outer.truncate:
                    results = results[:-1]
                data = json.dumps({"results": results}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/querybatch"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> OsvServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
