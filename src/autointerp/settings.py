"""Kedro project settings."""

import os

from kedro.config import MissingConfigException, OmegaConfigLoader

from autointerp.hooks import ProjectHooks
from autointerp.pipelines.report.pipeline import OptionalInputsHook

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


class ConfigLoader(OmegaConfigLoader):
    """Kedro's ``OmegaConfigLoader`` with parameters merged key by key across environments.

    ``merge_strategy: {parameters: soft}`` (below) makes ``conf/local/parameters_llm.yml`` holding
    only ``llm: {backend: openai}`` change that one key and keep every other ``llm`` key of
    ``conf/base``. Mappings keyed by hookpoint (``hookpoints``, ``train_sae.overrides``) are the
    exception: an environment that sets one replaces it whole, so ``--env test`` studies its
    two hookpoints, not base's six plus its two.
    """

    REPLACED_WHOLE = ("hookpoints", "train_sae.overrides")

    def __getitem__(self, key: str):
        config = super().__getitem__(key)
        run_env = self.env or self.default_run_env
        if key != "parameters" or not run_env or run_env == self.base_env:
            return config
        try:  # the run environment's own files (public API; runtime --params included)
            env_config = self.load_and_merge_dir_config(
                f"{self.conf_source}/{run_env}", self.config_patterns[key], key, set()
            )
        except MissingConfigException:
            return config
        for path in self.REPLACED_WHOLE:
            *parents, name = path.split(".")
            src, dst = env_config, config
            for p in parents:
                src, dst = (src or {}).get(p), (dst or {}).get(p)
            if isinstance(src, dict) and name in src and isinstance(dst, dict):
                dst[name] = src[name]
        return config


HOOKS = (ProjectHooks(), OptionalInputsHook())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_CLASS = ConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
}
