"""The ``sample`` pipeline: one namespace per hookpoint (``--namespaces layers_6``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.hooks import run_parameters
from autointerp.pipelines.common import bind, configured_hookpoints, namespace

from . import nodes


def matching(hookpoint: str) -> str:
    """How ``sample.selection.mode: matched`` finds this hookpoint's matched latents: ``table``
    (the ``{namespace}.matched_latents`` input, written by the ``match`` pipeline), ``unpaired``
    (the hookpoint is in no ``similarity.pairs`` entry), ``off`` (``similarity.matched_latents``
    is 0), or ``""`` (another selection mode)."""
    params = run_parameters()
    if ((params.get("sample") or {}).get("selection") or {}).get("mode") != "matched":
        return ""
    similarity = params.get("similarity") or {}
    if not int(similarity.get("matched_latents") or 0):
        return "off"
    return "table" if any(hookpoint in (p or []) for p in similarity.get("pairs") or []) else "unpaired"


def hookpoint_pipeline(hookpoint: str) -> Pipeline:
    ns = namespace(hookpoint)
    how = matching(hookpoint)
    inputs = ["corpus_tokens", f"{ns}.latent_cache", "params:model", "params:hookpoints", "params:sample"]
    return Pipeline(
        [
            Node(
                bind(nodes.sample_examples, hookpoint=hookpoint, matching=how),
                inputs + [f"{ns}.matched_latents"] if how == "table" else inputs,
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
