"""train_sae through Kedro: `kedro run --env test --pipelines train_sae` writes the sparsify folder,
its report, the loss-curve plot, and the cache stage's configured dictionary path finds it."""

from __future__ import annotations

import json

from autointerp.dictionaries import load_sparsify


def test_kedro_run_trains_and_writes_sparsify_layout(tmp_path, kedro):
    res = kedro(
        "--env", "test", "--pipelines", "train_sae", "--params", f"data_root={tmp_path},train_sae.n_tokens=1024"
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    folder = tmp_path / "06_models" / "saes" / "layers.2"
    report = json.loads((folder / "train_report.json").read_text())
    assert report["train_tokens"] > 900 and 0 < report["fvu"] < 1
    assert report["config"]["n_tokens"] == 1024 and report["curve"]["loss"] and report["final_loss"] > 0
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["k"] == 16 and cfg["num_latents"] == 1152
    coder = load_sparsify(tmp_path / "06_models" / "saes", "layers.2")  # the path the cache stage uses
    assert coder.num_latents == 1152
    assert (tmp_path / "08_reporting" / "train_sae" / "loss_curves" / "layers.2.png").stat().st_size > 1000
