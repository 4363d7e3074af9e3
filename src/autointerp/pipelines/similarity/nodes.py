"""Nodes of the ``similarity`` pipeline (thin glue over :mod:`autointerp.similarity`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from autointerp import similarity as sim
from autointerp.config import parse_config
from autointerp.dictionaries import DictionaryConfig, load_dictionary
from autointerp.errors import AutointerpError
from autointerp.latent_cache import LatentCache
from autointerp.pipelines.common import mlflow_metrics

log = logging.getLogger(__name__)

WHERE = "parameters: similarity"


def similarity_config(similarity: dict, hookpoints: dict | None = None) -> sim.SimilarityConfig:
    cfg = parse_config(sim.SimilarityConfig, similarity, WHERE)
    if hookpoints is not None:
        cfg.check_hookpoints(hookpoints, WHERE)
    return cfg


def _decoder(hookpoints: dict, hookpoint: str) -> np.ndarray | None:
    """``W_dec`` [n, d] of a hookpoint's dictionary; None for neurons (no decoder without the model)."""
    cfg = parse_config(DictionaryConfig, hookpoints[hookpoint], f"parameters: hookpoints.{hookpoint}")
    if cfg.format == "neurons":
        return None
    coder = load_dictionary(cfg, hookpoint)
    return coder.W_dec.detach().float().numpy()


def _check_cache(cache, hookpoint: str) -> LatentCache:
    if not isinstance(cache, LatentCache):
        raise AutointerpError(f"no latent cache for '{hookpoint}'. Run `kedro run --pipelines cache` first.")
    return cache


def _check_explanations(df, hookpoint: str):
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise AutointerpError(
            f"no explanations for '{hookpoint}'. Run `kedro run --pipelines explain` (after sample) first."
        )
    return df


def cross_scorer(
    examples_a, examples_b, llm: dict | None, score: dict | None, *, pair: tuple[str, str], scorer: str = "detection"
) -> sim.CrossScorer:
    """The score stage's ``scorer`` (its ``score.<scorer>`` settings, example counts and seed;
    for an LLM scorer ``llm`` with ``score.llm`` overrides), reading each hookpoint's test examples."""
    from autointerp.embeddings import DEFAULT_EMBEDDING_MODEL
    from autointerp.pipelines.score.nodes import llm_config
    from autointerp.scoring import ScoreConfig, as_frame

    a, b = pair
    tables = {}
    for h, ex in ((a, examples_a), (b, examples_b)):
        df = as_frame(ex, f"examples of '{h}'") if ex is not None else None
        tables[h] = sim.test_examples(df, h)
    if not tables[b]:
        raise AutointerpError(
            f"similarity.cross_scoring: no test examples for '{b}'. Run `kedro run --pipelines sample` first "
            "(or set similarity.cross_scoring.enabled: false)."
        )
    score_cfg = parse_config(ScoreConfig, score or {}, "parameters: score")
    judge = score_cfg.make(scorer)
    llm_cfg = llm_config(llm, score)
    if judge.uses_client:
        model = llm_cfg.model
    else:  # the embedding scorer
        model = getattr(judge.cfg, "model", None) or DEFAULT_EMBEDDING_MODEL

    def client():
        from autointerp.hooks import run_context
        from autointerp.llm import make_client

        return make_client(llm_cfg, credentials=run_context().llm_credentials())

    return sim.CrossScorer(
        tables[a],
        tables[b],
        None,
        judge,
        score_cfg.n_activating,
        score_cfg.n_non_activating,
        seed=score_cfg.seed,
        client_factory=client,
        scorer_model=model,
    )


