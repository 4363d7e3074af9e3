"""The OpenAI-compatible backend against a real HTTP server on loopback that misbehaves."""

from __future__ import annotations

import socket
import time

import pytest

from autointerp.config import parse_config
from autointerp.errors import AutointerpError, ConfigError
from autointerp.llm import LLMConfig, make_client
from autointerp.llm.openai_compat import LogprobsUnsupported

FAST = dict(
    backend="openai",
    model="fake-model",
    api_key_env="AUTOINTERP_TEST_KEY",
    max_retries=2,
    timeout=0.5,
    backoff=0.01,
    backoff_max=0.05,
    max_concurrency=4,
)


def chat(text):
    return [{"role": "user", "content": text}]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("AUTOINTERP_TEST_KEY", "sk-test-SECRET-123456")
    return "sk-test-SECRET-123456"


def test_retries_failures_and_cache(tmp_path, key, fake_server):
    srv = fake_server(slow_seconds=2.0)
    cfg = LLMConfig(
        **FAST,
        base_url=srv.url,
        cache_dir=str(tmp_path / "cache"),
        prices={"fake-model": {"prompt": 1.0, "completion": 2.0}},
    )
    client = make_client(cfg)
    prompts = ["hello ok", "please 429once", "always 500", "very slow", "pure garbage"]
    t0 = time.perf_counter()
    gens = client.generate([chat(p) for p in prompts], max_tokens=5)
    assert time.perf_counter() - t0 < 15  # bounded: no hang on the slow server
    ok, rate, err500, slow, garbage = gens
    assert ok.error is None and ok.text.endswith("words like ok") and not ok.cached
    assert rate.error is None and rate.text.endswith("429once")
    assert srv.counts[("/v1/chat/completions", "please 429once")] == 2  # retried once
    assert "500" in err500.error and srv.counts[("/v1/chat/completions", "always 500")] == 3  # 1 + max_retries
    assert "Timeout" in slow.error and srv.counts[("/v1/chat/completions", "very slow")] == 3
    assert "malformed" in garbage.error
    assert all(g.text == "" for g in (err500, slow, garbage))
    u = client.usage
    assert u.requests == 5 and u.failed_requests == 3 and u.retries >= 5
    assert u.prompt_tokens == ok.prompt_tokens + rate.prompt_tokens > 0
    assert u.cost == pytest.approx((u.prompt_tokens * 1.0 + u.completion_tokens * 2.0) / 1e6)
    assert srv.auth == {f"Bearer {key}"}

    # A second run over the successful prompts makes no request at all (counted at the server).
    before = srv.total
    client2 = make_client(cfg)
    again = client2.generate([chat(p) for p in prompts[:2]], max_tokens=5)
    assert srv.total == before
    assert [g.text for g in again] == [ok.text, rate.text] and all(g.cached for g in again)
    assert client2.usage.requests == 0 and client2.usage.cached_requests == 2
    # Failures are not cached: they are retried by the next run.
    client2.generate([chat("always 500")], max_tokens=5)
    assert srv.total == before + 3
    # Other sampling parameters are other cache entries.
    client2.generate([chat("hello ok")], max_tokens=6)
    assert srv.total == before + 4


def test_logprobs(tmp_path, key, fake_server):
    srv = fake_server()
    client = make_client(LLMConfig(**FAST, base_url=srv.url))
    (lp,) = client.option_logprobs([chat("is it?")], options=["Yes", "No", "Maybe"])
    assert lp == {"Yes": -0.2, "No": -1.8, "Maybe": float("-inf")}
    (cont,) = client.continuation_logprobs(["The cat"], [" sat down"])
    assert cont.tokens == [" sat", " down"] and list(cont) == [-4.0, -5.0]
    srv = fake_server(logprobs=False)
    client = make_client(LLMConfig(**FAST, base_url=srv.url))
    with pytest.raises(LogprobsUnsupported, match="mode: generation"):
        client.option_logprobs([chat("is it?")], options=["Yes", "No"])
    with pytest.raises(LogprobsUnsupported, match="echo"):
        client.continuation_logprobs(["The cat"], [" sat"])


def test_clear_errors(key, monkeypatch, fake_server):
    srv = fake_server()
    with pytest.raises(AutointerpError, match="llm.model"):
        make_client(LLMConfig(**{**FAST, "model": "no-such-model"}, base_url=srv.url)).generate([chat("hi")] * 3)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    t0 = time.perf_counter()
    with pytest.raises(AutointerpError, match="cannot reach"):
        make_client(LLMConfig(**FAST, base_url=f"http://127.0.0.1:{port}/v1")).generate([chat("hi")] * 4)
    assert time.perf_counter() - t0 < 10
    monkeypatch.delenv("AUTOINTERP_TEST_KEY")
    with pytest.raises(AutointerpError, match="AUTOINTERP_TEST_KEY"):
        make_client(LLMConfig(**FAST, base_url="http://127.0.0.1:1/v1"))
    client = make_client(LLMConfig(**FAST, base_url="http://127.0.0.1:1/v1"), credentials={"api_key": key})
    assert key not in repr(client) and key not in repr(client.cfg)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return port


