"""Latents vs neurons: score distributions of several dictionaries side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .measures import bootstrap_ci


def dictionary_label(cfg: dict) -> str:
    """``SAE (sparsify)``, ``neurons`` or ``top-32 neurons`` from a hookpoint's dictionary config."""
    fmt = (cfg or {}).get("format", "sparsify")
    if fmt == "neurons":
        k = (cfg or {}).get("k")
        return f"top-{k} neurons" if k else "neurons"
    return f"SAE ({fmt})"


def compare_scores(
    tables: dict[str, pd.DataFrame | None],
    labels: dict[str, str],
    metric: str = "balanced_accuracy",
    seed: int = 0,
    bootstrap: int = 1000,
) -> pd.DataFrame:
    """Per (hookpoint, scorer, control): n latents, mean ``metric`` with a bootstrap 95% CI, quartiles.

    ``tables``: hookpoint -> per-latent score metrics (docs/formats.md); a missing table gives a
    row saying so instead of failing.
    """
    rows = []
    for h, df in tables.items():
        if df is None or len(df) == 0 or metric not in getattr(df, "columns", []):
            rows.append(
                {
                    "hookpoint": h,
                    "dictionary": labels.get(h, h),
                    "scorer": None,
                    "control": None,
                    "n": 0,
                    "mean": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "q25": np.nan,
                    "median": np.nan,
                    "q75": np.nan,
                    "note": f"no '{metric}' scores: run `kedro run --pipelines score`",
                }
            )
            continue
        keys = [c for c in ("scorer", "control") if c in df.columns]
        groups = df.groupby(keys, dropna=False) if keys else [((), df)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            v = g[metric].astype(float).dropna().to_numpy()
            lo, hi = bootstrap_ci(v, seed=seed, n=bootstrap)
            rec = dict(zip(keys, key))
            rows.append(
                {
                    "hookpoint": h,
                    "dictionary": labels.get(h, h),
                    "scorer": rec.get("scorer"),
                    "control": rec.get("control"),
                    "n": int(len(v)),
                    "mean": float(v.mean()) if len(v) else np.nan,
                    "ci_low": lo,
                    "ci_high": hi,
                    "q25": float(np.quantile(v, 0.25)) if len(v) else np.nan,
                    "median": float(np.median(v)) if len(v) else np.nan,
                    "q75": float(np.quantile(v, 0.75)) if len(v) else np.nan,
                    "note": None,
                }
            )
    return pd.DataFrame(rows)


def scores_figure(table: pd.DataFrame, metric: str = "balanced_accuracy"):
    """Mean score with 95% CI per dictionary, one group of bars per scorer (real explanations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    t = table[table["n"] > 0]
    if "control" in t:
        t = t[t["control"].isin([False, None]) | t["control"].isna()]
    if t.empty:
        ax.text(0.5, 0.5, "no scores yet: run the score pipeline", ha="center")
        return fig
    scorers = list(dict.fromkeys(t["scorer"].fillna("all")))
    dicts = list(dict.fromkeys(t["dictionary"]))
    width = 0.8 / len(dicts)
    for j, d in enumerate(dicts):
        sub = (
            t[t["dictionary"] == d]
            .assign(scorer=lambda x: x["scorer"].fillna("all"))
            .set_index("scorer")
            .reindex(scorers)
        )
        err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]).clip(min=0)
        ax.bar(np.arange(len(scorers)) + j * width - 0.4 + width / 2, sub["mean"], width, yerr=err, capsize=3, label=d)
    ax.set_xticks(np.arange(len(scorers)), scorers)
    ax.set_ylabel(f"mean {metric} (95% CI)")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title("SAE latents vs MLP neurons")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
