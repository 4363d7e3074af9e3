"""What every stage's pipeline shares: per-hookpoint namespaces, bound nodes, MLflow metric dicts.

``namespace`` and ``configured_hookpoints`` build one Kedro namespace per hookpoint of the run's
``hookpoints`` parameter; ``bind`` fixes a node's keyword arguments (its hookpoint) keeping its
name; ``mlflow_metrics`` turns flat metrics into the dict the MLflow metrics dataset logs. One
hookpoint's dictionary entry is parsed by :func:`autointerp.dictionaries.dictionary_config`.
"""

from __future__ import annotations

import re
from functools import partial, update_wrapper

from autointerp.hooks import run_parameters


def namespace(hookpoint: str) -> str:
    """Kedro namespace of a hookpoint: ``layers.6.mlp`` -> ``layers_6_mlp``."""
    return re.sub(r"[^0-9A-Za-z_]", "_", hookpoint)


def configured_hookpoints() -> list[str]:
    return list((run_parameters().get("hookpoints") or {}).keys())


def bind(func, **kwargs):
    """``func`` with keyword arguments fixed, keeping its name for Kedro."""
    return update_wrapper(partial(func, **kwargs), func)


def mlflow_metrics(prefix: str, metrics: dict) -> dict:
    """``{"<prefix>.<key>": {"value": float, "step": 0}}`` for the MLflow metrics dataset
    (keys taken as they are when ``prefix`` is empty)."""
    return {f"{prefix}.{k}" if prefix else k: {"value": float(v), "step": 0} for k, v in metrics.items()}
