"""Aggregates per hookpoint, per (scorer, explainer): means with bootstrap confidence intervals,
real minus shuffled control, failures and cost; and plots.

Only metric rows with status ``ok`` enter a mean or an interval (a latent whose test examples
lack a class has no number, :mod:`.tables`); ``latents_no_metric`` counts the others.
``failed_fraction`` is the share of failed examples over all of a scorer's units (real and
control); above ``max_failed_fraction`` the row's ``too_many_failures`` is set and a WARNING
is logged: most of the requests failed, and the numbers describe the few that did not.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .metrics import bootstrap_ci
from .tables import OK, with_explainer, with_status

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc", "correlation")


def _ok(metrics: pd.DataFrame) -> pd.DataFrame:
    return with_status(with_explainer(metrics))


def summary_table(
    metrics: pd.DataFrame, n_boot: int = 1000, seed: int = 0, max_failed_fraction: float = 0.2
) -> pd.DataFrame:
    """One row per (scorer, explainer) of one hookpoint: ``latents`` (with a metric),
    ``latents_no_metric``, per metric its mean with ``.lo``/``.hi`` (95% bootstrap), ``.control``
    and ``.delta`` (real minus control), ``failed_fraction``, ``too_many_failures``, and
    tokens and seconds per latent."""
    metrics = _ok(metrics)
    rows = []
    if not len(metrics):
        return pd.DataFrame(
            columns=["scorer", "explainer", "latents", "latents_no_metric", "failed_fraction", "too_many_failures"]
        )
    for (scorer, explainer), g in metrics.groupby(["scorer", "explainer"], sort=True):
        control = g["control"].astype(bool)
        ok = g["status"] == OK
        real, ctrl = g[~control & ok], g[control & ok]
        failed = float(g["n_failed"].sum() / max(g["n"].sum(), 1))
        out = {
            "scorer": scorer,
            "explainer": explainer,
            "latents": int(real["latent"].nunique()),
            "latents_no_metric": int(g[~control & ~ok]["latent"].nunique()),
            "failed_fraction": failed,
            "too_many_failures": bool(failed > max_failed_fraction),
        }
        for m in SUMMARY_METRICS:
            if m not in g or real[m].isna().all():
                continue
            v, lo, hi = bootstrap_ci(real[m].tolist(), n_boot=n_boot, seed=seed)
            out.update({m: v, f"{m}.lo": lo, f"{m}.hi": hi})
            if len(ctrl) and not ctrl[m].isna().all():
                c = float(np.nanmean(ctrl[m]))
                out.update({f"{m}.control": c, f"{m}.delta": v - c})
        for c in ("prompt_tokens", "completion_tokens", "seconds"):
            out[f"{c}_per_latent"] = float(g[~control][c].mean()) if (~control).any() else float("nan")
        rows.append(out)
    return pd.DataFrame(rows)


def failure_warnings(table: pd.DataFrame, hookpoint: str, max_failed_fraction: float) -> list[str]:
    """The loud line for every (scorer, explainer) with too many failures (also logged)."""
    lines = []
    for r in table[table["too_many_failures"].astype(bool)].itertuples(index=False) if len(table) else []:
        lines.append(
            f"score {hookpoint}: {r.failed_fraction:.0%} of {r.scorer}'s examples failed for explainer "
            f"'{r.explainer}' (more than score.max_failed_fraction = {max_failed_fraction:.0%}); its "
            "numbers describe only the examples that did not fail. Look at the 'failure' column of the "
            "scores table."
        )
    for line in lines:
        log.warning(line)
    return lines


def summary(
    metrics: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    max_failed_fraction: float = 0.2,
    table: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Flat ``{scorer.explainer.metric[.control|.delta|.lo|.hi]: value}`` from :func:`summary_table`
    (for MLflow), with ``scorer.explainer.too_many_failures`` as 0 or 1."""
    if table is None:
        table = summary_table(metrics, n_boot, seed, max_failed_fraction)
    out: dict[str, float] = {}
    for r in table.to_dict("records"):
        key = f"{r.pop('scorer')}.{r.pop('explainer')}"
        for k, v in r.items():
            if isinstance(v, (bool, np.bool_)):
                v = float(v)
            if isinstance(v, (int, float, np.number)) and v == v:
                out[f"{key}.{k}"] = float(v)
    return out  # MLflow rejects nan


def plots(scores: pd.DataFrame, metrics: pd.DataFrame, hookpoint: str) -> dict:
    """Matplotlib figures by file name: score distributions, real vs control, recall by
    quantile, correlation between scorers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    metrics = _ok(metrics)
    metrics = metrics[metrics["status"] == OK]
    scores = with_explainer(scores)
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
    for (s, e), g in metrics.groupby(["scorer", "explainer"]):
        m = "auroc" if g["auroc"].notna().any() else "accuracy"
        rows.append(
            (f"{s}\n{e}\n({m})", g[~g["control"].astype(bool)][m].mean(), g[g["control"].astype(bool)][m].mean())
        )
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
    for (s, e), g in metrics[~metrics["control"].astype(bool)].groupby(["scorer", "explainer"]):
        if qcols and g[qcols].notna().any().any():
            ax.plot(range(len(qcols)), g[qcols].mean().values, marker="o", label=f"{s} / {e}")
    ax.set_xlabel("activation quantile (high = strongest)")
    ax.set_ylabel("recall")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figs["recall_by_quantile.png"] = fig

    fig, ax = plt.subplots(figsize=(4, 4))
    real = metrics[~metrics["control"].astype(bool)]
    val = real.assign(v=real["auroc"].fillna(real["accuracy"]), col=real["scorer"] + "/" + real["explainer"])
    val = val.pivot_table(index="latent", columns="col", values="v")
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
