"""Project hooks: make the run's configuration visible to the pipeline factories."""

from __future__ import annotations

import os

from kedro.framework.hooks import hook_impl

_state: dict = {}


class ProjectHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        # Pipelines are built lazily after the context exists, so the per-hookpoint namespaces
        # can follow the parameters of the environment actually being run (``--env test``).
        _state["params"] = context.params
        _state["env"] = context.env
        from kedro.framework.project import pipelines

        pipelines._is_data_loaded = False  # rebuild them with this run's parameters


def run_parameters() -> dict:
    """The parameters of the current run; outside a run, ``base`` merged with ``$KEDRO_ENV``
    (default ``local``), read as plain YAML so that no second config loader replaces the
    run's ``globals`` resolver."""
    if "params" in _state:
        return _state["params"]
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "conf"
    params: dict = {}
    for env in ("base", os.environ.get("KEDRO_ENV", "local")):
        for f in sorted((root / env).glob("parameters*.yml")):
            params.update(yaml.safe_load(f.read_text()) or {})
    return params