CALLS = {
    "generate": lambda c: c.generate([chat("hi"), chat("there")], max_tokens=4),
    "option_logprobs": lambda c: c.option_logprobs([chat("is it?"), chat("or?")], options=["Yes", "No"]),
    "continuation_logprobs": lambda c: c.continuation_logprobs(["The cat", "A dog"], [" sat", " ran"]),
}


@pytest.mark.parametrize("method", list(CALLS))
def test_unusable_server_raises_from_every_method(method, key, fake_server):
    """Contract 4: unreachable, wrong model, refused key and no log-probabilities each raise one
    AutointerpError (after the retries, for connection errors) from every client method."""
    call = CALLS[method]
    t0 = time.perf_counter()
    with pytest.raises(AutointerpError, match="cannot reach the LLM server .* after 3 attempts"):
        call(make_client(LLMConfig(**FAST, base_url=f"http://127.0.0.1:{_closed_port()}/v1")))
    assert time.perf_counter() - t0 < 10
    srv = fake_server()
    with pytest.raises(AutointerpError, match=r"HTTP 404.*Check llm.model"):
        call(make_client(LLMConfig(**{**FAST, "model": "no-such-model"}, base_url=srv.url)))
    locked = fake_server(key="sk-the-right-one")
    with pytest.raises(AutointerpError, match=r"refused the API key \(HTTP 401\)"):
        call(make_client(LLMConfig(**FAST, base_url=locked.url)))
    if method != "generate":
        with pytest.raises(LogprobsUnsupported):
            call(make_client(LLMConfig(**FAST, base_url=fake_server(logprobs=False).url)))
        with pytest.raises(LogprobsUnsupported, match="HTTP 400"):
            call(make_client(LLMConfig(**FAST, base_url=fake_server(logprobs="reject").url)))
    # Per-item failures stay values: a 500 for one item does not raise.
    out = call(make_client(LLMConfig(**FAST, base_url=srv.url)))
    assert all(r.error is None for r in out)


def test_several_endpoints_share_the_load_and_survive_a_dead_one(key):
    from loopback import LoopbackServer, answer_text

    with LoopbackServer(delay=0.01) as a, LoopbackServer(delay=0.01) as b:
        cfg = LLMConfig(**{**FAST, "max_concurrency": 8}, base_url=[a.url, b.url])
        client = make_client(cfg)
        texts = [f"shared item {i}" for i in range(120)]
        out = client.generate([chat(t) for t in texts], max_tokens=4)
        assert [g.text for g in out] == [answer_text(t) for t in texts]
        assert a.outcomes["ok"] + b.outcomes["ok"] == 120
        assert min(a.outcomes["ok"], b.outcomes["ok"]) >= 30  # least-in-flight spreads the requests
        assert client.served == {a.url: a.outcomes["ok"], b.url: b.outcomes["ok"]}
        b.stop()  # one endpoint dies: its requests go to the other, none fails
        more = [f"after death {i}" for i in range(60)]
        out = client.generate([chat(t) for t in more], max_tokens=4)
        assert all(g.error is None for g in out) and [g.text for g in out] == [answer_text(t) for t in more]
        assert client.usage.failed_requests == 0
        a_before = a.outcomes["ok"]
        # A dead endpoint listed first from the start: everything goes to the live one.
        c2 = make_client(LLMConfig(**FAST, base_url=[f"http://127.0.0.1:{_closed_port()}/v1", a.url]))
        out = c2.generate([chat(f"rerouted {i}") for i in range(20)], max_tokens=4)
        assert all(g.error is None for g in out) and a.outcomes["ok"] == a_before + 20
    # Every endpoint dead: one clear error naming them.
    with pytest.raises(AutointerpError, match="cannot reach any of the LLM server"):
        make_client(LLMConfig(**FAST, base_url=[a.url, b.url])).generate([chat("hi")] * 3)
    with pytest.raises(ConfigError, match="base_url"):
        parse_config(LLMConfig, {**FAST, "base_url": ["http://a/v1", "ftp://b"]}, "parameters: llm")


def test_connections_kept_alive_beyond_the_sdk_default(key):
    """At 150 requests in flight every connection is reused (the SDK alone keeps 100 alive)."""
    from loopback import LoopbackServer

    with LoopbackServer(delay=0.3) as srv:  # long enough for all 150 to be in flight at once
        client = make_client(LLMConfig(**{**FAST, "max_concurrency": 150, "timeout": 10.0}, base_url=srv.url))
        for rep in range(3):
            out = client.generate([chat(f"keep {rep} {i}") for i in range(150)], max_tokens=4)
            assert all(g.error is None for g in out)
        assert srv.received == 450 and srv.connections <= 160  # the SDK's default: about 250
