"""The report: a static HTML latent browser and run-level plots, from the other stages' tables.

Plain library (no Kedro)::

    from autointerp.report import ReportConfig, hookpoint_data, build_report
    data = [hookpoint_data("layers.2", {"latents": df, "examples": ex, ...}, ReportConfig())]
    figures, site = build_report(data, ReportConfig())   # {name.png: Figure}, {path: html}
"""

from __future__ import annotations

from typing import Any

from .data import HookpointData, ReportConfig, as_frame, hookpoint_data
from .plots import all_plots
from .site import build_site, esc, render_tokens
from .summaries import similarity_matrices


def build_report(
    data: list[HookpointData],
    cfg: ReportConfig,
    similarity: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
):
    """``(figures, site)``: the run's plots by file name, and the site's pages by relative path.
    ``calibration``: the calibrate stage's ``words``, ``verdicts``, ``hits`` and ``summary`` tables (or None)."""
    matrices = similarity_matrices(similarity)
    figures = all_plots(data, cfg, matrices)
    site = build_site(data, cfg, sorted(figures), sorted(matrices), calibration)
    return figures, site


__all__ = [
    "HookpointData",
    "ReportConfig",
    "as_frame",
    "build_report",
    "build_site",
    "esc",
    "hookpoint_data",
    "render_tokens",
]
