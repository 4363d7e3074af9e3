"""Dictionaries side by side (SAE latents vs MLP neurons, SAE widths): per row, scorer and explainer
the score distribution of the latents scored with their real explanations (mean with a bootstrap
95% CI, quartiles), the shuffled control's mean, and real minus control paired per latent with
its CI. Only metric rows with status ``ok`` count (docs/scoring.md); ``n_no_metric`` counts the
others."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..scoring.tables import OK, with_explainer, with_status
from .measures import bootstrap_ci

COLUMNS = [
    "hookpoint",
    "dictionary",
    "scorer",
    "explainer",
    "metric",
    "n",
    "n_no_metric",
    "mean",
    "ci_low",
    "ci_high",
    "q25",
    "median",
    "q75",
    "control",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "note",
]


def dictionary_label(cfg: dict) -> str:
    """``SAE (sparsify)``, ``neurons`` or ``top-32 neurons`` from a hookpoint's dictionary config."""
    fmt = (cfg or {}).get("format", "sparsify")
    if fmt == "neurons":
        k = (cfg or {}).get("k")
        return f"top-{k} neurons" if k else "neurons"
    return f"SAE ({fmt})"


def _per_latent(g: pd.DataFrame, metric: str) -> pd.Series:
    """One value per latent (its mean over rows; each row is its own unit where no ``latent`` column)."""
    v = pd.to_numeric(g[metric], errors="coerce")
    return v.groupby(g["latent"]).mean().dropna() if "latent" in g.columns else v.dropna()


def _row(h: str, label: str, metric: str, **values) -> dict:
    return {c: np.nan for c in COLUMNS} | {"hookpoint": h, "dictionary": label, "metric": metric, "note": None} | values


def compare_scores(
    tables: dict[str, pd.DataFrame | None],
    labels: dict[str, str],
    metric: str = "balanced_accuracy",
    seed: int = 0,
    bootstrap: int = 1000,
) -> pd.DataFrame:
    """One row per (hookpoint, scorer, explainer) with the columns of :data:`COLUMNS`.

    ``tables``: hookpoint -> per-latent score metrics (docs/formats.md: ``latent, explainer,
    scorer, control, status`` and the metric); a missing table, or one without ``metric``, gives
    one row saying so (``n`` 0) instead of failing. Tables without ``explainer`` / ``status``
    (old runs) read as explainer ``default``, status ``ok``.
    """
    rows = []
    for h, df in tables.items():
        label = labels.get(h, h)
        if df is None or len(df) == 0 or metric not in getattr(df, "columns", []):
            note = f"no '{metric}' scores: run `kedro run --pipelines score`"
            rows.append(_row(h, label, metric, scorer=None, explainer=None, n=0, n_no_metric=0, note=note))
            continue
        df = with_status(with_explainer(df))
        df = df.assign(
            scorer=df["scorer"].astype(str) if "scorer" in df.columns else "all",
            control=df["control"].fillna(False).astype(bool) if "control" in df.columns else False,
        )
        for (scorer, explainer), g in df.groupby(["scorer", "explainer"], sort=True):
            ok = g["status"] == OK
            real = _per_latent(g[ok & ~g["control"]], metric)
            ctrl = _per_latent(g[ok & g["control"]], metric)
            bad = g[~ok & ~g["control"]]
            n_bad = int(bad["latent"].nunique()) if "latent" in bad.columns else len(bad)
            rec = _row(h, label, metric, scorer=scorer, explainer=explainer, n=len(real), n_no_metric=n_bad)
            if len(real):
                lo, hi = bootstrap_ci(real.to_numpy(), seed=seed, n=bootstrap)
                q25, med, q75 = np.quantile(real.to_numpy(), [0.25, 0.5, 0.75])
                rec |= dict(mean=float(real.mean()), ci_low=lo, ci_high=hi, q25=q25, median=med, q75=q75)
            else:
                rec["note"] = f"no latent with an '{metric}' (status ok) for this scorer and explainer"
            if len(ctrl):
                rec["control"] = float(ctrl.mean())
            if "latent" in g.columns and len(real) and len(ctrl):
                delta = (real - ctrl).dropna().to_numpy()
                if len(delta):
                    dlo, dhi = bootstrap_ci(delta, seed=seed, n=bootstrap)
                    rec |= dict(delta=float(delta.mean()), delta_ci_low=dlo, delta_ci_high=dhi)
            rows.append(rec)
    return pd.DataFrame(rows, columns=COLUMNS)


def _bars(ax, t: pd.DataFrame, groups: list[tuple], value: str, lo: str, hi: str) -> None:
    rows = list(dict.fromkeys(zip(t["hookpoint"], t["dictionary"])))
    width = 0.8 / len(rows)
    x = np.arange(len(groups))
    for j, (h, d) in enumerate(rows):
        sub = t[t["hookpoint"] == h].set_index(["scorer", "explainer"]).reindex(groups)
        err = np.vstack([sub[value] - sub[lo], sub[hi] - sub[value]])
        err = np.nan_to_num(err, nan=0.0).clip(min=0)
        pos = x + j * width - 0.4 + width / 2
        label = h if h == d else f"{h} ({d})"
        ax.bar(pos, sub[value], width, yerr=err, capsize=2, label=label)
        for p, v, n in zip(pos, sub[value], sub["n"]):
            if np.isfinite(v):
                ax.text(p, 0.01, f"{int(n)}", ha="center", va="bottom", fontsize=6, transform=ax.get_xaxis_transform())


def scores_figure(table: pd.DataFrame, metric: str = "balanced_accuracy"):
    """Paper-style figure: per (scorer, explainer) group one bar per dictionary, the mean ``metric``
    with real explanations (top) and real minus shuffled control (bottom), each with its 95% CI;
    the number at the foot of a bar is its count of latents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table[table["n"] > 0]
    if t.empty:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.text(0.5, 0.5, "no scores yet: run the score pipeline", ha="center")
        return fig
    groups = list(dict.fromkeys(zip(t["scorer"], t["explainer"])))
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.3 * len(groups) + 2), 7), sharex=True)
    _bars(axes[0], t, groups, "mean", "ci_low", "ci_high")
    axes[0].set_ylabel(f"mean {metric}\n(real explanations, 95% CI)")
    axes[0].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=7, loc="upper right")
    _bars(axes[1], t, groups, "delta", "delta_ci_low", "delta_ci_high")
    axes[1].set_ylabel("real - shuffled control\n(paired per latent, 95% CI)")
    axes[1].axhline(0.0, color="grey", lw=0.8)
    axes[1].set_xticks(np.arange(len(groups)), [f"{s}\n{e}" for s, e in groups], fontsize=8)
    dicts = " vs ".join(dict.fromkeys(t["dictionary"]))
    fig.suptitle(f"{dicts}: {metric} per scorer and explainer")
    fig.tight_layout()
    return fig
