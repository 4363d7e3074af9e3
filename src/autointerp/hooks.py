"""The run context and the project's Kedro hooks.

:func:`run_context` is the one object that gives nodes and pipeline factories the run's
parameters, environment and credentials, resolved once when Kedro creates the context, through
Kedro's own config loader and conf source (``--conf-source`` and ``--env`` included). Outside a
``kedro run`` (``kedro registry list``, a notebook, a test that builds pipelines) it is resolved
the same way from the project's settings and ``$KEDRO_ENV``.

Credentials follow Kedro's environment rules (``conf/base`` and the run environment, default
``local``) and additionally read ``conf/local/credentials.yml`` in every other environment, so a
key kept in the git-ignored ``conf/local/credentials.yml`` also reaches ``--env test`` and the
experiment environments; ``conf/<env>/credentials.yml`` wins over it. The environment variable
named by ``llm.api_key_env`` wins over both (see :func:`autointerp.llm.openai_compat.resolve_api_key`).
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from autointerp.errors import ConfigError

log = logging.getLogger(__name__)

LOCAL = "local"
# Top-level parameter keys that are not a stage's section in conf/base (documented in the README).
EXTRA_TOP_LEVEL = ("data_root",)


@dataclass(frozen=True)
class RunContext:
    """What a node may know about the run it is part of."""

    params: dict
    env: str
    conf_source: str
    credentials: dict = field(default_factory=dict, repr=False)  # never logged
    data_root: str | None = None  # where outputs land (``--params data_root=...`` or globals.yml)

    def llm_credentials(self) -> dict | None:
        """The ``llm`` entry of the credentials (``{api_key: ...}``), if any."""
        entry = self.credentials.get("llm")
        return dict(entry) if isinstance(entry, dict) else None


_current: RunContext | None = None


def _read_credentials(loader) -> dict:
    from kedro.config import MissingConfigException

    try:
        creds = dict(loader["credentials"])
    except MissingConfigException:
        creds = {}
    if (loader.env or loader.default_run_env) != LOCAL:
        try:
            local = loader.load_and_merge_dir_config(
                f"{loader.conf_source}/{LOCAL}",
                loader.config_patterns["credentials"],
                "credentials",
                set(),
                read_environment_variables=True,
            )
        except MissingConfigException:
            local = {}
        creds = {**local, **creds}
    return creds


def context_from_loader(loader) -> RunContext:
    """The run context of a Kedro config loader (parameters with runtime ``--params``, credentials)."""
    from kedro.config import MissingConfigException

    try:
        params = dict(loader["parameters"])
    except MissingConfigException:
        params = dict(loader.runtime_params or {})
    try:
        data_root = params.get("data_root") or loader["globals"].get("data_root")
    except (KeyError, MissingConfigException):
        data_root = params.get("data_root")
    return RunContext(
        params=params,
        env=loader.env or loader.default_run_env or LOCAL,
        conf_source=str(loader.conf_source),
        credentials=_read_credentials(loader),
        data_root=None if data_root is None else str(data_root),
    )


def _outside_run() -> RunContext:
    """Resolved from the project's settings and ``$KEDRO_ENV``, as ``kedro run`` would."""
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    root = find_kedro_project(Path.cwd())
    conf = Path(root or ".") / settings.CONF_SOURCE
    if root is None or not conf.is_dir():
        return RunContext(params={}, env=os.environ.get("KEDRO_ENV") or LOCAL, conf_source=str(conf))
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf), env=os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS
    )
    return context_from_loader(loader)


def run_context() -> RunContext:
    """The context of the current run (or, outside a run, of the project's configuration)."""
    global _current
    if _current is None:
        _current = _outside_run()
    return _current


def set_run_context(ctx: RunContext | None) -> RunContext | None:
    """Install ``ctx`` as this process's run context (returns the previous one). For runners
    whose nodes run in other processes (a Dask worker has no Kedro context of its own): ship
    ``run_context()`` along with the task and install it there. It holds the credentials."""
    global _current
    previous, _current = _current, ctx
    return previous


