"""The ``similarity`` pipeline: one namespace per configured pair (``--namespaces layers_4__layers_5``),
then an overview of all pairs; with ``similarity.score_comparison`` also the score distributions
of every configured hookpoint side by side (the latents-vs-neurons experiment)."""

from __future__ import annotations

import logging
from pathlib import Path

from kedro.pipeline import Node, Pipeline

from autointerp.hooks import run_parameters
from autointerp.pipelines.common import bind, configured_hookpoints, namespace

from . import nodes

log = logging.getLogger(__name__)

_PIPELINES = Path(__file__).resolve().parents[1]


def stage_available(stage: str) -> bool:
    """Whether the project has the pipeline of ``stage`` (stages land independently)."""
    return (_PIPELINES / stage / "pipeline.py").exists()


def pair_namespace(a: str, b: str) -> str:
    return f"{namespace(a)}__{namespace(b)}"


def configured_pairs() -> list[tuple[str, str]]:
    pairs = (run_parameters().get("similarity") or {}).get("pairs") or []
    return [tuple(p) for p in pairs if isinstance(p, (list, tuple)) and len(p) == 2]


def pair_pipeline(a: str, b: str, explanations: bool, cross_scoring: bool = False) -> Pipeline:
    pns = pair_namespace(a, b)
    inputs = {
        "cache_a": f"{namespace(a)}.latent_cache",
        "cache_b": f"{namespace(b)}.latent_cache",
        "hookpoints": "params:hookpoints",
        "similarity": "params:similarity",
    }
    if explanations:
        inputs |= {"explanations_a": f"{namespace(a)}.explanations", "explanations_b": f"{namespace(b)}.explanations"}
    if explanations and cross_scoring:
        inputs |= {
            "examples_a": f"{namespace(a)}.examples",
            "examples_b": f"{namespace(b)}.examples",
            "llm": "params:llm",
            "score": "params:score",
        }
    outputs = [
        f"{pns}.similarity_matched",
        f"{pns}.similarity_summary",
        f"{pns}.jaccard_matrix",
        f"{pns}.decoder_cosine_matrix",
        f"{pns}.similarity_plots",
        f"{pns}.similarity_metrics",
    ]
    return Pipeline([Node(bind(nodes.compare_pair, pair=(a, b)), inputs, outputs, name="compare_pair", namespace=pns)])


def create_match_pipeline(**kwargs) -> Pipeline:
    """Match before sampling: per configured pair the top ``similarity.matched_latents`` matches
    (``{pair}.top_matched``), and per hookpoint its matched latents (``{namespace}.matched_latents``),
    which ``sample.selection.mode: matched`` reads. Empty when ``matched_latents`` is 0."""
    if not int((run_parameters().get("similarity") or {}).get("matched_latents") or 0):
        return Pipeline([])
    pairs = configured_pairs()
    pipe = Pipeline(
        [
            Node(
                bind(nodes.match_pair, pair=(a, b)),
                {
                    "cache_a": f"{namespace(a)}.latent_cache",
                    "cache_b": f"{namespace(b)}.latent_cache",
                    "hookpoints": "params:hookpoints",
                    "similarity": "params:similarity",
                },
                f"{pair_namespace(a, b)}.top_matched",
                name="match_pair",
                namespace=pair_namespace(a, b),
            )
            for a, b in pairs
        ]
    )
    for h in dict.fromkeys(h for p in pairs for h in p):
        tables = [f"{pair_namespace(a, b)}.top_matched" for a, b in pairs if h in (a, b)]
        pipe += Pipeline(
            [
                Node(
                    bind(nodes.matched_latents, hookpoint=h),
                    tables,
                    f"{namespace(h)}.matched_latents",
                    name="matched_latents",
                    namespace=namespace(h),
                )
            ]
        )
    return pipe


def create_pipeline(**kwargs) -> Pipeline:
    explanations = bool((run_parameters().get("similarity") or {}).get("explanations", True))
    if explanations and not stage_available("explain"):
        explanations = False
        log.warning("the explain stage is not in this project: similarity runs without explanation measures")
    cross = bool(((run_parameters().get("similarity") or {}).get("cross_scoring") or {}).get("enabled", False))
    if cross and not (stage_available("sample") and stage_available("score")):
        cross = False
        log.warning("similarity.cross_scoring needs the sample and score stages, not in this project: skipped")
    pairs = configured_pairs()
    pipe = sum((pair_pipeline(a, b, explanations, cross) for a, b in pairs), create_match_pipeline())
    if pairs:
        pipe += Pipeline(
            [
                Node(
                    nodes.similarity_overview,
                    [f"{pair_namespace(a, b)}.similarity_summary" for a, b in pairs],
                    ["similarity_overview", "similarity_overview_plot", "similarity_overview_metrics"],
                    name="similarity_overview",
                )
            ]
        )
    if (run_parameters().get("similarity") or {}).get("score_comparison"):
        if stage_available("score"):
            names = configured_hookpoints()
            pipe += Pipeline(
                [
                    Node(
                        bind(nodes.score_comparison, names=names),
                        ["params:hookpoints", "params:similarity"] + [f"{namespace(h)}.score_metrics" for h in names],
                        ["score_comparison", "score_comparison_plot"],
                        name="score_comparison",
                    )
                ]
            )
        else:
            log.warning("similarity.score_comparison is set but the score stage is not in this project yet: skipped")
    return pipe
