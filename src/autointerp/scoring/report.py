"""Aggregates per hookpoint (bootstrap confidence intervals, real minus control) and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import bootstrap_ci

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc", "correlation")


def summary(metrics: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Flat ``{scorer.metric[.control|.delta|.lo|.hi]: value}`` over the latents of one hookpoint:
    mean with a 95% bootstrap interval for the real explanations, mean for the control, and
    real minus control; plus failures and cost per latent."""
    out: dict[str, float] = {}
    for scorer, g in metrics.groupby("scorer"):
        real, ctrl = g[~g["control"].astype(bool)], g[g["control"].astype(bool)]
        for m in SUMMARY_METRICS:
            if m not in g or g[m].isna().all():
                continue
            v, lo, hi = bootstrap_ci(real[m].tolist(), n_boot=n_boot, seed=seed)
            out.update({f"{scorer}.{m}": v, f"{scorer}.{m}.lo": lo, f"{scorer}.{m}.hi": hi})
            if len(ctrl) and not ctrl[m].isna().all():
                c = float(np.nanmean(ctrl[m]))
                out[f"{scorer}.{m}.control"] = c
                out[f"{scorer}.{m}.delta"] = v - c
        out[f"{scorer}.failed_fraction"] = float(g["n_failed"].sum() / max(g["n"].sum(), 1))
        out[f"{scorer}.latents"] = float(real["latent"].nunique())
        for c in ("prompt_tokens", "completion_tokens", "seconds"):
            out[f"{scorer}.{c}_per_latent"] = float(real[c].mean()) if len(real) else float("nan")
    return {k: v for k, v in out.items() if v == v}  # MLflow rejects nan


def plots(scores: pd.DataFrame, metrics: pd.DataFrame, hookpoint: str) -> dict:
    """Matplotlib figures by file name: score distributions, real vs control, recall by
    quantile, correlation between scorers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    scorers = sorted(scores["scorer"].unique()) if len(scores) else []
    fig, axes = plt.subplots(1, max(len(scorers), 1), figsize=(4 * max(len(scorers), 1), 3), squeeze=False)
    for ax, s in zip(axes[0], scorers):
        g = scores[(scores["scorer"] == s) & (~scores["control"].astype(bool)) & scores["score"].notna()]
        for label, name in ((1, "activating / right"), (0, "not")):
            ax.hist(g[g["label"] == label]["score"].astype(float), bins=20, alpha=0.6, label=name)
        ax.set_title(s)
        ax.legend(fontsize=7)
    fig.suptitle(f"{hookpoint}: score distributions")
    fig.tight_layout()
    figs["score_distributions.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 3))
    rows = []
    for s, g in metrics.groupby("scorer"):
        m = "auroc" if g["auroc"].notna().any() else "accuracy"
        rows.append((f"{s}\n({m})", g[~g["control"].astype(bool)][m].mean(), g[g["control"].astype(bool)][m].mean()))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r[1] for r in rows], 0.4, label="real")
    ax.bar(x + 0.2, [r[2] for r in rows], 0.4, label="shuffled")
    ax.set_xticks(x, [r[0] for r in rows], fontsize=7)
    ax.legend()
    ax.set_title(f"{hookpoint}: real vs shuffled explanations")
    fig.tight_layout()
    figs["real_vs_control.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 3))
    qcols = sorted([c for c in metrics.columns if c.startswith("recall_q")], key=lambda c: int(c[8:]))
    for s, g in metrics[~metrics["control"].astype(bool)].groupby("scorer"):
        if qcols and g[qcols].notna().any().any():
            ax.plot(range(len(qcols)), g[qcols].mean().values, marker="o", label=s)
    ax.set_xlabel("activation quantile (high = strongest)")
    ax.set_ylabel("recall")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figs["recall_by_quantile.png"] = fig

    fig, ax = plt.subplots(figsize=(4, 4))
    real = metrics[~metrics["control"].astype(bool)]
    val = real.assign(v=real["auroc"].fillna(real["accuracy"])).pivot_table(index="latent", columns="scorer", values="v")
    corr = val.corr() if val.shape[1] > 1 else pd.DataFrame()
    if len(corr):
        im = ax.imshow(corr.values, vmin=-1, vmax=1, cmap="RdBu")
        ax.set_xticks(range(len(corr)), corr.columns, rotation=45, fontsize=7)
        ax.set_yticks(range(len(corr)), corr.index, fontsize=7)
        fig.colorbar(im)
    ax.set_title("correlation between scorers (per latent)")
    fig.tight_layout()
    figs["scorer_correlation.png"] = fig
    return figs
