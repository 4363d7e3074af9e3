"""Nodes of the ``score`` pipeline (Kedro glue over :mod:`autointerp.scoring`)."""

from __future__ import annotations

import pandas as pd

from autointerp.config import parse_config
from autointerp.hooks import run_context
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun, as_frame
from autointerp.scoring.report import plots, summary


def llm_config(llm: dict | None, score: dict | None):
    from autointerp.llm import LLMConfig

    merged = dict(llm or {}) | dict((score or {}).get("llm") or {})
    return parse_config(LLMConfig, merged, "parameters: llm (with score.llm overrides)")


def score_latents(examples, explanations, score: dict, llm: dict, *, hookpoint: str) -> ScoreJob:
    """The lazy scoring job of one hookpoint (the dataset runs it, resuming finished latents)."""
    cfg = parse_config(ScoreConfig, score, "parameters: score")
    ex = as_frame(examples, "examples")
    if "hookpoint" in ex and len(ex):
        ex = ex[ex["hookpoint"] == hookpoint]
    return ScoreJob(hookpoint=hookpoint, examples=ex.reset_index(drop=True),
                    explanations=as_frame(explanations, "explanations"), config=cfg, llm=llm_config(llm, score),
                    credentials=run_context().llm_credentials())


def score_tables(run: ScoreRun, score: dict, *, hookpoint: str) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """Per-example scores, per-latent metrics, MLflow metrics and plots of one hookpoint."""
    cfg = parse_config(ScoreConfig, score, "parameters: score")
    scores, metrics = run.scores(), run.metrics()
    flat = summary(metrics, n_boot=cfg.n_bootstrap, seed=cfg.seed)
    mlflow = {f"score.{hookpoint}.{k}": {"value": float(v), "step": 0} for k, v in flat.items()}
    return scores, metrics, mlflow, plots(scores, metrics, hookpoint)
