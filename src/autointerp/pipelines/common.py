"""What every stage's pipeline shares: per-hookpoint namespaces, bound nodes, MLflow metric dicts.

``namespace`` and ``configured_hookpoints`` build one Kedro namespace per hookpoint of the run's
``hookpoints`` parameter; ``bind`` fixes a node's keyword arguments (its hookpoint) keeping its
name; ``mlflow_metrics`` turns flat metrics into the dict the MLflow metrics dataset logs. One
hookpoint's dictionary entry is parsed by :func:`autointerp.dictionaries.dictionary_config`.
``matching`` and ``matched_for`` say which latents ``sample.selection.mode: matched`` samples (and
the LLM explainers and scorers take first) at a hookpoint; ``matched_inputs`` gives those nodes
the match table as an input.
"""

from __future__ import annotations

import logging
import re
from functools import partial, update_wrapper

from autointerp.errors import ConfigError
from autointerp.hooks import run_parameters

log = logging.getLogger(__name__)


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


def matched_inputs(hookpoint: str, inputs: list[str]) -> tuple[str, list[str]]:
    """(:func:`matching` of ``hookpoint``, ``inputs`` plus ``{namespace}.matched_latents`` when the
    node reads the match table): the node inputs of sample, explain and score, which take the
    matched latents under ``sample.selection.mode: matched``."""
    how = matching(hookpoint)
    return how, (inputs + [f"{namespace(hookpoint)}.matched_latents"] if how == "table" else inputs)


def matched_for(hookpoint: str, matched_latents, matching: str, stage: str = "sample") -> list[int] | None:
    """The latents that ``selection.mode: matched`` must sample at ``hookpoint`` (see
    :func:`matching` for ``matching``), which explain and score then take first (``stage``
    names the stage in the log line); None for other modes."""
    if not matching:
        return None
    if matching == "off":
        raise ConfigError(
            "parameters: sample.selection.mode is 'matched' but similarity.matched_latents is 0. "
            "Set similarity.matched_latents to the number of top matched pairs per similarity pair "
            "(e.g. 30), or use another selection mode."
        )
    if matching == "unpaired" or matched_latents is None:
        log.info(
            "%s %s is in no similarity.pairs entry: selection.mode matched samples only its random latents",
            stage,
            hookpoint,
        )
        return []
    rows = matched_latents[matched_latents["hookpoint"] == hookpoint] if len(matched_latents) else matched_latents
    latents = list(dict.fromkeys(int(i) for i in rows["latent"])) if len(rows) else []
    use = "sampled" if stage == "sample" else "taken first"
    log.info("%s %s: %d matched latents %s (match before sampling)", stage, hookpoint, len(latents), use)
    return latents
