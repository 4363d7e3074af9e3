"""Soak test of the OpenAI-compatible client (issue 18) against a loopback server that injects
429s, 500s, timeouts and dropped connections: at least 1,000 requests at concurrency 32, no
hang, no lost or duplicated result, every failure counted (the client's usage counters match
the server's own count), and the response cache consistent after the client is SIGKILLed in
the middle (every entry readable and equal to what the server sent; a rerun asks only for the
missing items). Loopback only, bounded in count and time.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from loopback import LoopbackServer, answer_text, yes_probability

from autointerp.llm import LLMConfig, make_client

RATES = {"429": 0.06, "500": 0.05, "timeout": 0.02, "drop": 0.05}
SOAK = dict(
    backend="openai",
    model="fake-model",
    api_key_env=None,
    max_concurrency=32,
    max_retries=3,
    timeout=1.0,
    backoff=0.002,
    backoff_max=0.02,
)


def chat(text):
    return [{"role": "user", "content": text}]


@pytest.mark.timeout(180)
def test_soak_faults_counted_nothing_lost(tmp_path):
    n_gen, n_lp = 900, 300
    gen_texts = [f"soak generate item {i}" for i in range(n_gen)]
    lp_texts = [f"soak judge item {i}" for i in range(n_lp)]
    with LoopbackServer(rates=RATES, seed=7, hold=1.6) as srv:  # held past the 1 s timeout
        client = make_client(LLMConfig(**SOAK, base_url=srv.url, cache_dir=str(tmp_path / "cache")))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # both methods at once, sharing the client's 32 workers
            fg = pool.submit(client.generate, [chat(t) for t in gen_texts], 8)
            fl = pool.submit(client.option_logprobs, [chat(t) for t in lp_texts], ["Yes", "No"])
            gens, lps = fg.result(timeout=120), fl.result(timeout=120)  # no hang
        wall = time.perf_counter() - t0
        u = client.usage
        client.close()
    # No lost or duplicated result: one per item, each the answer the server sent for that item.
    assert len(gens) == n_gen and len(lps) == n_lp
    failed = 0
    for t, g in zip(gen_texts, gens):
        if g.error is None:
            assert g.text == answer_text(t)
        else:
            failed += 1
            assert g.text == "" and g.error
    for t, r in zip(lp_texts, lps):
        if r.error is None:
            p = yes_probability(t)
            assert r["Yes"] == pytest.approx(math.log(p), abs=1e-9)  # 0.7p + 0.2p + 0.1p
        else:
            failed += 1
    # Every request that reached the server is accounted for: one send per item plus the retries.
    assert srv.received == u.requests + u.retries
    assert u.requests == n_gen + n_lp and u.failed_requests == failed
    assert srv.outcomes["ok"] == n_gen + n_lp - failed
    assert all(c == 1 for c in srv.ok_texts.values())  # no item answered twice
    injected = sum(srv.outcomes[f] for f in ("429", "500", "timeout", "drop"))
    assert injected == u.retries + failed > 100  # every injected fault is a retry or a counted failure
    assert 0 < failed < 40  # a few items ran out of retries (deterministic for this seed)
    assert wall < 60
    print(
        f"\nsoak: {srv.received} requests, {injected} faults injected ({dict(srv.outcomes)}), "
        f"{u.retries} retries, {failed} failed items, {wall:.1f} s wall"
    )


CLIENT = textwrap.dedent("""
    import sys
    from autointerp.llm import LLMConfig, make_client
    url, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = make_client(LLMConfig(backend="openai", model="fake-model", api_key_env=None, base_url=url,
                                   cache_dir=cache, max_concurrency=32, timeout=5.0))
    client.generate([[{"role": "user", "content": f"kill item {i}"}] for i in range(n)], max_tokens=8)
    print("finished")
""")


@pytest.mark.timeout(180)
def test_cache_consistent_after_sigkill(tmp_path):
    n = 800
    texts = [f"kill item {i}" for i in range(n)]
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    with LoopbackServer(delay=0.03) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT, srv.url, str(cache), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 90
        while srv.outcomes["ok"] < n // 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert b"finished" not in out, "the client finished before it was killed: make the server slower"
        answered_before = dict(srv.ok_texts)
        assert 0 < len(answered_before) < n

        # Every committed entry is readable JSON, and is what the server sent for its request.
        with sqlite3.connect(cache / "responses.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            values = [json.loads(v) for (v,) in db.execute("SELECT value FROM responses")]
        sent = {answer_text(t) for t in answered_before}
        assert values and all(v["text"] in sent for v in values)
        assert len(values) <= len(answered_before)

        # A rerun sends requests only for the items the cache lacks, and returns every answer.
        client = make_client(LLMConfig(**{**SOAK, "max_retries": 0}, base_url=srv.url, cache_dir=str(cache)))
        before = srv.received
        again = client.generate([chat(t) for t in texts], max_tokens=8)
        client.close()
        cached = {t for t, g in zip(texts, again) if g.cached}
        assert len(cached) == len(values)
        assert srv.received - before == n - len(cached)
        assert all(srv.ok_texts[t] == answered_before.get(t, 0) for t in cached)  # cached ones: not asked again
        assert [g.text for g in again] == [answer_text(t) for t in texts]
    print(
        f"\nkill: {len(answered_before)} answered before SIGKILL, {len(values)} in the cache, "
        f"{n - len(cached)} asked again"
    )
