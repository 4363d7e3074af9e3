"""Issue 15.3-15.4: the rows of an experiment side by side (score_comparison.csv/png): per row,
scorer and explainer, only latents with status ok, real minus shuffled control paired per latent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from autointerp import similarity as sim


def metrics_table(hookpoint: str, real: np.ndarray, control: np.ndarray, explainer: str, scorer="embedding"):
    """A score_metrics table (docs/formats.md) of one scorer and explainer: one real and one control
    unit per latent."""
    n = len(real)
    return pd.DataFrame(
        {
            "hookpoint": hookpoint,
            "latent": np.tile(np.arange(n), 2),
            "explainer": explainer,
            "scorer": scorer,
            "control": np.repeat([False, True], n),
            "status": "ok",
            "auroc": np.concatenate([real, control]),
        }
    )


def test_rows_explainers_status_and_paired_control():
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.3, 0.9, 40)  # latents differ a lot; real beats control by exactly 0.05 each
    sae = pd.concat(
        [
            metrics_table("layers.6.mlp", spread + 0.05, spread, "tokens"),
            metrics_table("layers.6.mlp", np.full(40, 0.5), np.full(40, 0.5), "default"),
        ]
    )
    # two latents without a number (their test set lacked a class): counted, never averaged
    sae.loc[(sae["explainer"] == "tokens") & sae["latent"].isin([0, 1]), ["status", "auroc"]] = [
        "no_activating_test",
        9,
    ]
    neurons = metrics_table("layers.6.mlp.neurons", spread, spread, "tokens")
    t = sim.compare_scores(
        {"layers.6.mlp": sae, "layers.6.mlp.neurons": neurons, "layers.6.mlp.topk": None},
        {"layers.6.mlp": "SAE (sparsify)", "layers.6.mlp.neurons": "neurons", "layers.6.mlp.topk": "top-32 neurons"},
        metric="auroc",
    )
    assert list(t.columns) == sim.score_comparison.COLUMNS
    row = t[(t["hookpoint"] == "layers.6.mlp") & (t["explainer"] == "tokens")].iloc[0]
    assert (row["n"], row["n_no_metric"]) == (38, 2)
    assert np.isclose(row["mean"], (spread[2:] + 0.05).mean())  # the status rows' 9 is left out
    # paired per latent: the difference is exactly 0.05 for every latent, so its interval is a point;
    # unpaired means would carry the latents' spread (an interval about 0.1 wide)
    assert (
        np.isclose(row["delta"], 0.05)
        and np.isclose(row["delta_ci_low"], 0.05)
        and np.isclose(row["delta_ci_high"], 0.05)
    )
    assert row["ci_high"] - row["ci_low"] > 0.05
    llm = t[(t["hookpoint"] == "layers.6.mlp") & (t["explainer"] == "default")].iloc[0]
    assert llm["n"] == 40 and np.isclose(llm["delta"], 0.0)  # explainers are separate rows
    neu = t[t["hookpoint"] == "layers.6.mlp.neurons"].iloc[0]
    assert neu["dictionary"] == "neurons" and np.isclose(neu["delta"], 0.0)
    missing = t[t["hookpoint"] == "layers.6.mlp.topk"].iloc[0]
    assert missing["n"] == 0 and "kedro run --pipelines score" in missing["note"]
    fig = sim.scores_figure(t, "auroc")
    assert len(fig.axes) == 2  # real scores and real minus control
    labels = [x.get_text() for x in fig.axes[1].get_xticklabels()]
    assert labels == ["embedding\ndefault", "embedding\ntokens"]
