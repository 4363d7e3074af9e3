"""Kedro project settings."""

import os

from kedro.config import OmegaConfigLoader

from autointerp.hooks import ProjectHooks
from autointerp.pipelines.report.pipeline import OptionalInputsHook

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

HOOKS = (ProjectHooks(), OptionalInputsHook())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
