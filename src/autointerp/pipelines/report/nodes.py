"""Nodes of the ``report`` pipeline."""

from __future__ import annotations

from typing import Any

from autointerp.config import parse_config
from autointerp.report import ReportConfig, build_report, hookpoint_data

CALIBRATION = "<calibration>"  # layout key of the calibrate stage's tables (see pipeline.report_layout)

WHERE = "parameters_report.yml: report"


def report_config(report: dict | None) -> ReportConfig:
    return parse_config(ReportConfig, report, WHERE)


def make_report(report: dict, *loaded: Any, layout: list[tuple[str, str]], hookpoints: list[str]):
    """All hookpoints' tables -> (figures by file name, site pages by relative path).

    ``layout[i] = (hookpoint, role)`` says what ``loaded[i]`` is (role ``latent_cache``, a table
    role of docs/formats.md, ``("", dataset)`` for a similarity output, ``(CALIBRATION, role)`` for the
    calibrate stage's ``words`` / ``verdicts`` / ``hits`` / ``summary``). A table that is
    ``None`` (its stage has not run) leaves a note in the report instead of failing it."""
    cfg = report_config(report)
    tables: dict[str, dict[str, Any]] = {h: {} for h in hookpoints}
    similarity: dict[str, Any] = {}
    calibration: dict[str, Any] | None = None
    for (hookpoint, role), value in zip(layout, loaded, strict=True):
        if hookpoint == CALIBRATION:
            if value is not None:
                calibration = {**(calibration or {}), role: value}
        elif hookpoint == "":
            similarity[role] = value
        else:
            tables[hookpoint][role] = value
    data = [hookpoint_data(h, t, cfg, latent_cache=t.pop("latent_cache", None)) for h, t in tables.items()]
    return build_report(data, cfg, similarity, calibration)
