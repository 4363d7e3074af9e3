"""``compare``: match two dictionaries by co-activation, then measure the matched pairs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..latent_cache import LatentCache
from .coactivation import coactivation
from .config import CrossScoringConfig, SimilarityConfig
from .cross_scoring import CrossScores
from .explained import explanation_measures
from .matching import decoder_cosine, decoder_cosine_pairs, match, pair_values, shares_decoder_space
from .measures import _summary_row
from .sparse import match_sparse, sparse_coactivation

log = logging.getLogger(__name__)


@dataclass
class SimilarityResult:
    matched: pd.DataFrame  # one row per matched pair (co-activation matching)
    summary: pd.DataFrame  # one row per (matching, measure)
    matrices: dict  # measure -> [na, nb] array (jaccard: scipy CSR with the sparse method; or the explained subset)
    unmatched: int
    decoder_matched: pd.DataFrame | None = None


def coactivation_matching(cache_a: LatentCache, cache_b: LatentCache, cfg: SimilarityConfig, progress: bool = True):
    """(co-activation, Jaccard matrix, matched pairs table, whether the sparse method ran):
    the co-activation matching alone, by the method ``cfg`` picks for these sizes. Pairs that
    never co-fire are no match and are left out."""
    sparse = cfg.sparse_for(cache_a.num_latents, cache_b.num_latents)
    if sparse:
        co = sparse_coactivation(cache_a, cache_b, candidates=cfg.candidates, progress=progress)
        jac = co.jaccard()
        rows, cols = match_sparse(jac)
    else:
        co = coactivation(cache_a, cache_b, progress=progress)
        jac = co.jaccard()
        rows, cols = match(jac)
    jv = pair_values(jac, rows, cols)
    rows, cols, jv = rows[jv > 0], cols[jv > 0], jv[jv > 0]
    matched = pd.DataFrame(
        {
            "hookpoint_a": cache_a.hookpoint,
            "latent_a": rows,
            "hookpoint_b": cache_b.hookpoint,
            "latent_b": cols,
            "jaccard": jv,
            "coactivations": pair_values(co.both, rows, cols),
            "count_a": co.count_a[rows],
            "count_b": co.count_b[cols],
        }
    )
    return co, jac, matched, sparse


def compare(
    cache_a: LatentCache,
    cache_b: LatentCache,
    *,
    cfg: SimilarityConfig | None = None,
    explanations_a: pd.DataFrame | None = None,
    explanations_b: pd.DataFrame | None = None,
    W_dec_a: np.ndarray | None = None,
    W_dec_b: np.ndarray | None = None,
    cross_score: Callable[[pd.DataFrame, CrossScoringConfig, str], CrossScores] | None = None,
    embed_fn: Callable[[list[str]], np.ndarray] | None = None,
    progress: bool = True,
) -> SimilarityResult:
    """Compare the dictionaries behind two caches of the same corpus (see the module docstring).

    ``cross_score`` (optional, usually a :class:`CrossScorer`) takes the matched pairs (with
    ``explanation_a/b`` and, for every other compared explainer, ``explanation_a/b.<explainer>``),
    the cross-scoring config and the explainer's column suffix, and returns :class:`CrossScores`;
    ``embed_fn`` defaults to :func:`autointerp.embeddings.embed`.
    """
    cfg = cfg or SimilarityConfig()
    a, b = cache_a.hookpoint, cache_b.hookpoint
    rng = np.random.default_rng(cfg.seed)
    th = cfg.thresholds
    na, nb = cache_a.num_latents, cache_b.num_latents
    co, jac, matched, sparse = coactivation_matching(cache_a, cache_b, cfg, progress)
    rows, cols, jv = matched["latent_a"].to_numpy(), matched["latent_b"].to_numpy(), matched["jaccard"].to_numpy()
    unmatched = max(na, nb) - len(rows)
    matrices = {"jaccard": jac}
    # chance: a random one-to-one pairing of the latents that fire (pairs outside a pruned
    # candidate graph read as 0, so with `candidates` it is a lower bound)
    live_a, live_b = np.flatnonzero(co.count_a > 0), np.flatnonzero(co.count_b > 0)
    n_rand = min(len(live_a), len(live_b))
    rand_a, rand_b = rng.permutation(live_a)[:n_rand], rng.permutation(live_b)[:n_rand]
    jac_chance = float(pair_values(jac, rand_a, rand_b).mean()) if n_rand else float("nan")
    extra = {
        "unmatched": unmatched,
        "method": "sparse" if sparse else "dense",
        "candidates": cfg.candidates if sparse else None,
        "dead_a": int((co.count_a == 0).sum()),
        "dead_b": int((co.count_b == 0).sum()),
        "l0_a": float(co.count_a.sum() / max(co.n_tokens, 1)),
        "l0_b": float(co.count_b.sum() / max(co.n_tokens, 1)),
    }
    summary = [
        _summary_row(
            "coactivation",
            "jaccard",
            jv,
            th.jaccard,
            jac_chance,
            cfg.seed,
            cfg.bootstrap,
            live_pairs=len(rows),
            **extra,
        )
    ]

    # decoder directions: cosine of the co-activation matches, and the decoder-matching baseline
    decoder_matched = None
    dec = None
    if shares_decoder_space(W_dec_a, W_dec_b, a, b, cfg.decoder_baseline):
        if sparse:
            # no [na, nb] matrix: the matched pairs' cosine and its chance only (no decoder matching)
            matched["decoder_cosine"] = decoder_cosine_pairs(W_dec_a, W_dec_b, rows, cols)
            chance = float(decoder_cosine_pairs(W_dec_a, W_dec_b, rand_a, rand_b).mean()) if n_rand else float("nan")
        else:
            dec = decoder_cosine(W_dec_a, W_dec_b)
            matrices["decoder_cosine"] = dec
            matched["decoder_cosine"] = dec[rows, cols]
            chance = float(dec[rand_a, rand_b].mean()) if n_rand else float("nan")
        summary.append(
            _summary_row(
                "coactivation",
                "decoder_cosine",
                matched["decoder_cosine"].to_numpy(),
                th.decoder_cosine,
                chance,
                cfg.seed,
                cfg.bootstrap,
                **extra,
            )
        )
    if dec is not None:
        drows, dcols = match(dec)
        decoder_matched = pd.DataFrame(
            {
                "hookpoint_a": a,
                "latent_a": drows,
                "hookpoint_b": b,
                "latent_b": dcols,
                "decoder_cosine": dec[drows, dcols],
                "jaccard": jac[drows, dcols],
            }
        )
        summary.append(
            _summary_row(
                "decoder",
                "decoder_cosine",
                decoder_matched["decoder_cosine"].to_numpy(),
                th.decoder_cosine,
                chance,
                cfg.seed,
                cfg.bootstrap,
                **extra,
            )
        )
        summary.append(
            _summary_row(
                "decoder",
                "jaccard",
                decoder_matched["jaccard"].to_numpy(),
                th.jaccard,
                jac_chance,
                cfg.seed,
                cfg.bootstrap,
                **extra,
            )
        )
        dmap = dict(zip(drows.tolist(), dcols.tolist()))
        summary[-1]["agreement_with_coactivation"] = float(
            np.mean([dmap.get(int(r)) == int(c) for r, c in zip(rows, cols)])
        )

    # explanations: semantic agreement of matched pairs where both have one, for every compared explainer
    summary += explanation_measures(
        matched,
        decoder_matched,
        explanations_a,
        explanations_b,
        cfg,
        rng,
        pair=(a, b),
        extra=extra,
        matrices=matrices,
        embed_fn=embed_fn,
        cross_score=cross_score,
    )
    summary = pd.DataFrame(summary)
    summary.insert(0, "hookpoint_b", b)
    summary.insert(0, "hookpoint_a", a)
    return SimilarityResult(matched, summary, matrices, unmatched, decoder_matched)
