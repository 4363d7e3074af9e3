"""The verdict logic and hit rate on hand-made metric tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from autointerp.calibration import INFORMATIVE, NOT_INFORMATIVE, hit_table, mlflow_metrics, scorer_summary, verdicts
from autointerp.calibration.verdicts import NOT_APPLICABLE, hit_rates, names_word


def table(scorer: str, true: list[float], shuffled: list[float], own: list[float] | None = None) -> pd.DataFrame:
    rows = []
    for lat, (t, s) in enumerate(zip(true, shuffled)):
        rows += [
            {"scorer": scorer, "latent": lat, "explainer": "true", "control": False, "auroc": t},
            {"scorer": scorer, "latent": lat, "explainer": "true", "control": True, "auroc": s},
        ]
        if own is not None:
            rows += [
                {"scorer": scorer, "latent": lat, "explainer": "default", "control": False, "auroc": own[lat]},
                {"scorer": scorer, "latent": lat, "explainer": "default", "control": True, "auroc": 0.5},
            ]
    return pd.DataFrame(rows)


def test_verdicts_follow_the_rule():
    m = pd.concat(
        [
            table("embedding", [0.9, 0.95, 0.85, 0.9, 0.92, 0.88], [0.5, 0.55, 0.45, 0.5, 0.6, 0.4], own=[0.7] * 6),
            table("detection", [0.52, 0.48, 0.5, 0.55, 0.47, 0.5], [0.5, 0.5, 0.49, 0.5, 0.52, 0.48]),  # chance
            table("fuzzing", [0.75, 0.70, 0.72, 0.74, 0.71, 0.73], [0.6] * 6),  # consistent but small: +0.13
            table("surprisal", [1.0, 0.1, 1.0, 0.2, 1.0, 0.35], [0.4] * 6),  # mean +0.21, the interval reaches 0
            pd.DataFrame([{"scorer": "intruder", "latent": 0, "explainer": "none", "control": False, "auroc": 0.8}]),
        ],
        ignore_index=True,
    )
    v = verdicts(m, min_delta=0.2, n_boot=500).set_index("scorer")
    assert v.loc["embedding", "verdict"] == INFORMATIVE and v.loc["embedding", "delta_lo"] > 0
    assert np.isclose(v.loc["embedding", "delta"], np.mean([0.4, 0.4, 0.4, 0.4, 0.32, 0.48]))
    assert v.loc["detection", "verdict"] == NOT_INFORMATIVE
    assert v.loc["fuzzing", "verdict"] == NOT_INFORMATIVE and v.loc["fuzzing", "delta_lo"] > 0
    assert v.loc["surprisal", "delta"] >= 0.2 and v.loc["surprisal", "delta_lo"] <= 0
    assert v.loc["surprisal", "verdict"] == NOT_INFORMATIVE
    assert v.loc["intruder", "verdict"] == NOT_APPLICABLE
    s = scorer_summary(m, n_boot=200)
    emb = s[s["scorer"] == "embedding"].set_index("explanation")
    assert set(emb.index) == {"true", "shuffled", "default", "default (shuffled)"}
    assert np.isclose(emb.loc["default", "mean"], 0.7) and emb.loc["true", "lo"] <= emb.loc["true", "mean"]
    flat = mlflow_metrics(
        pd.DataFrame({"word": ["a"], "status": ["ok"]}),
        hit_table(pd.DataFrame(), pd.DataFrame({"latent": [], "word": []})),
        s,
        v.reset_index(),
    )
    assert flat["embedding.informative"]["value"] == 1.0 and flat["detection.informative"]["value"] == 0
    assert "embedding.auroc.own.default" in flat and all(np.isfinite(x["value"]) for x in flat.values())


def test_hit_rate_counts_explanations_that_name_the_word():
    words = pd.DataFrame({"latent": [0, 1, 2], "word": ["hear", "sweet", "youth"]})
    expl = pd.DataFrame(
        [
            {"latent": 0, "explainer": "default", "explanation": 'The word "Hear" in dialogue', "failure": None},
            {
                "latent": 1,
                "explainer": "default",
                "explanation": "sweetness and light",
                "failure": None,
            },  # not the word
            {"latent": 2, "explainer": "default", "explanation": None, "failure": "echoed worked example"},
            {
                "latent": 0,
                "explainer": "tokens",
                "explanation": 'fires on " hear" (100% of activation mass)',
                "failure": None,
            },
            {"latent": 1, "explainer": "tokens", "explanation": 'fires on " sweet"', "failure": None},
            {"latent": 0, "explainer": "true", "explanation": 'the word "hear"', "failure": None},  # not counted
        ]
    )
    hits = hit_table(expl, words)
    assert len(hits) == 5 and hits["hit"].tolist() == [True, False, False, True, True]
    assert hit_rates(hits) == {"default": 1 / 3, "tokens": 1.0}
    assert names_word("HEAR!", "hear") and not names_word("hearing", "hear") and not names_word(None, "hear")
