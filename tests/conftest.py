"""Shared fixtures: the real default model, loaded once per test session; the ``kedro`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_cfg():
    from autointerp.models import ModelConfig

    return ModelConfig()


@pytest.fixture(scope="session")
def model_and_tokenizer(model_cfg):
    from autointerp.models import load_model

    return load_model(model_cfg)


PROJECT = Path(__file__).resolve().parents[1]


def run_kedro(*args: str, cwd=PROJECT, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``kedro run *args`` in a subprocess of this interpreter (output captured as text); ``env``:
    extra environment variables."""
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def kedro():
    """:func:`run_kedro`, for tests where the command line is what is under test."""
    return run_kedro


def read_mlflow_runs(root) -> list:
    """The runs of experiment ``autointerp`` in ``<root>/mlflow.db`` (newest first); the global
    tracking URI is reset afterwards."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        return mlflow.search_runs(experiment_names=["autointerp"], output_format="list")
    finally:
        mlflow.set_tracking_uri("")


@pytest.fixture(scope="session")
def mlflow_runs():
    """:func:`read_mlflow_runs`: ``mlflow_runs(root)``, the runs a ``kedro run`` under ``root`` logged."""
    return read_mlflow_runs


@pytest.fixture(autouse=True)
def _no_mlflow_run_left_active():
    """An in-process Kedro session leaves kedro-mlflow's run active when its store went away
    with its temporary data root; end it (or drop it) so the next test starts its own."""
    yield
    import mlflow
    import mlflow.tracking.fluent as fluent

    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:
            stack = fluent._active_run_stack.get()
            if stack:
                stack.pop()
