"""Several units scored at once (``score.concurrent_latents``) against a real loopback
OpenAI-compatible server (tests/llm/loopback.py): the same records as the sequential run, each
unit exactly once after a SIGKILL and a resume, and one fatal error stopping the run. No model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from score_toy import toy_examples, toy_explanations

from autointerp.errors import AutointerpError
from autointerp.llm import LLMConfig, make_client
from autointerp.scoring import ScoreConfig, ScoreJob
from autointerp.scoring.detection import DetectionConfig
from autointerp.scoring.fuzzing import FuzzingConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "llm"))
from fake_server import FakeServer  # noqa: E402
from loopback import LoopbackServer  # noqa: E402

LATENTS = tuple(range(6))
SCORERS = ("detection", "fuzzing", "surprisal")


def make_job(url: str, workers: int | None, model: str = "fake-model", scorers=SCORERS) -> ScoreJob:
    """Detection in batched mode, fuzzing in log-prob mode, surprisal; two explainers, controls."""
    cfg = ScoreConfig(
        scorers=list(scorers),
        n_activating=6,
        n_non_activating=6,
        concurrent_latents=workers,
        detection=DetectionConfig(mode="batched", examples_per_prompt=4),
        fuzzing=FuzzingConfig(),
    )
    llm = LLMConfig(
        backend="openai", base_url=url, model=model, api_key_env=None, max_retries=0, timeout=20.0, max_concurrency=16
    )
    return ScoreJob(
        "h",
        toy_examples(LATENTS),
        toy_explanations(LATENTS, explainers=("default", "tokens")),
        cfg,
        llm=llm,
        progress=False,
    )


def records(root: Path) -> dict[str, list[dict]]:
    """Each scorer file's records in file order, without the wall time."""
    out = {}
    for name in SCORERS:
        lines = (root / f"{name}.jsonl").read_text().splitlines()
        out[name] = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]
    return out


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(delay=0.005) as srv:
        yield srv


@pytest.fixture(scope="module")
def sequential(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("sequential")
    meta = make_job(server.url, 1).run(root)
    assert meta["complete"]
    return records(root)


def test_concurrent_run_equals_the_sequential_run(server, sequential, tmp_path):
    job = make_job(server.url, 4)
    job.client = make_client(job.llm)
    calls, peak, lock = [0], [0], threading.Lock()
    original = job.client.continuation_logprobs

    def counted(*a, **kw):  # units in flight at once (detection in batched mode and surprisal call this)
        with lock:
            calls[0] += 1
            peak[0] = max(peak[0], calls[0])
        try:
            return original(*a, **kw)
        finally:
            with lock:
                calls[0] -= 1

    job.client.continuation_logprobs = counted
    assert job.run(tmp_path)["complete"]
    job.client.close()
    assert peak[0] > 1
    got = records(tmp_path)
    assert got == sequential  # same units, same order, same rows, same tokens and requests per unit
    n = len(LATENTS) * 2 * 2  # latents x explainers x (real, control)
    assert {k: len(v) for k, v in got.items()} == {name: n for name in SCORERS}
    assert all(r["requests"] > 0 and r["prompt_tokens"] > 0 for v in got.values() for r in v)


def test_killed_concurrent_run_resumes_without_duplicates(sequential, tmp_path):
    with LoopbackServer(delay=0.05) as slow:
        child = (
            f"import sys; sys.path[:0] = [{str(ROOT / 'tests' / 'score')!r}]\n"
            "from test_concurrency import make_job\n"
            f"make_job({slow.url!r}, 4).run({str(tmp_path)!r})\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", child],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        first = tmp_path / "detection.jsonl"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and proc.poll() is None:
            if first.exists() and first.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
        assert json.loads((tmp_path / "meta.json").read_text())["complete"] is False
        before = sum(
            len((tmp_path / f"{n}.jsonl").read_bytes().splitlines())
            for n in SCORERS
            if (tmp_path / f"{n}.jsonl").exists()
        )
        assert 3 <= before < sum(len(v) for v in sequential.values())
        slow.delay, sent = 0.0, slow.received  # the same server (its URL is in the job's fingerprint)
        assert make_job(slow.url, 4).run(tmp_path)["complete"]
        resumed = slow.received - sent
    got = records(tmp_path)
    for name in SCORERS:
        units = [(r["latent"], r["explainer"], r["control"]) for r in got[name]]
        assert len(units) == len(set(units))
        key = lambda r: (r["latent"], r["explainer"], r["control"])  # noqa: E731
        assert sorted(got[name], key=key) == sorted(sequential[name], key=key)
    assert 0 < resumed < sum(r["requests"] for v in sequential.values() for r in v)


def test_fatal_error_stops_a_concurrent_run(sequential, tmp_path):
    """The server starts answering HTTP 404 (model gone) in the middle: one AutointerpError,
    the units not started are never sent, the finished ones are kept, and a resume completes."""
    with LoopbackServer(delay=0.005) as srv:
        total = sum(r["requests"] for v in sequential.values() for r in v)

        def vanish():
            while srv.received < total // 4:
                time.sleep(0.002)
            srv.model = "another-model"

        threading.Thread(target=vanish, daemon=True).start()
        with pytest.raises(AutointerpError, match="HTTP 404"):
            make_job(srv.url, 4).run(tmp_path)
        sent = srv.received
        assert sent < total // 2
        assert json.loads((tmp_path / "meta.json").read_text())["complete"] is False
        srv.model = "fake-model"
        assert make_job(srv.url, 4).run(tmp_path)["complete"]
    got = records(tmp_path)
    for name in SCORERS:
        key = lambda r: (r["latent"], r["explainer"], r["control"])  # noqa: E731
        assert sorted(got[name], key=key) == sorted(sequential[name], key=key)


def test_workers_default_by_backend():
    cfg = ScoreConfig()
    local = make_client(LLMConfig())  # no model is loaded until a request
    assert cfg.workers(local) == 1 and cfg.workers(None) == 1
    remote = make_client(
        LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env=None, max_concurrency=64)
    )
    assert cfg.workers(remote) == 16
    assert ScoreConfig(concurrent_latents=3).workers(remote) == 3
    remote.close()


@pytest.mark.parametrize("how", ["none", "refused", "ignored"])
def test_batched_mode_without_prompt_logprobs_names_the_fix(how, tmp_path, monkeypatch):
    """A server whose completions endpoint gives no prompt log-probabilities (none, HTTP 400
    naming them, or echo ignored: only the generated token's): one error naming
    ``score.detection.mode: logprob``, after no more requests than the window of units."""
    import fake_server as fake

    if how == "ignored":
        real = fake.echo_body

        def generated_only(model, text):
            body = real(model, " x")
            lp = body["choices"][0]["logprobs"]
            lp["text_offset"] = [len(text) + o for o in lp["text_offset"]]
            return body

        monkeypatch.setattr(fake, "echo_body", generated_only)
    with FakeServer(logprobs={"none": False, "refused": "reject", "ignored": True}[how]) as srv:
        with pytest.raises(
            AutointerpError, match=r"score\.detection \(batched mode\).*score\.detection\.mode: logprob"
        ):
            make_job(srv.url, 4, scorers=("detection",)).run(tmp_path)
        assert (
            srv.total <= 8 * 3
        )  # (400s are not counted) the window of units (2 x 4) with 3 requests each, not the whole plan
