"""Nodes of the ``cache`` pipeline."""

from __future__ import annotations

import numpy as np

from autointerp.caching import CacheConfig, CacheJob, HookpointCaches
from autointerp.config import parse_config
from autointerp.corpus import CorpusConfig, tokenize_corpus
from autointerp.dictionaries import dictionary_config
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig, load_model
from autointerp.pipelines.common import mlflow_metrics


def build_corpus(model: dict, corpus: dict) -> np.ndarray:
    """Token ids [contexts, ctx_len] of the configured corpus, in a seeded order."""
    model_cfg = parse_config(ModelConfig, model, "parameters: model")
    cfg = parse_config(CorpusConfig, corpus, "parameters: corpus")
    _, tokenizer = load_model(model_cfg)
    return tokenize_corpus(cfg, tokenizer)


def cache_job(tokens: np.ndarray, model: dict, hookpoints: dict, cache: dict, hookpoint: str) -> CacheJob:
    return CacheJob(
        hookpoint=hookpoint,
        tokens=tokens,
        model=parse_config(ModelConfig, model, "parameters: model"),
        dictionary=dictionary_config(hookpoints, hookpoint),
        cache=parse_config(CacheConfig, cache, "parameters: cache"),
    )


def cache_hookpoints(
    tokens: np.ndarray, trained_saes, model: dict, hookpoints: dict, cache: dict, *, folders: dict[str, str]
) -> HookpointCaches:
    """The lazy job caching every hookpoint of ``folders`` (cache folder -> hookpoint) from one
    forward pass per batch; the ``latent_caches`` dataset runs it, resuming unfinished chunks.

    ``trained_saes`` (the train_sae stage's folder) is an input only so that Kedro trains the
    project's own SAEs before caching with them; the dictionaries come from ``hookpoints``."""
    return HookpointCaches({folder: cache_job(tokens, model, hookpoints, cache, h) for folder, h in folders.items()})


def cache_latents(
    tokens: np.ndarray, trained_saes, model: dict, hookpoints: dict, cache: dict, latent_caches=None, *, hookpoint: str
) -> CacheJob:
    """The lazy job that the hookpoint's latent-cache dataset runs, resuming any unfinished chunks.

    After ``cache_hookpoints`` (``latent_caches``) it finds the cache complete; in a run of this
    namespace alone it computes it."""
    return cache_job(tokens, model, hookpoints, cache, hookpoint)


def cache_metrics(latent_cache: LatentCache, *, hookpoint: str) -> dict:
    """Statistics of a finished cache, as MLflow metrics."""
    st = latent_cache.stats()
    n = latent_cache.num_latents
    metrics = {
        "dead_fraction": float((st["firing_count"] == 0).mean()),
        "mean_l0": float(st["firing_count"].sum() / latent_cache.n_tokens),
        "tokens": float(latent_cache.n_tokens),
        "num_latents": float(n),
        "bytes_per_mtok": latent_cache.disk_bytes() / latent_cache.n_tokens * 1e6,
    }
    if "tokens_per_s" in latent_cache.meta:
        metrics["tokens_per_s"] = float(latent_cache.meta["tokens_per_s"])
    return mlflow_metrics(f"cache.{hookpoint}", metrics)
