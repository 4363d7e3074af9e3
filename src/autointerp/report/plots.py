"""Run-level plots (matplotlib, Agg backend): firing frequency, score distributions real vs
control per scorer and hookpoint, mean real vs control, scorer-vs-scorer correlation and
similarity heatmaps. Each function returns ``{file name: Figure}``; a plot whose data is
missing is simply absent."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .data import HookpointData, ReportConfig  # noqa: E402
from .summaries import flat_metrics  # noqa: E402

REAL, CONTROL = "#1f77b4", "#aaaaaa"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def frequency_plot(data: list[HookpointData]) -> dict[str, Figure]:
    freqs = {
        d.hookpoint: pd.to_numeric(d.latents["frequency"], errors="coerce").dropna().to_numpy()
        for d in data
        if d.latents is not None and "frequency" in d.latents.columns
    }
    freqs = {k: v[v > 0] for k, v in freqs.items() if (v > 0).any()}
    if not freqs:
        return {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for hp, v in freqs.items():
        ax.hist(np.log10(v), bins=30, alpha=0.6, label=hp)
    ax.set_xlabel("log10 firing frequency (per token)")
    ax.set_ylabel("latents")
    ax.set_title("Firing frequency of the interpreted latents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"firing_frequency.png": fig}


def distribution_plots(data: list[HookpointData], cfg: ReportConfig) -> dict[str, Figure]:
    """Per metric: a grid hookpoint x scorer of histograms, each explainer's real explanations vs
    the shuffled control."""
    out = {}
    for metric in cfg.metrics:
        df = flat_metrics(data, metric).dropna(subset=["value"])
        if not len(df):
            continue
        hps, scs = sorted(df["hookpoint"].unique()), sorted(df["scorer"].unique())
        fig, axes = plt.subplots(
            len(hps), len(scs), figsize=(3.2 * len(scs), 2.6 * len(hps)), squeeze=False, sharex=True
        )
        bins = np.linspace(min(0.0, df["value"].min()), max(1.0, df["value"].max()), 21)
        for i, hp in enumerate(hps):
            for j, sc in enumerate(scs):
                ax = axes[i][j]
                sub = df[(df["hookpoint"] == hp) & (df["scorer"] == sc)]
                names = sorted(set(sub["explainer"]))
                for k, e in enumerate(names):  # each explainer's real explanations side by side
                    v = sub.loc[(sub["control"] == False) & (sub["explainer"] == e), "value"]  # noqa: E712
                    if len(v):
                        label = "real" if len(names) == 1 else e
                        ax.hist(
                            v,
                            bins=bins,
                            alpha=0.6,
                            color=REAL if len(names) == 1 else f"C{k}",
                            label=f"{label} (mean {v.mean():.2f})",
                        )
                v = sub.loc[sub["control"] == True, "value"]  # noqa: E712
                if len(v):
                    ax.hist(v, bins=bins, alpha=0.7, color=CONTROL, label=f"control (mean {v.mean():.2f})")
                ax.set_title(f"{hp} · {sc}", fontsize=9)
                ax.legend(fontsize=7)
                if i == len(hps) - 1:
                    ax.set_xlabel(metric)
        fig.suptitle(f"{metric}: real explanations vs shuffled control")
        fig.tight_layout()
        out[f"score_distributions_{_safe(metric)}.png"] = fig
    return out


def real_vs_control_plot(data: list[HookpointData], cfg: ReportConfig) -> dict[str, Figure]:
    """Mean of the first metric per (hookpoint, scorer, explainer), real vs control, with 95%
    intervals: every explainer (LLM and the statistical baseline) side by side."""
    metric = cfg.metrics[0]
    df = flat_metrics(data, metric).dropna(subset=["value"])
    if not len(df):
        return {}
    g = df.groupby(["hookpoint", "scorer", "explainer", "control"])["value"].agg(["mean", "std", "count"]).reset_index()
    keys = sorted({(h, s, e) for h, s, e in zip(g["hookpoint"], g["scorer"], g["explainer"])})
    multi = len({k[2] for k in keys}) > 1
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(keys) + 2), 3.8))
    x = np.arange(len(keys))
    for off, ctrl, color, label in ((-0.2, False, REAL, "real"), (0.2, True, CONTROL, "shuffled control")):
        means, errs = [], []
        for h, s, e in keys:
            r = g[(g["hookpoint"] == h) & (g["scorer"] == s) & (g["explainer"] == e) & (g["control"] == ctrl)]
            if len(r):
                n = float(r["count"].iloc[0])
                means.append(float(r["mean"].iloc[0]))
                errs.append(1.96 * float(np.nan_to_num(r["std"].iloc[0])) / np.sqrt(max(n, 1.0)))
            else:
                means.append(np.nan)
                errs.append(0.0)
        ax.bar(x + off, means, width=0.4, yerr=errs, color=color, label=label, capsize=3)
    ax.set_xticks(x, [f"{h}\n{s}" + (f"\n{e}" if multi else "") for h, s, e in keys], fontsize=7)
    ax.set_ylabel(f"mean {metric}")
    ax.set_title(f"Real vs shuffled-explanation control ({metric})" + (", per explainer" if multi else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"real_vs_control.png": fig}


def explainer_comparison_plot(data: list[HookpointData], cfg: ReportConfig) -> dict[str, Figure]:
    """Real minus control of the first metric per (hookpoint, scorer), one bar per explainer with
    its bootstrap 95% interval: does the LLM beat the statistical baseline?"""
    from .summaries import summary_rows

    rows = [
        r
        for r in summary_rows(data, cfg)
        if r["metric"] == cfg.metrics[0] and r["delta"] is not None and r["explainer"] != "none"
    ]
    names = sorted({r["explainer"] for r in rows})
    if len(names) < 2:
        return {}
    keys = sorted({(r["hookpoint"], r["scorer"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) + 2), 3.8))
    width = 0.8 / len(names)
    for i, e in enumerate(names):
        vals, lo, hi = [], [], []
        for k in keys:
            r = next((r for r in rows if (r["hookpoint"], r["scorer"]) == k and r["explainer"] == e), None)
            vals.append(np.nan if r is None else r["delta"])
            lo.append(0.0 if r is None or r["delta_lo"] is None else r["delta"] - r["delta_lo"])
            hi.append(0.0 if r is None or r["delta_hi"] is None else r["delta_hi"] - r["delta"])
        ax.bar(
            np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3, label=e
        )
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xticks(np.arange(len(keys)), [f"{h}\n{s}" for h, s in keys], fontsize=7)
    ax.set_ylabel(f"{cfg.metrics[0]}: real − control")
    ax.set_title("Explainers side by side (95% bootstrap intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"explainers.png": fig}


def correlation_plot(data: list[HookpointData], cfg: ReportConfig) -> dict[str, Figure]:
    """Spearman correlation between scorers over latents (real explanations, first metric)."""
    metric = cfg.metrics[0]
    df = flat_metrics(data, metric).dropna(subset=["value"])
    if not len(df):
        return {}
    df = df[~df["control"].astype(bool)]
    if df["scorer"].nunique() < 2:
        return {}
    wide = df.pivot_table(index=["hookpoint", "latent"], columns="scorer", values="value")
    corr = wide.rank().corr(min_periods=3)
    names = list(corr.columns)
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 2.5, 1.0 * len(names) + 1.8))
    im = ax.imshow(corr.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            v = corr.iat[i, j]
            ax.text(j, i, "–" if pd.isna(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"Scorer correlation (Spearman, {metric})", fontsize=10)
    fig.tight_layout()
    return {"scorer_correlation.png": fig}


def similarity_plots(matrices: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    out = {}
    for name, m in matrices.items():
        arr = m.to_numpy(dtype=float)
        fig, ax = plt.subplots(figsize=(5, 4.2))
        im = ax.imshow(arr, cmap="viridis", aspect="auto", interpolation="nearest")
        if arr.shape[0] <= 12 and arr.shape[1] <= 12:
            ax.set_xticks(range(arr.shape[1]), [str(c) for c in m.columns], rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(arr.shape[0]), [str(i) for i in m.index], fontsize=8)
            for i in range(arr.shape[0]):
                for j in range(arr.shape[1]):
                    if not np.isnan(arr[i, j]):
                        ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(name, fontsize=10)
        fig.tight_layout()
        out[f"similarity_{_safe(name)}.png"] = fig
    return out


def placeholder_plot(text: str) -> dict[str, Figure]:
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return {"no_data.png": fig}


def all_plots(
    data: list[HookpointData], cfg: ReportConfig, matrices: dict[str, pd.DataFrame] | None = None
) -> dict[str, Figure]:
    figs: dict[str, Figure] = {}
    figs.update(frequency_plot(data))
    figs.update(distribution_plots(data, cfg))
    figs.update(real_vs_control_plot(data, cfg))
    figs.update(explainer_comparison_plot(data, cfg))
    figs.update(correlation_plot(data, cfg))
    figs.update(similarity_plots(matrices or {}))
    if not figs:  # the plots folder always exists (it is logged to MLflow)
        figs.update(placeholder_plot("No stage outputs to plot yet: run sample, explain and score."))
    return figs
