"""Pipelines by stage name; ``__default__`` runs the whole chain."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# The order of the chain; a stage joins __default__ when its folder exists.
CHAIN = ("train_sae", "cache", "match", "sample", "explain", "score", "calibrate", "similarity", "report")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    if "similarity" in pipelines:  # match before sampling: the similarity stage's match nodes on their own
        from autointerp.pipelines.similarity.pipeline import create_match_pipeline

        pipelines["match"] = create_match_pipeline()
    pipelines["__default__"] = sum((pipelines[name] for name in CHAIN if name in pipelines), Pipeline([]))
    return pipelines