def compare_pair(
    cache_a,
    cache_b,
    hookpoints: dict,
    similarity: dict,
    explanations_a=None,
    explanations_b=None,
    examples_a=None,
    examples_b=None,
    llm: dict | None = None,
    score: dict | None = None,
    *,
    pair: tuple[str, str],
):
    """Compare the dictionaries of one pair of hookpoints.

    Returns the matched pairs (co-activation matching, both explanations side by side), the
    summary per (matching, measure), the Jaccard and decoder-cosine matrices, the figures and
    the MLflow metrics.
    """
    a, b = pair
    cfg = similarity_config(similarity, hookpoints)
    cache_a, cache_b = _check_cache(cache_a, a), _check_cache(cache_b, b)
    for cache, h in ((cache_a, a), (cache_b, b)):
        if cache.hookpoint != h:
            raise AutointerpError(
                f"the cache given for '{h}' holds hookpoint '{cache.hookpoint}'. Re-run `kedro run --pipelines cache`."
            )
    explanations_a, explanations_b = _check_explanations(explanations_a, a), _check_explanations(explanations_b, b)
    W_a = W_b = None
    if cfg.decoder_baseline != "never":
        W_a, W_b = _decoder(hookpoints, a), _decoder(hookpoints, b)
    cross = None
    if cfg.cross_scoring.enabled and explanations_a is not None and examples_b is not None:
        cross = cross_scorer(examples_a, examples_b, llm, score, pair=pair, scorer=cfg.cross_scoring.scorer)
    elif cfg.cross_scoring.enabled:
        log.warning(
            "%s.cross_scoring: needs explanations and the sample stage's examples, not wired in this run: "
            "skipped for %s vs %s",
            WHERE,
            a,
            b,
        )
    result = sim.compare(
        cache_a,
        cache_b,
        cfg=cfg,
        explanations_a=explanations_a,
        explanations_b=explanations_b,
        W_dec_a=W_a,
        W_dec_b=W_b,
        cross_score=cross,
    )
    if result.unmatched:
        log.warning(
            "%s has %d latents, %s has %d: %d latents of the wider one are unmatched",
            a,
            cache_a.num_latents,
            b,
            cache_b.num_latents,
            result.unmatched,
        )
    figures = sim.heatmap_figures(result, cfg.heatmap_latents)
    metrics = sim.summary_metrics(result.summary, f"similarity.{a}__{b}")
    empty = np.zeros((0, 0), dtype=np.float32)
    jaccard = result.matrices["jaccard"]
    jaccard = empty if sp.issparse(jaccard) else jaccard  # the sparse method keeps no [na, nb] matrix
    return (
        result.matched,
        result.summary,
        jaccard.astype(np.float16),
        result.matrices.get("decoder_cosine", empty).astype(np.float16),
        figures,
        mlflow_metrics("", metrics),
    )


def match_pair(cache_a, cache_b, hookpoints: dict, similarity: dict, *, pair: tuple[str, str]) -> pd.DataFrame:
    """The top ``similarity.matched_latents`` co-activation matches of one pair, both sides."""
    a, b = pair
    cfg = similarity_config(similarity, hookpoints)
    cache_a, cache_b = _check_cache(cache_a, a), _check_cache(cache_b, b)
    return sim.pair_top_matched(cache_a, cache_b, cfg, cfg.matched_latents)


def matched_latents(*tables: pd.DataFrame, hookpoint: str) -> pd.DataFrame:
    """One hookpoint's matched latents over every pair it is in (read by ``sample.selection.mode: matched``)."""
    return sim.hookpoint_matched(hookpoint, *tables)


def similarity_overview(*summaries: pd.DataFrame):
    """All pairs side by side (residual vs MLP vs mixed pairs), as a table and a bar plot."""
    df = sim.overview([s for s in summaries if s is not None and len(s)])
    fig = sim.overview_figure(df)
    metrics = {}
    if not df.empty:
        for (kind, matching, measure), g in df.groupby(["kind", "matching", "measure"]):
            for k in ("mean", "frac_above", "lift_diff", "lift_ratio"):
                v = g[k].mean() if k in g else np.nan
                if np.isfinite(v):
                    metrics[f"{kind}.{matching}.{measure}.{k}"] = v
    return df, fig, mlflow_metrics("similarity", metrics)


def score_comparison(hookpoints: dict, similarity: dict, *tables, names: list[str]):
    """Score distributions of each hookpoint's dictionary side by side, with bootstrap 95% CIs."""
    cfg = similarity_config(similarity)
    labels = {h: sim.dictionary_label(hookpoints.get(h)) for h in names}
    table = sim.compare_scores(dict(zip(names, tables)), labels, cfg.score_metric, cfg.seed, cfg.bootstrap)
    return table, sim.scores_figure(table, cfg.score_metric)
