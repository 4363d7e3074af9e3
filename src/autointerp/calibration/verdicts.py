"""What the known-answer latents say: the explainer hit rate, and a verdict per scorer.

- Hit rate: the fraction of an explainer's explanations that name the latent's word
  (case-insensitive, as a whole word); a failed explanation is a miss.
- Per scorer, over the known-answer latents: the metric (AUROC, else balanced accuracy) with the
  true explanation, with each explainer's own, and with shuffled true explanations (the score
  stage's control: the true explanations permuted among the latents), each with a bootstrap 95%
  interval; and true minus shuffled, paired per latent, with its interval.
- Verdict: ``informative`` when true minus shuffled is at least ``min_delta`` and its interval
  excludes 0; otherwise ``not informative with this model``. A scorer that reads no
  explanation (intruder) gets ``not applicable``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..scoring.metrics import bootstrap_ci
from .config import TRUE_EXPLAINER

INFORMATIVE = "informative"
NOT_INFORMATIVE = "not informative with this model"
NOT_APPLICABLE = "not applicable (reads no explanation)"
METRICS = ("auroc", "balanced_accuracy")
HIT_COLUMNS = ["latent", "word", "explainer", "explanation", "failure", "hit"]
VERDICT_COLUMNS = [
    "scorer",
    "metric",
    "true",
    "true_lo",
    "true_hi",
    "shuffled",
    "shuffled_lo",
    "shuffled_hi",
    "delta",
    "delta_lo",
    "delta_hi",
    "n_latents",
    "verdict",
]


def names_word(explanation, word: str) -> bool:
    if not isinstance(explanation, str) or not word:
        return False
    return re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", explanation, re.IGNORECASE) is not None


def hit_table(explanations: pd.DataFrame, words: pd.DataFrame) -> pd.DataFrame:
    """One row per explanation of the run's explainers (the true ones left out), with ``hit``."""
    word_of = dict(zip(words["latent"].astype(int), words["word"]))
    ex = explanations[explanations["explainer"] != TRUE_EXPLAINER] if len(explanations) else explanations
    rows = []
    for r in ex.to_dict("records"):
        lat = int(r["latent"])
        if lat not in word_of:
            continue
        e = r.get("explanation")
        rows.append(
            {
                "latent": lat,
                "word": word_of[lat],
                "explainer": str(r.get("explainer") or "default"),
                "explanation": e if isinstance(e, str) else None,
                "failure": r.get("failure") if isinstance(r.get("failure"), str) else None,
                "hit": names_word(e, word_of[lat]),
            }
        )
    return pd.DataFrame(rows, columns=HIT_COLUMNS)


def hit_rates(hits: pd.DataFrame) -> dict[str, float]:
    return {str(k): float(g["hit"].mean()) for k, g in hits.groupby("explainer")} if len(hits) else {}


def _metric(g: pd.DataFrame) -> str | None:
    return next((m for m in METRICS if m in g and pd.to_numeric(g[m], errors="coerce").notna().any()), None)


def _per_latent(g: pd.DataFrame, metric: str, explainer: str, control: bool) -> pd.Series:
    sub = g[(g["explainer"] == explainer) & (g["control"].astype(bool) == control)]
    return pd.to_numeric(sub[metric], errors="coerce").groupby(sub["latent"].astype(int)).mean()


