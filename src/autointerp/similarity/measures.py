"""Per-pair measures and their SAE-level summaries (mean, bootstrap CI, fraction above threshold, chance)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import AutointerpError
from ..explainers import select_explainer


def explanation_table(
    explanations: pd.DataFrame | None, hookpoint: str, explainer: str | None = None
) -> dict[int, str]:
    """latent -> explanation of one explainer (``None``: the first LLM explainer present, as
    ``explainers.select_explainer``); failures and empty explanations dropped."""
    if explanations is None:
        return {}
    if not isinstance(explanations, pd.DataFrame) or not {"latent", "explanation"} <= set(explanations.columns):
        raise AutointerpError(
            f"the explanations of '{hookpoint}' lack the columns latent and explanation (docs/formats.md). "
            "Re-run `kedro run --pipelines explain`."
        )
    df = select_explainer(explanations, explainer)
    if "hookpoint" in df.columns:
        df = df[df["hookpoint"] == hookpoint] if (df["hookpoint"] == hookpoint).any() else df
    out = {}
    for lat, text in zip(df["latent"], df["explanation"]):
        if isinstance(text, str) and text.strip():
            out[int(lat)] = text.strip()
    return out


def _summary_row(
    matching: str,
    measure: str,
    values: np.ndarray,
    threshold: float,
    chance: float | None,
    seed: int,
    bootstrap: int,
    **extra,
) -> dict:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    row = {
        "matching": matching,
        "measure": measure,
        "n": int(len(values)),
        "threshold": threshold,
        "mean": np.nan,
        "median": np.nan,
        "std": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "frac_above": np.nan,
        "chance": np.nan if chance is None else float(chance),
    }
    if len(values):
        lo, hi = bootstrap_ci(values, seed=seed, n=bootstrap)
        row.update(
            mean=float(values.mean()),
            median=float(np.median(values)),
            std=float(values.std()),
            ci_low=lo,
            ci_high=hi,
            frac_above=float((values >= threshold).mean()),
        )
    row.update(lifts(row["mean"], row["ci_low"], row["ci_high"], row["chance"]))
    row.update(extra)
    return row


def lifts(mean: float, ci_low: float, ci_high: float, chance: float) -> dict[str, float]:
    """A measure as a lift over its chance level: ``lift_diff = mean - chance`` (with its 95% CI,
    the mean's CI shifted by the chance level) and ``lift_ratio = mean / chance`` (NaN when the
    chance level is not positive). Measures of different scales and pairs of different sparsity
    compare on these, not on the raw means."""
    ok = np.isfinite(chance)
    return {
        "lift_diff": float(mean - chance) if ok else np.nan,
        "lift_diff_ci_low": float(ci_low - chance) if ok else np.nan,
        "lift_diff_ci_high": float(ci_high - chance) if ok else np.nan,
        "lift_ratio": float(mean / chance) if ok and chance > 0 else np.nan,
    }


def bootstrap_ci(values, seed: int = 0, n: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1 or n < 1:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _default_embed(model_name: str):
    from ..embeddings import embed

    return lambda texts: embed(texts, model_name=model_name)


def summary_metrics(summary: pd.DataFrame, prefix: str) -> dict[str, float]:
    """Flat metrics ``{prefix}.{matching}.{measure}.{mean|frac_above|n|chance|lift_diff|lift_ratio|cross_eligible}``
    (finite values only)."""
    out = {}
    for r in summary.itertuples():
        for k in ("mean", "frac_above", "n", "chance", "lift_diff", "lift_ratio", "cross_eligible"):
            v = getattr(r, k, None)
            if v is not None and np.isfinite(v):
                out[f"{prefix}.{r.matching}.{r.measure}.{k}"] = float(v)
    if len(summary) and "unmatched" in summary:
        out[f"{prefix}.unmatched"] = float(summary["unmatched"].iloc[0])
    return out
