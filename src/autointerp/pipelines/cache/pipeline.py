"""The ``cache`` pipeline: one namespace per hookpoint (``--namespaces layers_6``).

With several hookpoints, a node outside the namespaces (``cache_hookpoints``) caches all of them
from one forward pass per batch into ``latent_caches`` (the folder of every hookpoint's cache);
each namespace's ``cache_latents`` then finds its cache complete and only hands it on. When a
run selects namespaces (``--namespaces layers_6``), Kedro leaves the shared node out and each
selected namespace's ``cache_latents`` computes its own hookpoint alone.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.common import bind, configured_hookpoints, namespace

from . import nodes

PARAMS = ["params:model", "params:hookpoints", "params:cache"]


def corpus_pipeline() -> Pipeline:
    return Pipeline([Node(nodes.build_corpus, ["params:model", "params:corpus"], "corpus_tokens", name="build_corpus")])


def shared_forward_pipeline(hookpoints: list[str]) -> Pipeline:
    folders = {namespace(h): h for h in hookpoints}
    return Pipeline(
        [
            Node(
                bind(nodes.cache_hookpoints, folders=folders),
                ["corpus_tokens", "trained_saes", *PARAMS],
                "latent_caches",
                name="cache_hookpoints",
            )
        ]
    )


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    return Pipeline(
        [
            Node(
                bind(nodes.cache_latents, hookpoint=hookpoint),
                ["corpus_tokens", "trained_saes", *PARAMS, "latent_caches"],
                f"{ns}.latent_cache",
                name="cache_latents",
                namespace=ns,
            ),
            Node(
                bind(nodes.cache_metrics, hookpoint=hookpoint),
                f"{ns}.latent_cache",
                f"{ns}.cache_metrics",
                name="cache_metrics",
                namespace=ns,
            ),
        ],
    )


def create_pipeline(**kwargs) -> Pipeline:
    hookpoints = configured_hookpoints()
    shared = shared_forward_pipeline(hookpoints) if len(hookpoints) > 1 else Pipeline([])
    return corpus_pipeline() + shared + sum((hookpoint_pipeline(h) for h in hookpoints), Pipeline([]))
