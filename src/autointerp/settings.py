"""Kedro project settings."""

import logging
import os
import warnings

from kedro.config import MissingConfigException, OmegaConfigLoader

from autointerp.hooks import ProjectHooks
from autointerp.pipelines.report.pipeline import OptionalInputsHook

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

# ---------------------------------------------------------------- a console a warning means something on
# conf/logging.yml sends library records and warnings (MLflow's note on kedro-mlflow's model class
# among them) to data/autointerp.log; MLflow would otherwise install its own console handler when
# first imported (after this module).
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
# Nodes that read another pipeline's per-hookpoint outputs name them as Kedro's namespaces do
# (`layers_2.latents`); Kedro warns about any dotted name, also those it creates itself.
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.' characters", category=UserWarning)


class _ProjectDefaultDtype(logging.Filter):
    """transformers notes that a GGUF model loaded in bfloat16 casts around its float32 kernels:
    bfloat16 is the project's measured default (README), so the notice says nothing new."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Loading a GGUF checkpoint with its weights packed") and "torch.bfloat16" in msg)


logging.getLogger("transformers.quantizers.quantizer_gguf").addFilter(_ProjectDefaultDtype())


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
