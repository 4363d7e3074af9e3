"""The ``score`` pipeline: one namespace per hookpoint (``--namespaces layers_6``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.pipelines.common import bind, configured_hookpoints, matched_inputs, namespace

from . import nodes


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    how, inputs = matched_inputs(
        hookpoint, [f"{ns}.examples", f"{ns}.explanations", "params:score", "params:llm", f"{ns}.latents"]
    )
    return Pipeline(
        [
            Node(
                bind(nodes.score_latents, hookpoint=hookpoint, matching=how),
                inputs,
                f"{ns}.score_run",
                name="score_latents",
                namespace=ns,
            ),
            Node(
                bind(nodes.score_tables, hookpoint=hookpoint),
                [f"{ns}.score_run", "params:score"],
                [
                    f"{ns}.scores",
                    f"{ns}.score_metrics",
                    f"{ns}.score_summary",
                    f"{ns}.score_mlflow_metrics",
                    f"{ns}.score_plots",
                ],
                name="score_tables",
                namespace=ns,
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return sum((hookpoint_pipeline(h) for h in configured_hookpoints()), Pipeline([]))
