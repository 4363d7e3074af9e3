"""Project hooks: make the run's configuration visible to the pipeline factories, and tag the
MLflow run so that runs compare side by side in the MLflow UI."""

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

    @hook_impl
    def before_pipeline_run(self, run_params: dict) -> None:
        _state["run_params"] = run_params
        _state["tagged"] = False

    @hook_impl
    def before_node_run(self, node) -> None:
        # kedro-mlflow has opened the run by the first node: tag it once with what ran.
        if _state.get("tagged"):
            return
        _state["tagged"] = True
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is None:
            return
        rp = _state.get("run_params") or {}
        params = _state.get("params") or {}
        mlflow.set_tags({
            "autointerp.pipelines": ",".join(rp.get("pipeline_names") or []) or "__default__",
            "autointerp.env": str(_state.get("env") or "local"),
            "autointerp.hookpoints": ",".join((params.get("hookpoints") or {}).keys()),
            "autointerp.model": str((params.get("model") or {}).get("name_or_path")),
            "autointerp.llm": str((params.get("llm") or {}).get("model")),
        })


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
