"""Shared fixtures: the real default model, loaded once per test session."""

from __future__ import annotations

import os

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
