"""Nodes of the ``sample`` pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from autointerp.config import parse_config
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig
from autointerp.pipelines.cache.nodes import dictionary_config
from autointerp.sampling import OK, SampleConfig, SampleJob


def sample_examples(tokens: np.ndarray, latent_cache: LatentCache, model: dict, hookpoints: dict, sample: dict,
                    *, hookpoint: str) -> tuple[SampleJob, SampleJob]:
    """The lazy job that the examples dataset runs (resuming unfinished partitions); the
    latents table is written by the same job into the same folder."""
    job = SampleJob(
        hookpoint=hookpoint,
        tokens=tokens,
        cache=latent_cache,
        model=parse_config(ModelConfig, model, "parameters: model"),
        dictionary=dictionary_config(hookpoints, hookpoint),
        config=parse_config(SampleConfig, sample, "parameters: sample"),
    )
    return job, job


def sample_metrics(latents: pd.DataFrame, *, hookpoint: str) -> dict:
    """Counts of sampled and skipped latents and examples, as MLflow metrics."""
    ok = latents[latents["status"] == OK]
    metrics = {
        "latents_considered": float(len(latents)),
        "latents_ok": float(len(ok)),
        "latents_skipped": float(len(latents) - len(ok)),
        "mean_train": float(ok["n_train"].mean()) if len(ok) else 0.0,
        "mean_test": float(ok["n_test"].mean()) if len(ok) else 0.0,
        "mean_non_activating": float(ok[["n_random", "n_neighbour", "n_embedding"]].sum(axis=1).mean()) if len(ok) else 0.0,
    }
    return {f"sample.{hookpoint}.{k}": {"value": v, "step": 0} for k, v in metrics.items()}
