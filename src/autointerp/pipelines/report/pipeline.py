"""The ``report`` pipeline: one node over every configured hookpoint.

Its inputs are the outputs of the stages that exist in this project (``report.stages`` can
narrow them); a stage's table that is not on disk yet reaches the node as ``None`` through
:class:`OptionalInputsHook`, so the report says what is missing and renders the rest.
"""

from __future__ import annotations

import importlib.util
import logging

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.pipeline import Node, Pipeline

from autointerp.hooks import run_parameters
from autointerp.pipelines.common import bind, configured_hookpoints, namespace

from . import nodes

OPTIONAL = "optional_inputs"  # node tag: inputs missing on disk are passed as None
STAGE_ROLES = {
    "sample": ("latents", "examples"),
    "explain": ("explanations",),
    "score": ("score_metrics", "score_summary"),  # per-latent metrics and the per-explainer summary (intervals)
}
CALIBRATION = nodes.CALIBRATION  # the layout's key for the calibrate stage's tables
CALIBRATION_ROLES = ("words", "verdicts", "hits", "summary")
log = logging.getLogger(__name__)


def stage_exists(stage: str) -> bool:
    return importlib.util.find_spec(f"autointerp.pipelines.{stage}") is not None


def report_layout(
    hookpoints: list[str], cfg, exists=stage_exists, calibrate_enabled: bool = True
) -> list[tuple[tuple[str, str], str]]:
    """((hookpoint, role), dataset name) for every input of the report node; ``exists(stage)``
    says whether a stage is part of this project. The calibrate stage's tables come as
    ``(CALIBRATION, role)``, similarity outputs as ``("", dataset)``."""
    layout = []
    for h in hookpoints:
        if cfg.histograms_from_cache:
            layout.append(((h, "latent_cache"), f"{namespace(h)}.latent_cache"))
        for stage, roles in STAGE_ROLES.items():
            if stage in cfg.stages and exists(stage):
                layout.extend(((h, role), f"{namespace(h)}.{role}") for role in roles)
    if "similarity" in cfg.stages and exists("similarity"):
        layout.extend((("", name), name) for name in cfg.similarity_datasets)
    if "calibrate" in cfg.stages and exists("calibrate") and calibrate_enabled:
        layout.extend(((CALIBRATION, role), f"calibration_{role}") for role in CALIBRATION_ROLES)
    return layout


def create_pipeline(**kwargs) -> Pipeline:
    hookpoints = kwargs.get("hookpoints") or configured_hookpoints()
    cfg = nodes.report_config(kwargs.get("report", run_parameters().get("report")))
    calibrate = kwargs.get("calibrate", run_parameters().get("calibrate")) or {}
    layout = report_layout(
        hookpoints,
        cfg,
        kwargs.get("stage_exists", stage_exists),
        calibrate_enabled=bool(calibrate.get("enabled", True)),
    )
    return Pipeline(
        [
            Node(
                bind(nodes.make_report, layout=[k for k, _ in layout], hookpoints=hookpoints),
                ["params:report"] + [name for _, name in layout],
                ["report_plots", "report_site"],
                name="make_report",
                tags=[OPTIONAL],
            ),
        ]
    )


class OptionalInputsHook:
    """Before a run: an input of a node tagged ``optional_inputs`` that no node of the run
    produces and that is not on disk (or not in the catalog at all) is replaced by ``None``."""

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        produced = pipeline.all_outputs()
        for node in pipeline.nodes:
            if OPTIONAL not in node.tags:
                continue
            for name in node.inputs:
                if name.startswith("params:") or name == "parameters" or name in produced:
                    continue
                try:
                    present = name in catalog and catalog.exists(name)
                except Exception:  # a dataset that cannot even check itself counts as missing
                    present = False
                if not present:
                    log.warning("report: '%s' is not available yet; the report notes it as missing.", name)
                    catalog[name] = MemoryDataset(None, copy_mode="assign")
