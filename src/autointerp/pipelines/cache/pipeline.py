"""The ``cache`` pipeline: one namespace per hookpoint (``--namespaces layers_6``)."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.namespaces import configured_hookpoints, namespace

from . import nodes


def bind(func, **kwargs):
    """``func`` with keyword arguments fixed, keeping its name for Kedro."""
    return update_wrapper(partial(func, **kwargs), func)


def corpus_pipeline() -> Pipeline:
    return Pipeline([Node(nodes.build_corpus, ["params:model", "params:corpus"], "corpus_tokens", name="build_corpus")])


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    return Pipeline(
        [
            Node(bind(nodes.cache_latents, hookpoint=hookpoint),
                 ["corpus_tokens", "trained_saes", "params:model", "params:hookpoints", "params:cache"],
                 f"{ns}.latent_cache", name="cache_latents", namespace=ns),
            Node(bind(nodes.cache_metrics, hookpoint=hookpoint), f"{ns}.latent_cache",
                 f"{ns}.cache_metrics", name="cache_metrics", namespace=ns),
        ],
    )


def create_pipeline(**kwargs) -> Pipeline:
    return corpus_pipeline() + sum((hookpoint_pipeline(h) for h in configured_hookpoints()), Pipeline([]))
