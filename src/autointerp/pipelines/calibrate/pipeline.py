"""The ``calibrate`` pipeline (``kedro run --pipelines calibrate``; in the default chain).

Known-answer latents for the run's subject model (:mod:`autointerp.calibration`) through the
cache, sample, explain and score stages' own jobs, into ``calibration_*`` datasets
(conf/base/catalog_calibrate.yml). ``calibrate.enabled: false`` leaves the pipeline empty.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from autointerp.hooks import run_parameters
from autointerp.pipelines.cache.pipeline import corpus_pipeline

from . import nodes


def create_pipeline(**kwargs) -> Pipeline:
    cfg = nodes.calibrate_config(kwargs.get("calibrate", run_parameters().get("calibrate")))
    if not cfg.enabled:
        return Pipeline([])
    return corpus_pipeline() + Pipeline(
        [
            Node(
                nodes.known_answer_dictionary,
                ["corpus_tokens", "params:model", "params:calibrate", "params:sample"],
                "calibration_dictionary",
                name="calibration_dictionary",
            ),
            Node(
                nodes.calibration_cache,
                ["corpus_tokens", "calibration_dictionary", "params:model", "params:cache"],
                "calibration_cache",
                name="calibration_cache",
            ),
            Node(
                nodes.calibration_words,
                ["calibration_dictionary", "calibration_cache", "corpus_tokens"],
                "calibration_words",
                name="calibration_words",
            ),
            Node(
                nodes.calibration_sample,
                [
                    "corpus_tokens",
                    "calibration_cache",
                    "calibration_words",
                    "calibration_dictionary",
                    "params:model",
                    "params:sample",
                    "params:calibrate",
                ],
                ["calibration_examples", "calibration_latents"],
                name="calibration_sample",
            ),
            Node(
                nodes.calibration_explain,
                [
                    "calibration_examples",
                    "calibration_latents",
                    "corpus_tokens",
                    "params:llm",
                    "params:explain",
                    "params:calibrate",
                ],
                "calibration_explanations",
                name="calibration_explain",
            ),
            Node(
                nodes.calibration_score,
                [
                    "calibration_examples",
                    "calibration_explanations",
                    "calibration_words",
                    "calibration_latents",
                    "params:score",
                    "params:llm",
                    "params:calibrate",
                ],
                "calibration_score_run",
                name="calibration_score",
            ),
            Node(
                nodes.calibration_tables,
                ["calibration_score_run", "calibration_explanations", "calibration_words", "params:calibrate"],
                [
                    "calibration_metrics",
                    "calibration_hits",
                    "calibration_summary",
                    "calibration_verdicts",
                    "calibration_mlflow_metrics",
                ],
                name="calibration_tables",
            ),
        ]
    )
