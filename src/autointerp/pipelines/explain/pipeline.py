"""The ``explain`` pipeline: one namespace per hookpoint (``--namespaces layers_6``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.common import bind, configured_hookpoints, matched_inputs, namespace

from . import nodes


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    how, inputs = matched_inputs(
        hookpoint, [f"{ns}.examples", f"{ns}.latents", "corpus_tokens", "params:llm", "params:explain"]
    )
    return Pipeline(
        [
            Node(
                bind(nodes.explain_latents, hookpoint=hookpoint, matching=how),
                inputs,
                f"{ns}.explanations",
                name="explain_latents",
                namespace=ns,
            ),
            Node(
                bind(nodes.explain_metrics, hookpoint=hookpoint),
                f"{ns}.explanations",
                f"{ns}.explain_metrics",
                name="explain_metrics",
                namespace=ns,
            ),
        ],
    )


def create_pipeline(**kwargs) -> Pipeline:
    return sum((hookpoint_pipeline(h) for h in configured_hookpoints()), Pipeline([]))
