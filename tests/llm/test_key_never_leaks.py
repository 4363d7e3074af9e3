"""The API key never appears in an output file, the response cache, a log record or MLflow."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from autointerp.datasets import ExplanationsDataset
from autointerp.pipelines.explain import nodes

KEY = "sk-leakcheck-9f8e7d6c5b4a"


def _examples():
    toks = ["The", " cat", " sat", " on", " the", " mat"]
    rows = []
    for latent, text in ((0, "ok"), (1, "500"), (2, "garbage")):
        acts = [0, 4.0, 0, 0, 0, 1.0]
        rows.append(
            dict(
                hookpoint="layers.2",
                latent=latent,
                split="train",
                kind="activating",
                quantile=0,
                context=0,
                start=0,
                token_ids=list(range(6)),
                tokens=toks + [f" {text}"],
                activations=acts + [0.0],
                max_activation=4.0,
                marked=1,
                example_id=str(latent),
            )
        )
    return pd.DataFrame(rows)


def test_key_never_leaks(tmp_path, monkeypatch, caplog, fake_server):
    srv = fake_server()
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    llm = {
        "backend": "openai",
        "model": "fake-model",
        "base_url": srv.url,
        "api_key_env": "MY_LLM_KEY",
        "max_retries": 1,
        "backoff": 0.01,
        "timeout": 2.0,
        "cache_dir": str(tmp_path / "cache"),
    }
    explain = {"explainers": ["default"], "n_examples": 3, "progress": False}
    caplog.set_level(logging.DEBUG)
    job = nodes.explain_latents(_examples(), None, None, llm, explain, hookpoint="layers.2")
    ds = ExplanationsDataset(path=str(tmp_path / "explanations"))
    ds.save(job)
    df = ds.load()
    assert df.explanation.notna().sum() == 1 and df.failure.notna().sum() == 2  # 500 and garbage: counted
    assert srv.auth == {f"Bearer {KEY}"}  # the key was really used
    metrics = nodes.explain_metrics(df, hookpoint="layers.2")
    assert metrics["explain.layers.2.failed"]["value"] == 2

    # MLflow gets the parameters (as kedro-mlflow logs them, flattened) and the metrics.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("leakcheck", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_params({f"llm.{k}": v for k, v in llm.items()} | {f"explain.{k}": v for k, v in explain.items()})
        mlflow.log_metrics({k: v["value"] for k, v in metrics.items()})
        mlflow.log_dict({"job": repr(job), "client_config": repr(job.llm)}, "job.json")
    mlflow.set_tracking_uri("")

    assert KEY not in caplog.text and KEY not in repr(job) and KEY not in str(df.to_dict())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "job.json" for p in files)
    assert any(p.name == "responses.sqlite" for p in files)
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p
