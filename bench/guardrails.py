"""The cost of the guardrails on the hot path: microseconds per KB of request text under the
default policy (personal data masked, secrets blocked, injection logged), and what a request
pays when no policy applies.

The texts are a typical prompt mix: prose, a code sample, a JSON snippet, and (in one of four)
an email address and a card number to mask, so the checks that run only on a candidate are paid
too. A second, dense mix is the hard case: every line holds something a detector must look at
(phone numbers, dates, IP addresses, an IBAN, git hashes, a base64 blob, an identifier long
enough to be a token), so the pre-pass lets every family through and the Python checks run.
Each size is timed over many rounds; the figure is the median round, in wall time and in the
thread's CPU time (on a shared machine the wall time also counts the other processes' turns).

    .venv-dev/bin/python -m bench.guardrails [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from gateway.config.guardrails import Guardrails as Section
from gateway.guardrails import personal
from gateway.guardrails.pipeline import Guardrails
from gateway.guardrails.policy import DEFAULT_DETECTORS
from gateway.store.keys import KeyRecord

PROSE = (
    "The quarterly report shows revenue grew by 12 percent while operating costs stayed flat. "
    "Please summarise the main risks for the board, and suggest three follow-up questions. "
)
CODE = (
    "def handler(event, context):\n    items = [json.loads(r['body']) for r in event['Records']]\n"
    "    return {'statusCode': 200, 'count': len(items)}\n"
)
JSON = '{"id": "7f464450-0436-481f-a90c-16370f6f2585", "total": 1299.5, "currency": "EUR"}\n'
PII = "Contact jane.roe@example.com about card 4111 1111 1111 1111 today. "
DENSE = (
    "Call (415) 555-{n:04} or +44 20 7946 {n:04} before 2026-03-14 10:30; server 10.20.30.40 and "
    "fe80::1ff:fe23:4567:890a are down. Refund to DE89 3704 0044 0532 0130 00, order "
    "1234-5678-{n:04}, commit 9fceb02d0ae598e95dc970b74767f19372d61af8. "
    "build_artifact_upload_retry_count_limit = 3; data:image/png;base64,"
    + "iVBORw0KGgoAAAANSUhEUg" * 6
    + "\n"
)


def text_of(size: int, with_pii: bool, dense: bool = False) -> str:
    """The mix, repeated to ``size``; in the dense one each repetition has its own phone and
    order numbers, so no check's work is the same twice."""
    parts = [PROSE, CODE, JSON] + ([PII] if with_pii else [])
    out = ""
    n = 0
    while len(out) < size:
        out += "".join(parts) + (DENSE.format(n=2000 + n % 8000) if dense else "")
        n += 1
    return out[:size]


def record() -> KeyRecord:
    now = datetime.now(UTC)
    return KeyRecord("0123456789abcdef", "0" * 64, ("m",), {}, now, None, None)


def per_kb(guardrails: Guardrails, size: int, rounds: int, dense: bool) -> tuple[float, float]:
    """(wall, CPU) microseconds per KB."""
    policy = guardrails.policy_for(record(), "m")
    assert policy is not None
    texts = [text_of(size, with_pii=i % 4 == 0, dense=dense) for i in range(4)]
    wall, cpu = [], []
    # the phone parses a round caches are forgotten before the next: each round pays them
    forget = getattr(personal._phone_in, "cache_clear", lambda: None)
    for _ in range(rounds):
        bodies = [{"messages": [{"role": "user", "content": t}]} for t in texts]
        forget()
        start, start_cpu = time.perf_counter(), time.thread_time()
        for body in bodies:
            guardrails.check_request(policy, body)
        cpu.append((time.thread_time() - start_cpu) / len(bodies))
        wall.append((time.perf_counter() - start) / len(bodies))
    scale = 1e6 / (size / 1024)
    return statistics.median(wall) * scale, statistics.median(cpu) * scale


def no_policy(rounds: int) -> float:
    """Nanoseconds per request of what the inference route does when no policy is configured:
    ``Guardrails`` with no policy is falsy, so the route keeps None and tests it once."""
    guardrails = Guardrails(Section()) or None
    batch = 100_000
    times = []
    for _ in range(max(5, rounds // 20)):
        start = time.perf_counter()
        for _ in range(batch):
            if guardrails is not None:
                raise AssertionError
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    section = Section.model_validate(
        {"default": "default", "policies": {"default": {"detectors": dict(DEFAULT_DETECTORS)}}}
    )
    guardrails = Guardrails(section)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"load average (1 min): {load}")
    print("| request text | mix | default policy, µs per KB (wall) | (CPU) |")
    print("|---|---|---|---|")
    for dense in (False, True):
        for size in (1024, 16 * 1024, 128 * 1024):
            wall, cpu = per_kb(guardrails, size, args.rounds, dense)
            mix = "dense" if dense else "typical"
            print(f"| {size // 1024} KB | {mix} | {wall:.1f} | {cpu:.1f} |")
    print(f"\nno policy: {no_policy(args.rounds):.1f} ns per request (one test of None)")


if __name__ == "__main__":
    main()
