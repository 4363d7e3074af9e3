"""The ``sample`` pipeline: one namespace per hookpoint (``--namespaces layers_6``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.common import bind, configured_hookpoints, matched_inputs, namespace

from . import nodes


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    how, inputs = matched_inputs(
        hookpoint, ["corpus_tokens", f"{ns}.latent_cache", "params:model", "params:hookpoints", "params:sample"]
    )
    return Pipeline(
        [
            Node(
                bind(nodes.sample_examples, hookpoint=hookpoint, matching=how),
                inputs,
                [f"{ns}.examples", f"{ns}.latents"],
                name="sample_examples",
                namespace=ns,
            ),
            Node(
                bind(nodes.sample_metrics, hookpoint=hookpoint),
                f"{ns}.latents",
                f"{ns}.sample_metrics",
                name="sample_metrics",
                namespace=ns,
            ),
        ],
    )


def create_pipeline(**kwargs) -> Pipeline:
    return sum((hookpoint_pipeline(h) for h in configured_hookpoints()), Pipeline([]))
