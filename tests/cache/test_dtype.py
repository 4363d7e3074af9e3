"""``dtype: auto`` picks bfloat16 only where the device computes it natively."""

from __future__ import annotations

import pytest
import torch

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.llm.base import LLMConfig
from autointerp.models import ModelConfig, native_bf16, resolve_dtype
from autointerp.training.config import TrainConfig


def test_auto_resolves_to_what_the_cpu_multiplies_natively():
    expected = "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    assert resolve_dtype("auto", "cpu") == expected
    assert resolve_dtype("float16", "cpu") == "float16"  # a named dtype is kept
    # configs resolve it when built: fingerprints and logs name the dtype that ran
    assert ModelConfig().dtype == expected == parse_config(ModelConfig, {"dtype": "auto"}, "model").dtype
    assert LLMConfig().dtype == expected and LLMConfig(backend="openai", dtype="auto").dtype == "auto"
    assert TrainConfig().autocast is native_bf16("cpu") and TrainConfig(autocast=False).autocast is False


def test_a_wrong_autocast_value_names_the_key():
    with pytest.raises(ConfigError, match=r"train_sae.autocast: use true, false or auto"):
        parse_config(TrainConfig, {"autocast": "sometimes"}, "train_sae")
