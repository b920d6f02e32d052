"""Issue 12: a property-based fuzz suite over every public and admin route of a running gateway.

Hypothesis draws bodies shaped like each route's (any field, at any moment, any JSON value),
raw bytes at the edge of what a JSON parser handles, odd credentials, ids and query strings,
and sends them over HTTP. The property: no answer is a server error (a 500, a dropped
connection, or a stream that ends in an internal error), and nothing the gateway logs is a
traceback. Every example is sent and checked (none stops the run), so a failure lists every
input that broke it, not the first. Examples are bounded per test and the run is derandomized
(the same inputs every run, for CI); ``SEALGATE_FUZZ_EXAMPLES`` scales every test's count, and
``SEALGATE_FUZZ_SEED`` picks another fixed set of inputs.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.hardening import fuzz_strategies as fs
from tests.hardening.conftest import MODELS, config, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

SCALE = float(os.environ.get("SEALGATE_FUZZ_EXAMPLES", "1"))
SEED = int(os.environ.get("SEALGATE_FUZZ_SEED", "12"))
LIMITS = """    mock-gpt/mock: {rpm: 1000000, tpm: 1000000000}
"""


def fuzzing(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for one fuzz test: ``examples`` inputs (times the scale), each
    generated and sent once; no shrinking, since every failing input is kept and shown."""
    scaled = settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    def apply(test: Any) -> Any:
        return seed(SEED)(scaled(test))

    return apply