def run_parameters() -> dict:
    """The parameters of the current run (see :func:`run_context`)."""
    return run_context().params


def known_sections(loader) -> set[str] | None:
    """Top-level parameter keys the project knows: those of ``conf/base`` plus documented extras
    (None when the conf source has no base parameters to compare with)."""
    from kedro.config import MissingConfigException

    runtime, loader.runtime_params = loader.runtime_params, {}  # the files' keys, not --params'
    try:
        base = loader.load_and_merge_dir_config(
            f"{loader.conf_source}/{loader.base_env}", loader.config_patterns["parameters"], "parameters", set()
        )
    except MissingConfigException:
        return None
    finally:
        loader.runtime_params = runtime
    return set(base) | set(EXTRA_TOP_LEVEL) if base else None


def check_sections(params: dict, known: set[str] | None, env: str) -> None:
    """Refuse a top-level parameter key that no stage reads (a misspelt section)."""
    unknown = sorted(set(params) - known) if known else []
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = "conf/base" if env == "base" else f"conf/{env} or --params"
    raise ConfigError(
        f"parameters: unknown top-level key '{key}' (in {where}).{hint} Valid keys: {', '.join(sorted(known))}."
    )


def check_section_contents(params: dict) -> None:
    """Parse every stage's section into its config before any node runs, so that a misspelt
    key or a bad value inside a section fails the run in seconds, with the message (and the
    ``where``) the stage's own node would give, instead of after the stages before it."""
    from autointerp.caching import CacheConfig
    from autointerp.calibration import CalibrateConfig
    from autointerp.config import parse_config
    from autointerp.corpus import CorpusConfig
    from autointerp.dictionaries import dictionary_config
    from autointerp.explainers import ExplainConfig
    from autointerp.models import ModelConfig
    from autointerp.pipelines.calibrate.nodes import WHERE as CALIBRATE
    from autointerp.pipelines.explain.nodes import llm_config
    from autointerp.pipelines.report.nodes import WHERE as REPORT
    from autointerp.pipelines.score.nodes import llm_config as score_llm_config
    from autointerp.pipelines.similarity.nodes import similarity_config
    from autointerp.report import ReportConfig
    from autointerp.sampling import SampleConfig
    from autointerp.scoring import ScoreConfig
    from autointerp.training import TrainConfig

    sections = {
        "model": (ModelConfig, "parameters: model"),
        "corpus": (CorpusConfig, "parameters: corpus"),
        "cache": (CacheConfig, "parameters: cache"),
        "train_sae": (TrainConfig, "parameters: train_sae"),
        "sample": (SampleConfig, "parameters: sample"),
        "explain": (ExplainConfig, "parameters: explain"),
        "score": (ScoreConfig, "parameters: score"),
        "calibrate": (CalibrateConfig, CALIBRATE),
        "report": (ReportConfig, REPORT),
    }
    for key, (cls, where) in sections.items():
        if key in params:
            parse_config(cls, params[key], where)
    hookpoints = params.get("hookpoints") or {}
    for h in hookpoints:
        dictionary_config(hookpoints, h)
    if "llm" in params:
        llm_config(params["llm"])
        score_llm_config(params["llm"], params.get("score"))
    if "similarity" in params:
        similarity_config(params["similarity"], hookpoints)


def stage_seconds(node_seconds: dict[str, float]) -> dict[str, float]:
    """Node run times summed per stage of the chain (the registered pipeline holding the node;
    ``other`` for a node in none), stages in chain order."""
    from kedro.framework.project import pipelines

    from autointerp.pipeline_registry import CHAIN

    stage_of: dict[str, str] = {}
    for name in CHAIN:
        if name in pipelines:
            for n in pipelines[name].nodes:
                stage_of.setdefault(n.name, name)
    out: dict[str, float] = {}
    for node, s in node_seconds.items():
        out[stage_of.get(node, "other")] = out.get(stage_of.get(node, "other"), 0.0) + s
    order = {name: i for i, name in enumerate((*CHAIN, "other"))}
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


