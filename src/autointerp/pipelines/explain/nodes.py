"""Nodes of the ``explain`` pipeline."""

from __future__ import annotations

import os

import pandas as pd

from autointerp.config import parse_config
from autointerp.explainers import REGISTRY, ExplainConfig, ExplainJob
from autointerp.explainers.job import STATISTICS_MODEL
from autointerp.explainers.prompts import echoed_answer
from autointerp.llm import LLMConfig
from autointerp.pipelines.common import matched_for, mlflow_metrics


def llm_config(llm: dict) -> LLMConfig:
    return parse_config(LLMConfig, llm, "parameters: llm (conf/base/parameters_llm.yml)")


def llm_credentials() -> dict | None:
    """The ``llm`` entry of the run's Kedro credentials, if any (see :mod:`autointerp.hooks`). Never logged."""
    from autointerp.hooks import run_context

    return run_context().llm_credentials()


def explain_latents(
    examples,
    latents: pd.DataFrame,
    corpus_tokens,
    llm: dict,
    explain: dict,
    matched_latents: pd.DataFrame | None = None,
    *,
    hookpoint: str,
    matching: str = "",
) -> ExplainJob:
    """The lazy job the explanations dataset runs, resuming where a killed run stopped: every
    configured explainer over the sample's ``ok`` latents (``corpus_tokens`` gives the
    statistical explainer its token frequencies). Under ``sample.selection.mode: matched`` the
    LLM explainers take the hookpoint's matched latents first (``matched_latents``, in match
    order), so ``explain.max_latents`` covers the pairs the similarity measures compare."""
    cfg = llm_config(llm)
    exp_cfg = parse_config(ExplainConfig, explain, "parameters: explain")
    uses_llm = any(REGISTRY[n].uses_llm for n in exp_cfg.explainers) and exp_cfg.max_latents != 0
    needs_key = uses_llm and cfg.backend == "openai" and cfg.api_key_env and not os.environ.get(cfg.api_key_env)
    return ExplainJob(
        hookpoint=hookpoint,
        examples=examples,
        llm=cfg,
        explain=exp_cfg,
        credentials=llm_credentials() if needs_key else None,
        corpus_tokens=corpus_tokens,
        latents=latents,
        first=matched_for(hookpoint, matched_latents, matching, stage="explain") or None,
    )


def explain_metrics(explanations: pd.DataFrame, *, hookpoint: str) -> dict:
    """Failures and LLM usage of the explanations, as MLflow metrics: rows and failures of
    all explainers together and per explainer (``explain.<hookpoint>.<explainer>.latents`` /
    ``.failed`` / ``.echoed`` (final answers that echo a worked example) / ``.echoed_first``
    (first answers that did, asked again) / ``.attempts`` (LLM requests)), tokens over the LLM
    explainers' rows."""
    n = len(explanations)
    failed = int(explanations["failure"].notna().sum()) if n else 0
    llm = explanations[explanations["model"] != STATISTICS_MODEL] if n else explanations
    metrics = {
        "latents": float(n),
        "failed": float(failed),
        "failure_rate": failed / n if n else 0.0,
        "prompt_tokens": float(llm["prompt_tokens"].sum()) if len(llm) else 0.0,
        "completion_tokens": float(llm["completion_tokens"].sum()) if len(llm) else 0.0,
        "tokens_per_explanation": float((llm["prompt_tokens"] + llm["completion_tokens"]).mean()) if len(llm) else 0.0,
    }
    if n and "explainer" in explanations:
        for name, g in explanations.groupby("explainer"):
            metrics[f"{name}.latents"] = float(len(g))
            metrics[f"{name}.failed"] = float(g["failure"].notna().sum())
            metrics[f"{name}.echoed"] = float(sum(echoed_answer(f) is not None for f in g["failure"]))
            if "echoed_first" in g:
                metrics[f"{name}.echoed_first"] = float(g["echoed_first"].fillna(False).astype(bool).sum())
            if "attempts" in g:
                metrics[f"{name}.attempts"] = float(g["attempts"].fillna(0).sum())
    meta = explanations.attrs.get("meta") or {}
    for k, v in (meta.get("usage_this_run") or {}).items():
        metrics[f"run_{k}"] = float(v)
    if meta.get("seconds_this_run") and meta.get("explained_this_run"):
        metrics["latents_per_s"] = meta["explained_this_run"] / meta["seconds_this_run"]
    return mlflow_metrics(f"explain.{hookpoint}", metrics)
