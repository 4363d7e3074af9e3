"""The calibrate pipeline through a real in-process Kedro session on the test configuration
(its catalog, MLflow hooks and run context), on a 32k-token corpus, four words, the test
environment's explainers (SmolLM2 and the statistical one) and the packaged MiniLM embedding
scorer."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from autointerp.calibration import INFORMATIVE

from .conftest import N_TOKENS, PLAYS

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {
    "corpus": {"n_tokens": N_TOKENS, "sources": [{"kind": "shakespeare", "max_documents": PLAYS}]},
    "calibrate": {
        "n_words": 4,
        "n_train": 5,
        "n_test": 5,
        "n_non_activating": 5,
        "candidates": 24,
        "scorers": ["embedding"],
        "explainers": ["default", "tokens"],  # the LLM path too (conf/test calibrates without an LLM)
    },
}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    data = tmp_path_factory.mktemp("calibrate_run")
    bootstrap_project(ROOT)
    try:
        with KedroSession.create(ROOT, env="test", runtime_params={"data_root": str(data), **PARAMS}) as session:
            session.run(pipeline_names=["calibrate"])
    finally:
        mlflow.end_run()
    return data


def test_outputs_and_exactness(calibrated):
    out = calibrated / "08_reporting" / "calibration"
    words = pd.read_csv(out / "words.csv")
    assert len(words) == 4 and (words["status"] == "ok").all() and words["exact"].all()
    assert (words["fired"] == words["expected"]).all()
    folder = calibrated / "06_models" / "calibration"
    assert (folder / "cfg.json").exists() and (folder / "sae_weights.safetensors").exists()
    examples = pd.read_parquet(calibrated / "04_feature" / "calibration" / "examples")
    assert set(examples["latent"]) == set(words["latent"]) and set(examples["hookpoint"]) == {"embed_tokens"}
    # every activating example marks its word, every non-activating example lacks it
    word_of = dict(zip(words["latent"], words["token_id"]))
    for r in examples.itertuples():
        assert (word_of[r.latent] in list(r.token_ids)) == (r.kind == "activating")
    hits = pd.read_csv(out / "hits.csv")
    assert set(hits["explainer"]) == {"default", "tokens"} and len(hits) == 8
    assert hits.loc[hits["explainer"] == "tokens", "hit"].all()  # its sentence names the token
    print("explanations:\n" + hits[["word", "explainer", "explanation", "hit"]].to_string())


def test_embedding_scorer_tells_true_from_shuffled(calibrated, mlflow_runs):
    out = calibrated / "08_reporting" / "calibration"
    v = pd.read_csv(out / "verdicts.csv").set_index("scorer")
    s = pd.read_csv(out / "summary.csv")
    print(v.to_string(), "\n", s.to_string())
    emb = v.loc["embedding"]
    assert emb["n_latents"] == 4 and emb["true"] > emb["shuffled"]
    assert emb["delta"] > 0.2  # measured: true 0.92, shuffled 0.41, delta 0.51 [0.40, 0.65] (informative)
    assert set(s["explanation"]) == {"true", "shuffled", "default", "default (shuffled)", "tokens", "tokens (shuffled)"}
    assert (emb["verdict"] == INFORMATIVE) == (emb["delta"] >= 0.2 and emb["delta_lo"] > 0)
    runs = mlflow_runs(calibrated)
    m = runs[0].data.metrics
    assert m["calibrate.embedding.delta"] == pytest.approx(emb["delta"]) and m["calibrate.hit_rate.tokens"] == 1.0
