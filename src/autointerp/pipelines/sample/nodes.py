"""Nodes of the ``sample`` pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from autointerp.config import parse_config
from autointerp.dictionaries import dictionary_config
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig
from autointerp.pipelines.common import matched_for, mlflow_metrics
from autointerp.sampling import NEGATIVE_KINDS, OK, TOO_FEW_FOR_TEST, SampleConfig, SampleJob

log = logging.getLogger(__name__)


def sample_examples(
    tokens: np.ndarray,
    latent_cache: LatentCache,
    model: dict,
    hookpoints: dict,
    sample: dict,
    matched_latents: pd.DataFrame | None = None,
    *,
    hookpoint: str,
    matching: str = "",
) -> tuple[SampleJob, SampleJob]:
    """The lazy job that the examples dataset runs (resuming unfinished partitions); the
    latents table is written by the same job into the same folder, so the one job is returned
    for both outputs and does its work once (the second save finds it done). With
    ``sample.selection.mode: matched`` it also gets the hookpoint's ``matched_latents`` table."""
    job = SampleJob(
        hookpoint=hookpoint,
        tokens=tokens,
        cache=latent_cache,
        model=parse_config(ModelConfig, model, "parameters: model"),
        dictionary=dictionary_config(hookpoints, hookpoint),
        config=parse_config(SampleConfig, sample, "parameters: sample"),
        matched=matched_for(hookpoint, matched_latents, matching),
    )
    return job, job


def sample_metrics(latents: pd.DataFrame, *, hookpoint: str) -> dict:
    """Counts of sampled and skipped latents and examples, as MLflow metrics."""
    ok = latents[latents["status"] == OK]
    metrics = {
        "latents_considered": float(len(latents)),
        "latents_ok": float(len(ok)),
        "latents_skipped": float(len(latents) - len(ok)),
        "latents_too_few_for_test": float((latents["status"] == TOO_FEW_FOR_TEST).sum()),
        "mean_train": float(ok["n_train"].mean()) if len(ok) else 0.0,
        "mean_test": float(ok["n_test"].mean()) if len(ok) else 0.0,
        "mean_non_activating": float(ok[[f"n_{k}" for k in NEGATIVE_KINDS]].sum(axis=1).mean()) if len(ok) else 0.0,
        "mean_train_non_activating": float(ok["n_train_non_activating"].mean())
        if len(ok) and "n_train_non_activating" in ok
        else 0.0,
    }
    return mlflow_metrics(f"sample.{hookpoint}", metrics)