class Findings:
    """What one fuzz test saw: status counts, and every input whose answer was a server error."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []

    def send(
        self, client: httpx.Client, method: str, path: str, upstream: bool = False, **kwargs: Any
    ) -> None:
        """Send one request and judge its answer. ``upstream``: the upstream was told to answer
        badly, so a 502 is the right answer; otherwise the fake never fails on its own, and a
        502 means the gateway sent it something it could not take."""
        what = f"{method} {path[:80]} {repr(kwargs)[:300]}"
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.statuses["dropped"] += 1
            self.errors.append(f"{type(exc).__name__}: {what}")
            return
        self.statuses[str(response.status_code)] += 1
        if response.status_code >= 500 and not (upstream and response.status_code == 502):
            self.errors.append(f"{response.status_code} {response.text[:200]}: {what}")
        elif "internal_error" in response.text or "Internal Server Error" in response.text:
            self.errors.append(f"{response.status_code} in-stream {response.text[-200:]}: {what}")

    def check(self) -> None:
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
        print(f"{test}: {sum(self.statuses.values())} requests; {summary}")  # with -rP
        shown = "\n".join(self.errors[:25])
        assert not self.errors, f"{len(self.errors)} server errors ({summary}):\n{shown}"


@pytest.fixture(scope="module")
def fuzzed(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    process = start(workdir, config(upstream_server, LIMITS))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def credentials(fuzzed: GatewayProcess) -> dict[str, str]:
    """A credential of every kind a caller may hold, by name."""
    team = fuzzed.admin("POST", "/admin/teams", json={"name": "fuzz", "tpm_limit": 10**9})
    team_id = team.json()["id"]
    plain = fuzzed.create_key(MODELS)
    limited = fuzzed.create_key(MODELS, team_id=team_id, rpm_limit=10**6, tpm_limit=10**9)
    budget = {"scope": "key", "scope_id": limited["id"], "period": "daily", "max_usd": "1000000"}
    assert fuzzed.admin("POST", "/admin/budgets", json=budget).status_code == 201
    tokens = {}
    for role in ("team_admin", "viewer"):
        made = fuzzed.admin(
            "POST", "/admin/tokens", json={"role": role, "team_id": team_id, "name": role}
        )
        tokens[role] = made.json()["token"]
    return {
        "key": plain["key"],
        "limited": limited["key"],
        "admin": fuzzed.admin_key,
        "team_admin": tokens["team_admin"],
        "viewer": tokens["viewer"],
        "team_id": team_id,
        "key_id": limited["id"],
    }


@pytest.fixture(scope="module")
def client(fuzzed: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzzed.url, timeout=30) as made:
        yield made


# What a client can put in a header at all (printable ASCII, no surrounding blanks).
header_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(
    lambda text: "Bearer" + (" " + text if text else "")
)
# Mostly callers with a key (their bodies get read), sometimes every other kind of caller.
WHO = ["key"] * 3 + ["limited"] * 3 + ["admin", "team_admin", "viewer", "none", "wrong"]


def authorization(credentials: dict[str, str], who: str, noise: str) -> dict[str, str]:
    if who == "none":
        return {}
    if who == "wrong":
        return {"Authorization": noise}
    return {"Authorization": f"Bearer {credentials[who]}"}


def escaped(text: str) -> str:
    """A path segment or query part, percent-encoded as UTF-8 (lone surrogates too)."""
    return quote(text, safe="", errors="surrogatepass")


def with_query(path: str, params: dict[str, str]) -> str:
    if not params:
        return path
    return path + "?" + "&".join(f"{escaped(k)}={escaped(v)}" for k, v in params.items())


def encoded(body: Any) -> bytes:
    """JSON as a lax encoder writes it: NaN and infinities as such, lone surrogates escaped."""
    return json.dumps(body).encode()


JSON = {"Content-Type": "application/json"}


def sent(credentials: dict[str, str], who: str, noise: str) -> dict[str, str]:
    return {**JSON, **authorization(credentials, who, noise)}


def test_fuzzed_chat_completions_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()

    @fuzzing(500)
    @given(body=fs.chat, who=st.sampled_from(WHO), noise=header_text)
    def probe(body: dict[str, Any], who: str, noise: str) -> None:
        headers = sent(credentials, who, noise)
        found.send(client, "POST", "/v1/chat/completions", content=encoded(body), headers=headers)

    probe()
    found.check()


def test_fuzzed_embeddings_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()

    @fuzzing(200)
    @given(body=fs.embeddings, who=st.sampled_from(WHO), noise=header_text)
    def probe(body: dict[str, Any], who: str, noise: str) -> None:
        headers = sent(credentials, who, noise)
        found.send(client, "POST", "/v1/embeddings", content=encoded(body), headers=headers)

    probe()
    found.check()


def test_fuzzed_anthropic_messages_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()

    @fuzzing(400)
    @given(
        body=fs.messages,
        who=st.sampled_from(WHO),
        noise=header_text,
        x_api_key=st.booleans(),
    )
    def probe(body: dict[str, Any], who: str, noise: str, x_api_key: bool) -> None:
        headers = sent(credentials, who, noise)
        if x_api_key and "Authorization" in headers:
            headers["x-api-key"] = headers.pop("Authorization").removeprefix("Bearer ")
        found.send(client, "POST", "/v1/messages", content=encoded(body), headers=headers)

    probe()
    found.check()


@pytest.mark.parametrize(
    ("path", "bodies"), [("/v1/responses", fs.responses), ("/v1/completions", fs.completions)]
)
def test_fuzzed_responses_and_completions_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str], path: str, bodies: Any
) -> None:
    found = Findings()

    @fuzzing(300)
    @given(body=bodies, who=st.sampled_from(WHO), noise=header_text)
    def probe(body: dict[str, Any], who: str, noise: str) -> None:
        headers = sent(credentials, who, noise)
        found.send(client, "POST", path, content=encoded(body), headers=headers)

    probe()
    found.check()


API = ["/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/responses", "/v1/completions"]
ADMIN_POSTS = ["/admin/keys", "/admin/teams", "/admin/users", "/admin/budgets", "/admin/tokens"]


def test_fuzzed_raw_bytes_on_every_body_route_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()

    @fuzzing(300)
    @given(
        path=st.sampled_from(API + ADMIN_POSTS),
        model=st.sampled_from(MODELS),
        data=st.data(),
        who=st.sampled_from(WHO),
        noise=header_text,
        content_type=st.sampled_from(["application/json", "text/plain", "", "application/x"]),
    )
    def probe(
        path: str, model: str, data: st.DataObject, who: str, noise: str, content_type: str
    ) -> None:
        raw = data.draw(fs.raw_bodies(model))
        headers = {**authorization(credentials, who, noise), "Content-Type": content_type}
        found.send(client, "POST", path, content=raw, headers=headers)

    probe()
    found.check()


# Every admin route with its methods; {id} is filled with a real id, a made-up one or junk.
ADMIN_ROUTES = [
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("GET", "/admin/keys/{id}"),
    ("PATCH", "/admin/keys/{id}"),
    ("DELETE", "/admin/keys/{id}"),
    ("POST", "/admin/teams"),
    ("GET", "/admin/teams"),
    ("GET", "/admin/teams/{id}"),
    ("PATCH", "/admin/teams/{id}"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users"),
    ("POST", "/admin/budgets"),
    ("GET", "/admin/budgets"),
    ("PATCH", "/admin/budgets/{id}"),
    ("DELETE", "/admin/budgets/{id}"),
    ("POST", "/admin/tokens"),
    ("GET", "/admin/tokens"),
    ("DELETE", "/admin/tokens/{id}"),
    ("GET", "/admin/reports/spend"),
    ("GET", "/admin/audit"),
]
ADMIN_WHO = ["admin", "admin", "admin", "team_admin", "viewer", "key", "none", "wrong"]
query = st.dictionaries(
    st.sampled_from(["group_by", "start", "end", "team_id", "limit"]) | fs.text.filter(str.isascii),
    st.sampled_from(["key", "team", "day", "2030-01-01", "2030-13-45", "-1", "10", "1" * 30])
    | fs.text,
    max_size=3,
)


def test_fuzzed_admin_calls_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()
    real_ids = [credentials["team_id"], credentials["key_id"]]

    @fuzzing(500)
    @given(
        route=st.sampled_from(ADMIN_ROUTES),
        ident=st.sampled_from(real_ids) | st.text(max_size=40) | st.sampled_from(fs.NASTY),
        body=fs.admin_body | fs.json_values,
        params=query,
        who=st.sampled_from(ADMIN_WHO),
        noise=header_text,
    )
    def probe(
        route: tuple[str, str],
        ident: str,
        body: Any,
        params: dict[str, str],
        who: str,
        noise: str,
    ) -> None:
        method, template = route
        path = with_query(template.replace("{id}", escaped(ident)), params)
        options: dict[str, Any] = {"headers": sent(credentials, who, noise)}
        if method in ("POST", "PATCH"):
            options["content"] = encoded(body)
        found.send(client, method, path, **options)

    probe()
    found.check()


READS = ["/v1/models", "/health/live", "/health/ready", "/metrics", "/v1/chat/completions", "/"]


def test_fuzzed_reads_and_odd_methods_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str]
) -> None:
    found = Findings()

    @fuzzing(150)
    @given(
        path=st.sampled_from(READS) | st.text(max_size=30).map(lambda t: "/" + escaped(t)),
        method=st.sampled_from(["GET", "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"]),
        who=st.sampled_from(WHO),
        noise=header_text,
        params=query,
    )
    def probe(path: str, method: str, who: str, noise: str, params: dict[str, str]) -> None:
        headers = authorization(credentials, who, noise)
        found.send(client, method, with_query(path, params), headers=headers)

    probe()
    found.check()


UPSTREAM_ROUTES = [
    ("/v1/chat/completions", False),
    ("/v1/chat/completions", True),
    ("/v1/messages", False),
    ("/v1/messages", True),
    ("/v1/embeddings", False),
]


def test_fuzzed_upstream_answers_get_no_server_error(
    client: httpx.Client, credentials: dict[str, str], upstream_server: FakeUpstream
) -> None:
    """An upstream's answer is input too: whatever a broken or hostile one sends with a 200,
    the client gets an answer or a 502, never a 500 or a dropped connection."""
    found = Findings()

    @fuzzing(300)
    @given(
        route=st.sampled_from(UPSTREAM_ROUTES),
        anthropic=st.booleans(),
        data=st.data(),
    )
    def probe(route: tuple[str, bool], anthropic: bool, data: st.DataObject) -> None:
        path, stream = route
        model = "fake-claude" if anthropic and path != "/v1/embeddings" else "fake-gpt"
        answer = data.draw(fs.upstream_answers(anthropic=model == "fake-claude"))
        upstream_server.reset()
        upstream_server.then(answer=answer)
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if path == "/v1/embeddings":
            body = {"model": model, "input": "hi"}
        elif path == "/v1/messages":
            body["max_tokens"] = 16
        if stream:
            body["stream"] = True
        headers = sent(credentials, "key", "")
        found.send(client, "POST", path, content=encoded(body), headers=headers, upstream=True)

    probe()
    found.check()


def test_the_fuzzed_gateway_logged_no_traceback(fuzzed: GatewayProcess) -> None:
    log = fuzzed.stderr()
    assert "Traceback" not in log
    assert "unexpected error" not in log
