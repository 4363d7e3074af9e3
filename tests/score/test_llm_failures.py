"""A server or model that is unusable stops scoring with one clear error; a server that fails
most requests is flagged loudly (log, summary table, MLflow). Real loopback HTTP servers
(tests/llm/conftest.py), no model."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from score_toy import toy_examples, toy_explanations

from autointerp.errors import AutointerpError
from autointerp.llm import LLMConfig
from autointerp.pipelines.score import nodes
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "llm"))
from fake_server import FakeServer  # noqa: E402


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _llm(url, **kw) -> LLMConfig:
    return LLMConfig(
        **{
            "backend": "openai",
            "base_url": url,
            "model": "fake-model",
            "api_key_env": None,
            "max_retries": 0,
            "timeout": 10.0,
            "cache_dir": None,
            **kw,
        }
    )


def test_unreachable_server_stops_scoring_at_once(tmp_path):
    lats = (0, 1, 2)
    cfg = ScoreConfig(scorers=["detection", "surprisal"], n_activating=4, n_non_activating=4)
    job = ScoreJob(
        "h",
        toy_examples(lats),
        toy_explanations(lats),
        cfg,
        llm=_llm(f"http://127.0.0.1:{_closed_port()}/v1"),
        progress=False,
    )
    t0 = time.perf_counter()
    with pytest.raises(AutointerpError, match="cannot reach"):
        job.run(tmp_path)
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "detection.jsonl").exists() or not (tmp_path / "detection.jsonl").read_text()
    assert json.loads((tmp_path / "meta.json").read_text())["complete"] is False


def test_server_failing_most_requests_is_flagged(tmp_path, caplog):
    lats = (0, 1, 2)
    ex = toy_examples(lats, n_act=4, n_non=4)
    # the loopback server answers malformed JSON to every prompt that contains "garbage": 3 of 4 windows
    ex["tokens"] = [t[:-1] + ([" garbage"] if i % 4 else [" fine"]) for i, t in enumerate(ex["tokens"])]
    with FakeServer() as srv:
        params = {
            "scorers": ["detection"],
            "n_activating": 4,
            "n_non_activating": 4,
            "n_bootstrap": 20,
            "max_failed_fraction": 0.2,
        }
        cfg = ScoreConfig(
            scorers=["detection"], n_activating=4, n_non_activating=4, max_failed_fraction=0.2, n_bootstrap=20
        )
        ScoreJob("h", ex, toy_explanations(lats), cfg, llm=_llm(srv.url), progress=False).run(tmp_path)
        assert srv.total > 0
    run = ScoreRun(tmp_path)
    m = run.metrics()
    frac = m["n_failed"].sum() / m["n"].sum()
    assert 0.5 < frac < 1  # per-example failures counted, the rest scored
    assert run.scores()["failure"].dropna().str.contains("request failed").all()
    with caplog.at_level(logging.WARNING):
        scores, metrics, table, mlflow, figs = nodes.score_tables(run, params, hookpoint="h")
    assert table["too_many_failures"].all()
    assert mlflow["score.h.detection.default.too_many_failures"]["value"] == 1.0
    assert mlflow["score.h.detection.default.failed_fraction"]["value"] == pytest.approx(frac)
    assert any(r.levelno == logging.WARNING and "max_failed_fraction" in r.getMessage() for r in caplog.records)


def test_refused_key_fails_the_score_command_with_one_error_line(tmp_path, kedro, monkeypatch):
    """Through the command line: a loopback server answering HTTP 401; ``kedro run --pipelines
    score`` exits 2 with one ``Error:`` line naming the key, before scoring anything."""
    from autointerp.examples import EXAMPLE_COLUMNS

    ns = "layers_2"
    ex = toy_examples((0, 1, 2), hookpoint="layers.2", n_act=4, n_non=4)
    ex = ex.assign(
        token_ids=ex["tokens"].map(lambda t: list(range(len(t)))),
        max_activation=ex["activations"].map(max),
        marked=-1,
        example_id=[f"layers.2/{r.latent}/{r.context}:{r.start}" for r in ex.itertuples()],
    )
    folder = tmp_path / "04_feature" / "examples" / ns
    (folder / "examples").mkdir(parents=True)
    ex[EXAMPLE_COLUMNS].to_parquet(folder / "examples" / "latents_000000_000255.parquet", index=False)
    pd.DataFrame({"hookpoint": "layers.2", "latent": [0, 1, 2], "status": "ok"}).to_parquet(folder / "latents.parquet")
    (folder / "meta.json").write_text(json.dumps({"complete": True}))
    expl = tmp_path / "07_model_output" / "explanations" / ns
    expl.mkdir(parents=True)
    with open(expl / "explanations.jsonl", "w") as f:
        for r in toy_explanations((0, 1, 2)).assign(hookpoint="layers.2").to_dict("records"):
            f.write(json.dumps(r) + "\n")
    (expl / "meta.json").write_text(json.dumps({"complete": True}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with FakeServer(key="sk-right") as srv:
        t0 = time.perf_counter()
        r = kedro(
            "--env",
            "test",
            "--pipelines",
            "score",
            "--namespaces",
            ns,
            "--params",
            f"data_root={tmp_path},llm.backend=openai,llm.base_url={srv.url},llm.model=fake-model,"
            "llm.max_retries=0,score.max_latents=3",
        )
        elapsed = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "refused the API key" in errors[0], r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert srv.total <= 2 and elapsed < 120
