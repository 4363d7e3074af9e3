"""Issue 15.3: the latents-vs-neurons experiment samples all three rows (SAE latents, raw MLP
neurons, top-k neurons of the same layer) through the same settings: one real `kedro run
--env latents_vs_neurons` of cache and sample on a small corpus (a random SAE stands in for the
trained one)."""

from __future__ import annotations

import pandas as pd

from autointerp.sampling import OK

from .conftest import random_sae

ROWS = {"layers_6_mlp": "SAE latents", "layers_6_mlp_neurons": "raw neurons", "layers_6_mlp_topk": "top-k neurons"}
N = 8


def test_three_rows_each_have_examples(tmp_path, kedro):
    # the environment reads the default run's SAE one level above its own data root
    random_sae(tmp_path / "06_models" / "saes" / "layers.6.mlp", n=512, k=32)
    root = tmp_path / "latents_vs_neurons"
    out = kedro(
        "--env",
        "latents_vs_neurons",
        "--pipelines",
        "cache,sample",
        "--params",
        f"data_root={root},corpus.n_tokens=8192,sample.selection.n={N},"
        "sample.negatives.embedding=0,sample.negatives.train.embedding=0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for ns, row in ROWS.items():
        folder = root / "04_feature" / "examples" / ns
        lat = pd.read_parquet(folder / "latents.parquet")
        ex = pd.read_parquet(folder / "examples")
        ok = set(lat.loc[lat["status"] == OK, "latent"])
        assert len(ok) >= N // 2, (row, lat["status"].value_counts().to_dict())
        assert set(ex["latent"]) == ok
        test = ex[ex["split"] == "test"]
        # every ok latent of every row has activating and non-activating test windows
        assert set(test.loc[test["kind"] == "activating", "latent"]) == ok, row
        assert set(test.loc[test["kind"] != "activating", "latent"]) == ok, row
