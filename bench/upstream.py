"""The fast upstream: nginx answering a fixed OpenAI chat completion, on a loopback port.

nginx runs in the foreground as one process (`daemon off`, `master_process off`), so the harness
owns it like any other child; its config, temp directories and error log live in the work
directory. Paths served:

- POST /v1/chat/completions and /chat/completions: a fixed `chat.completion` JSON body
- POST /sse/v1/chat/completions (and /sse/chat/completions): a fixed SSE stream of chunks and
  `[DONE]`, for a deployment whose base URL is `http://127.0.0.1:PORT/sse/v1`
- POST /sse50/v1/chat/completions: the streaming bench point's stream (`python -m
  bench.streaming`): a role chunk, `STREAM_WORDS` content chunks, a finish chunk and `[DONE]`
- POST /trickle/v1/chat/completions: the same stream sent at `TRICKLE_BYTES_PER_S`, so a stream
  stays open for minutes (the open-streams memory point)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench-upstream",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
}


def _chunk(delta: dict[str, str], finish: str | None) -> str:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


STREAM_WORDS = 50
TRICKLE_BYTES_PER_S = 20


def sse_stream(words: int = 0) -> str:
    """The fixed SSE answer: four words, or ``words`` numbered ones."""
    said = [f"w{i} " for i in range(words)] if words else ["Hello ", "from ", "the ", "stream."]
    parts = [_chunk({"role": "assistant", "content": ""}, None)]
    parts += [_chunk({"content": word}, None) for word in said]
    parts.append(_chunk({}, "stop"))
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def _nginx_string(text: str) -> str:
    """A single-quoted nginx string; the bodies hold no quote, backslash or variable sign."""
    if any(c in text for c in "'\\$"):
        raise ValueError("fixed upstream body must not contain ', \\ or $")
    return "'" + text + "'"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )


def nginx_version(binary: str) -> str:
    """`nginx/1.22.1`, from what `nginx -v` prints on stderr."""
    try:
        done = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "nginx (version unknown)"
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ") or "nginx"


def write_config(work: Path, port: int) -> Path:
    """Write nginx.conf for one run into `work` and return its path."""
    tmp = work / "nginx-tmp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    completion = _nginx_string(json.dumps(COMPLETION, separators=(",", ":")))
    stream = _nginx_string(sse_stream())
    # Too long for an nginx string: a file, served to a POST through error_page (nginx answers
    # 405 to a POST for a static file, and error_page redirects internally as a GET).
    (work / "sse50.txt").write_text(sse_stream(STREAM_WORDS))
    conf = f"""\
# Written by bench/upstream.py for one benchmark run.
daemon off;
master_process off;
worker_processes 1;
pid {work / "nginx.pid"};
error_log {work / "nginx-error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_buffer_size 64k;
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};
    server {{
        listen 127.0.0.1:{port};
        location ~ ^(/v1)?/chat/completions$ {{
            default_type application/json;
            return 200 {completion};
        }}
        location ~ ^/sse(/v1)?/chat/completions$ {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 {stream};
        }}
        location ~ ^/sse50(/v1)?/chat/completions$ {{
            return 405;
            error_page 405 =200 /stream/sse50.txt;
        }}
        location ~ ^/trickle(/v1)?/chat/completions$ {{
            return 405;
            error_page 405 =200 /stream/trickle.txt;
        }}
        location = /stream/sse50.txt {{
            internal;
            default_type text/event-stream;
            alias {work / "sse50.txt"};
        }}
        location = /stream/trickle.txt {{
            internal;
            default_type text/event-stream;
            limit_rate {TRICKLE_BYTES_PER_S};
            alias {work / "sse50.txt"};
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""
    path = work / "nginx.conf"
    path.write_text(conf)
    return path


def nginx_argv(binary: str, work: Path, conf: Path) -> list[str]:
    return [binary, "-p", str(work), "-c", str(conf), "-e", str(work / "nginx-error.log")]
