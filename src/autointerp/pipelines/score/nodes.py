"""Nodes of the ``score`` pipeline (Kedro glue over :mod:`autointerp.scoring`)."""

from __future__ import annotations

import pandas as pd

from autointerp.config import parse_config
from autointerp.hooks import run_context
from autointerp.pipelines.common import matched_for, mlflow_metrics
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun, as_frame
from autointerp.scoring.report import failure_warnings, plots, summary, summary_table


def llm_config(llm: dict | None, score: dict | None):
    from autointerp.llm import LLMConfig

    merged = dict(llm or {}) | dict((score or {}).get("llm") or {})
    return parse_config(LLMConfig, merged, "parameters: llm (with score.llm overrides)")


def score_latents(
    examples,
    explanations,
    score: dict,
    llm: dict,
    latents=None,
    matched_latents: pd.DataFrame | None = None,
    *,
    hookpoint: str,
    matching: str = "",
) -> ScoreJob:
    """The lazy scoring job of one hookpoint (the dataset runs it, resuming finished units);
    only latents whose sample status is ``ok`` in ``latents`` are scored. Under
    ``sample.selection.mode: matched`` the scorers that need an LLM take the hookpoint's matched
    latents first (``matched_latents``), as the LLM explainer does."""
    cfg = parse_config(ScoreConfig, score, "parameters: score")
    ex = as_frame(examples, "examples")
    if "hookpoint" in ex and len(ex):
        ex = ex[ex["hookpoint"] == hookpoint]
    return ScoreJob(
        hookpoint=hookpoint,
        examples=ex.reset_index(drop=True),
        explanations=as_frame(explanations, "explanations"),
        config=cfg,
        llm=llm_config(llm, score),
        credentials=run_context().llm_credentials(),
        latents=None if latents is None else as_frame(latents, "latents"),
        first=matched_for(hookpoint, matched_latents, matching, stage="score") or None,
    )


def score_tables(
    run: ScoreRun, score: dict, *, hookpoint: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, dict]:
    """Per-example scores, per-unit metrics, the summary per (scorer, explainer), MLflow metrics
    (``score.<hookpoint>.<scorer>.<explainer>.<metric>``) and plots of one hookpoint. A scorer
    with more failed examples than ``score.max_failed_fraction`` is flagged in the summary
    (``too_many_failures``), in MLflow and by a WARNING."""
    cfg = parse_config(ScoreConfig, score, "parameters: score")
    scores, metrics = run.scores(), run.metrics()
    table = summary_table(metrics, n_boot=cfg.n_bootstrap, seed=cfg.seed, max_failed_fraction=cfg.max_failed_fraction)
    failure_warnings(table, hookpoint, cfg.max_failed_fraction)
    flat = summary(metrics, table=table)
    mlflow = mlflow_metrics(f"score.{hookpoint}", flat)
    return scores, metrics, table, mlflow, plots(scores, metrics, hookpoint)