class ProjectHooks:
    def __init__(self) -> None:
        self._node_started: dict[str, float] = {}
        self._node_ended: dict[str, float] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        # Resolve the run context once; the pipelines are built lazily after this, so the
        # per-hookpoint namespaces follow the parameters of the environment being run.
        global _current
        loader = context.config_loader
        previous, _current = _current, context_from_loader(loader)
        check_sections(_current.params, known_sections(loader), _current.env)
        check_section_contents(_current.params)
        if previous is not None and previous.params != _current.params:
            # Pipelines already built in this process (an earlier session, or outside a run)
            # followed other parameters: rebuild them (Kedro's public reset).
            from kedro.framework.project import PACKAGE_NAME, pipelines

            pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")
        self._run_params: dict = {}
        self._tagged = False

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline) -> None:
        self._run_params = run_params
        self._tagged = False
        self._progress = [0, len(pipeline.nodes), time.perf_counter()]
        self._node_started, self._node_ended = {}, {}

    # A node's time runs from loading its first input to saving its last output: several nodes
    # hand back lazy work (a job, a generator) that their dataset's save carries out.
    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node) -> None:
        self._node_started.setdefault(node.name, time.perf_counter())

    @hook_impl
    def after_node_run(self, node) -> None:
        self._node_ended[node.name] = time.perf_counter()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:
        self._node_ended[node.name] = time.perf_counter()

    def node_seconds(self) -> dict[str, float]:
        """Seconds per node of the current run, from its first input load to its last output save."""
        return {n: end - self._node_started[n] for n, end in self._node_ended.items() if n in self._node_started}

    @hook_impl
    def before_node_run(self, node) -> None:
        self._node_started.setdefault(node.name, time.perf_counter())
        # The console's one line per node (Kedro's own node and dataset messages go to the log file).
        progress = getattr(self, "_progress", None) or [0, 0, time.perf_counter()]
        progress[0] += 1
        outputs = list(node.outputs)
        shown = ", ".join(outputs[:4]) + (f" (+{len(outputs) - 4})" if len(outputs) > 4 else "")
        log.info("[%d/%d] %s%s", progress[0], progress[1], node.name, f" -> {shown}" if shown else "")
        self._tag_mlflow_run()

    @hook_impl
    def after_pipeline_run(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is None:
            return
        seconds = time.perf_counter() - progress[2]
        where = run_context().data_root
        files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        log.info(
            "Done: %d node%s in %.0f s%s%s",
            progress[0],
            "s" * (progress[0] != 1),
            seconds,
            f"; outputs under {where}/" if where else "",
            f"; details in {os.path.relpath(files[0])}" if files else "",
        )
        self._report_stage_seconds()

    def _report_stage_seconds(self) -> None:
        # Where the run's time went, per stage of the chain: one log line and MLflow metrics
        # ``seconds.<stage>`` (e.g. the calibrate stage's share of a default run).
        seconds = stage_seconds(self.node_seconds())
        if not seconds:
            return
        log.info("Time per stage: %s", ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"seconds.{k}": round(v, 2) for k, v in seconds.items()})

    def _tag_mlflow_run(self) -> None:
        # kedro-mlflow has opened the run by the first node: tag it once with what ran.
        if getattr(self, "_tagged", True):
            return
        self._tagged = True
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is None:
            return
        rp: dict[str, Any] = getattr(self, "_run_params", {}) or {}
        ctx = run_context()
        params = ctx.params
        mlflow.set_tags(
            {
                "autointerp.pipelines": ",".join(rp.get("pipeline_names") or []) or "__default__",
                "autointerp.env": ctx.env,
                "autointerp.hookpoints": ",".join((params.get("hookpoints") or {}).keys()),
                "autointerp.model": str((params.get("model") or {}).get("name_or_path")),
                "autointerp.llm": str((params.get("llm") or {}).get("model")),
            }
        )
