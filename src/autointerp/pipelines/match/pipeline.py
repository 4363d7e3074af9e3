"""The ``match`` pipeline: match before sampling (issue 15.1).

With ``similarity.matched_latents: N`` (N > 0), the co-activation matching of every
``similarity.pairs`` entry runs on the latent caches, before ``sample``, and writes
``{pair}.top_matched`` (the pair's N best matches, both sides) and, per hookpoint,
``{namespace}.matched_latents`` (columns ``hookpoint, latent, partner_hookpoint, partner_latent,
jaccard, coactivations, rank, pair``), which ``sample.selection.mode: matched`` reads so that
explain and score cover both sides of every top matched pair.

The nodes are the similarity stage's own (:func:`autointerp.pipelines.similarity.pipeline.create_match_pipeline`,
domain code in :mod:`autointerp.similarity.matched_latents`); the similarity pipeline holds them
too, and Kedro merges the two copies (same names, inputs, outputs), so ``__default__`` runs them
once. This entry exists so that ``kedro run --pipelines cache,match,sample`` works on its own.
Empty when ``similarity.matched_latents`` is 0 (the default)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from autointerp.pipelines.similarity.pipeline import create_match_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return create_match_pipeline(**kwargs)
