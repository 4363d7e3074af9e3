"""The sample pipeline through real `kedro run`s: a missing cache, then a run on a real cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .conftest import HOOKPOINT, random_sae

ROOT = Path(__file__).resolve().parents[2]


def test_kedro_sample_run(sample_cache, tmp_path, kedro, mlflow_runs):
    root, tokens, cache, _ = sample_cache
    data = tmp_path / "data"
    (data / "02_intermediate").mkdir(parents=True)
    np.save(data / "02_intermediate" / "corpus_tokens.npy", tokens)
    args = ("--env", "test", "--pipelines", "sample", "--namespaces", "layers_2", "--params", f"data_root={data}")

    out = kedro(*args)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "kedro run --pipelines cache" in out.stderr and "Traceback" not in out.stderr

    shutil.copytree(cache.root, data / "03_primary" / "latents" / "layers_2")
    random_sae(data / "06_models" / "saes" / HOOKPOINT)  # the same seed as the cache's SAE
    out = kedro(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = data / "04_feature" / "examples" / "layers_2"
    ex = pd.read_parquet(folder / "examples")  # as a person would in a notebook
    lat = pd.read_parquet(folder / "latents.parquet")
    ok = lat[lat.status == "ok"]
    assert len(ok) >= 6 and len(lat) >= 8 and set(ex.latent) == set(ok.latent)
    assert set(ex.kind) == {"activating", "random", "neighbour", "embedding"}
    assert (ex.groupby("latent").size() > 10).all()

    runs = mlflow_runs(data)
    assert runs and runs[0].data.metrics["sample.layers.2.latents_ok"] == len(ok)
