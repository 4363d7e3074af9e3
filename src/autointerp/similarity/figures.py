"""Figures of one compared pair (heatmaps, distributions) and the overview of all pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .compare import SimilarityResult
from .matching import pair_kind


def heatmap_figures(result: SimilarityResult, n: int = 128) -> dict:
    """Heatmaps of each similarity matrix on the ``n`` most frequent matched latents (B reordered
    by the matching, so a good match is a bright diagonal), and histograms of matched-pair values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.matched
    a, b = m["hookpoint_a"].iloc[0] if len(m) else "A", m["hookpoint_b"].iloc[0] if len(m) else "B"
    top = m.sort_values("count_a", ascending=False).head(n)
    figs = {}
    for measure, mat in result.matrices.items():
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        if measure == "explanation_cosine":
            sub = mat[:n, :n]
            ax.set_xlabel(f"{b} explained latents"), ax.set_ylabel(f"{a} explained latents")
        else:
            ia, ib = top["latent_a"].to_numpy(), top["latent_b"].to_numpy()
            sub = mat[ia][:, ib].toarray() if sp.issparse(mat) else mat[np.ix_(ia, ib)]
            ax.set_xlabel(f"{b} latent (matched order)"), ax.set_ylabel(f"{a} latent (top {len(top)} by frequency)")
        im = ax.imshow(sub, aspect="auto", cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, label=measure)
        ax.set_title(f"{measure}: {a} vs {b}")
        fig.tight_layout()
        figs[f"heatmap_{measure}.png"] = fig
    cols = [c for c in ("jaccard", "decoder_cosine") if c in m] + [
        c for c in m.columns if c.startswith(("explanation_cosine", "cross_score")) and m[c].notna().any()
    ]  # every compared explainer's (``<measure>.<explainer>``), both cross-scoring directions
    fig, axes = plt.subplots(1, max(len(cols), 1), figsize=(4 * max(len(cols), 1), 3.2), squeeze=False)
    for ax, c in zip(axes[0], cols):
        v = m[c].dropna().to_numpy()
        ax.hist(v, bins=40, range=(min(0.0, float(v.min()) if len(v) else 0.0), 1.0), color="#4c72b0")
        ax.set_title(f"{c} (n={len(v)}, mean={v.mean():.2f})" if len(v) else f"{c} (none)")
        ax.set_xlabel("matched-pair similarity")
    fig.suptitle(f"{a} vs {b}: co-activation matching")
    fig.tight_layout()
    figs["distributions.png"] = fig
    return figs


def overview(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (pair, matching, measure) with the pair's stream kind (residual / mlp / mixed)."""
    if not summaries:
        return pd.DataFrame()
    df = pd.concat(summaries, ignore_index=True)
    df.insert(2, "kind", [pair_kind(a, b) for a, b in zip(df["hookpoint_a"], df["hookpoint_b"])])
    return df


def overview_figure(df: pd.DataFrame):
    """Bars per measure, pairs grouped by stream kind: the mean matched-pair similarity (95% CI,
    chance level as a black tick) and, below, its lift over chance (``mean - chance``, 95% CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_lift) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    if df.empty:
        ax.text(0.5, 0.5, "no pairs compared", ha="center")
        return fig
    df = df.assign(label=df["matching"] + "\n" + df["measure"], pair=df["hookpoint_a"] + " vs " + df["hookpoint_b"])
    if "lift_diff" not in df:
        df = df.assign(
            lift_diff=df["mean"] - df["chance"],
            lift_diff_ci_low=df["ci_low"] - df["chance"],
            lift_diff_ci_high=df["ci_high"] - df["chance"],
        )
    labels = list(dict.fromkeys(df["label"]))
    pairs = list(dict.fromkeys(df.sort_values("kind")["pair"]))
    width = 0.8 / max(len(pairs), 1)
    colors = {"residual": "#4c72b0", "mlp": "#dd8452", "mixed": "#55a868"}
    for j, p in enumerate(pairs):
        sub = df[df["pair"] == p].set_index("label").reindex(labels)
        kind = df.loc[df["pair"] == p, "kind"].iloc[0]
        x = np.arange(len(labels)) + j * width - 0.4 + width / 2
        style = dict(color=colors.get(kind), alpha=0.5 + 0.5 * (j % 2), capsize=2)
        err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]).clip(min=0)
        l0 = ""
        if {"l0_a", "l0_b"} <= set(sub.columns) and sub["l0_a"].notna().any():
            l0 = f", L0 {sub['l0_a'].dropna().iloc[0]:.0f}/{sub['l0_b'].dropna().iloc[0]:.0f}"
        ax.bar(x, sub["mean"], width, yerr=err, label=f"{p} ({kind}{l0})", **style)
        ax.scatter(x, sub["chance"], marker="_", color="black", s=60, zorder=3)
        err = np.vstack([sub["lift_diff"] - sub["lift_diff_ci_low"], sub["lift_diff_ci_high"] - sub["lift_diff"]]).clip(
            min=0
        )
        ax_lift.bar(x, sub["lift_diff"], width, yerr=err, **style)
    ax_lift.axhline(0, color="grey", lw=0.8)
    ax_lift.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylabel("mean matched-pair similarity\n(black: chance)")
    ax_lift.set_ylabel("lift over chance\n(mean - chance)")
    ax.set_title("adjacent residual vs adjacent MLP dictionaries")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