def scorer_summary(metrics: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per scorer and explanation (``true``, ``shuffled``, each explainer's own and its own
    shuffled control): mean metric over the known-answer latents with a bootstrap 95% interval."""
    rows = []
    for scorer, g in metrics.groupby("scorer", sort=True):
        metric = _metric(g)
        if metric is None:
            continue
        for explainer in sorted(set(g["explainer"])):
            for control in (False, True):
                v = _per_latent(g, metric, explainer, control)
                if not len(v):
                    continue
                mean, lo, hi = bootstrap_ci(v.tolist(), n_boot=n_boot, seed=seed)
                if explainer == TRUE_EXPLAINER:
                    label = "shuffled" if control else "true"
                else:
                    label = f"{explainer} (shuffled)" if control else explainer
                rows.append(
                    {
                        "scorer": scorer,
                        "metric": metric,
                        "explanation": label,
                        "explainer": explainer,
                        "control": control,
                        "mean": mean,
                        "lo": lo,
                        "hi": hi,
                        "n_latents": int(v.notna().sum()),
                    }
                )
    return pd.DataFrame(
        rows, columns=["scorer", "metric", "explanation", "explainer", "control", "mean", "lo", "hi", "n_latents"]
    )


def verdicts(metrics: pd.DataFrame, min_delta: float = 0.2, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per scorer: true, shuffled and true minus shuffled (paired per latent) with
    bootstrap 95% intervals, and the verdict (see the module docstring)."""
    rows = []
    for scorer, g in metrics.groupby("scorer", sort=True):
        metric = _metric(g)
        if TRUE_EXPLAINER not in set(g["explainer"]) or metric is None:
            rows.append(
                {
                    "scorer": scorer,
                    "metric": metric,
                    "n_latents": 0,
                    "verdict": NOT_APPLICABLE if TRUE_EXPLAINER not in set(g["explainer"]) else NOT_INFORMATIVE,
                }
            )
            continue
        true, shuf = _per_latent(g, metric, TRUE_EXPLAINER, False), _per_latent(g, metric, TRUE_EXPLAINER, True)
        paired = (true - shuf).dropna()
        t, t_lo, t_hi = bootstrap_ci(true.tolist(), n_boot=n_boot, seed=seed)
        s, s_lo, s_hi = bootstrap_ci(shuf.tolist(), n_boot=n_boot, seed=seed)
        d, d_lo, d_hi = bootstrap_ci(paired.tolist(), n_boot=n_boot, seed=seed)
        ok = len(paired) >= 2 and d >= min_delta and d_lo > 0
        rows.append(
            {
                "scorer": scorer,
                "metric": metric,
                "true": t,
                "true_lo": t_lo,
                "true_hi": t_hi,
                "shuffled": s,
                "shuffled_lo": s_lo,
                "shuffled_hi": s_hi,
                "delta": d,
                "delta_lo": d_lo,
                "delta_hi": d_hi,
                "n_latents": int(len(paired)),
                "verdict": INFORMATIVE if ok else NOT_INFORMATIVE,
            }
        )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def mlflow_metrics(words: pd.DataFrame, hits: pd.DataFrame, summary: pd.DataFrame, table: pd.DataFrame) -> dict:
    """Flat metrics, logged as ``calibrate.<key>`` (the dataset's prefix); NaN left out (MLflow rejects it)."""
    out = {
        "words": float(len(words)),
        "exact": float((words["status"] == "ok").sum()) if "status" in words else 0.0,
        "refused": float((words["status"] != "ok").sum()) if "status" in words else 0.0,
    }
    out.update({f"hit_rate.{k}": v for k, v in hit_rates(hits).items()})
    for r in summary.itertuples():
        key = (
            "shuffled"
            if r.explanation == "shuffled"
            else ("true" if r.explanation == "true" else f"own.{r.explainer}" + (".shuffled" if r.control else ""))
        )
        out.update(
            {
                f"{r.scorer}.{r.metric}.{key}": r.mean,
                f"{r.scorer}.{r.metric}.{key}.lo": r.lo,
                f"{r.scorer}.{r.metric}.{key}.hi": r.hi,
            }
        )
    for r in table.itertuples():
        out.update(
            {
                f"{r.scorer}.delta": r.delta,
                f"{r.scorer}.delta.lo": r.delta_lo,
                f"{r.scorer}.delta.hi": r.delta_hi,
                f"{r.scorer}.informative": float(r.verdict == INFORMATIVE),
            }
        )
    return {k: {"value": float(v), "step": 0} for k, v in out.items() if v is not None and np.isfinite(float(v))}
