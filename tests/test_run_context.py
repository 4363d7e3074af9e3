"""The run context (hooks.run_context) through real Kedro sessions on a copy of the project's conf:
environment files merge key by key, credentials follow Kedro's environments plus conf/local,
and a misspelt top-level section is refused. No pipeline runs: loading the context is enough."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from autointerp import hooks
from autointerp.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def conf(tmp_path_factory, monkeypatch):
    """A copy of conf/base and conf/test, outputs (MLflow store included) under a temporary data root."""
    root = tmp_path_factory.mktemp("conf")
    for env in ("base", "test"):
        shutil.copytree(ROOT / "conf" / env, root / env)
    (root / "local").mkdir()
    data = tmp_path_factory.getbasetemp() / "run_context_data"
    for env in ("base", "test"):
        (root / env / "globals.yml").write_text(f"data_root: {data}\n")
    monkeypatch.setattr(hooks, "_current", None)  # leave other tests the context they had
    return root


def context(conf: Path, env: str | None = None, params: dict | None = None) -> hooks.RunContext:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    with KedroSession.create(ROOT, env=env, conf_source=str(conf), runtime_params=params) as session:
        session.load_context()
    return hooks.run_context()


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def base(conf: Path, section: str, file: str) -> dict:
    return yaml.safe_load((conf / "base" / file).read_text())[section]


def test_local_file_overrides_one_key_and_keeps_the_rest(conf):
    write(conf / "local" / "parameters_llm.yml", {"llm": {"backend": "openai"}})
    write(conf / "local" / "parameters_sample.yml", {"sample": {"n_train": 40, "selection": {"n": 3}}})
    ctx = context(conf)
    assert ctx.env == "local"
    llm = base(conf, "llm", "parameters_llm.yml")
    assert ctx.params["llm"] == {**llm, "backend": "openai", "cache_dir": ctx.params["llm"]["cache_dir"]}
    assert ctx.params["llm"]["cache_dir"].endswith("07_model_output/llm_cache")  # the response cache is kept
    sample = base(conf, "sample", "parameters_sample.yml")
    assert ctx.params["sample"] == {**sample, "n_train": 40, "selection": {**sample["selection"], "n": 3}}
    # untouched sections are base's
    assert ctx.params["hookpoints"].keys() == base(conf, "hookpoints", "parameters.yml").keys()


def test_env_file_overrides_one_key_and_replaces_hookpoints_whole(conf):
    write(conf / "exp" / "parameters_score.yml", {"score": {"n_activating": 7}})
    write(conf / "exp" / "parameters.yml", {"hookpoints": {"layers.3": {"format": "neurons", "k": 8}}})
    write(conf / "local" / "parameters_llm.yml", {"llm": {"backend": "openai"}})  # not read under --env
    ctx = context(conf, env="exp", params={"score": {"seed": 3}})
    score = base(conf, "score", "parameters_score.yml")
    assert ctx.params["score"] == {**score, "n_activating": 7, "seed": 3}
    assert ctx.params["hookpoints"] == {"layers.3": {"format": "neurons", "k": 8}}  # a set: replaced whole
    assert ctx.params["llm"]["backend"] == "local"
    # the test environment: its own two hookpoints, and no overrides for base's MLP SAEs
    ctx = context(conf, env="test")
    assert list(ctx.params["hookpoints"]) == ["layers.2", "layers.2.mlp"]
    assert ctx.params["train_sae"]["overrides"] == {}


def test_credentials_from_conf_local_in_every_environment(conf):
    write(conf / "local" / "credentials.yml", {"llm": {"api_key": "sk-local-123"}})
    for env in (None, "test"):
        ctx = context(conf, env=env)
        assert ctx.llm_credentials() == {"api_key": "sk-local-123"}
        assert "sk-local" not in repr(ctx)
    write(conf / "test" / "credentials.yml", {"llm": {"api_key": "sk-test-456"}})
    assert context(conf, env="test").llm_credentials() == {"api_key": "sk-test-456"}  # the run env wins
    assert context(conf).llm_credentials() == {"api_key": "sk-local-123"}


def test_no_credentials_is_fine(conf):
    assert context(conf, env="test").llm_credentials() is None


def test_misspelt_section_is_refused_with_the_valid_keys(conf):
    write(conf / "local" / "parameters_typo.yml", {"smaple": {"n_train": 5}})
    with pytest.raises(ConfigError, match=r"unknown top-level key 'smaple'.*Did you mean 'sample'\?.*Valid keys: "
                                          r"cache, corpus, data_root, explain, hookpoints, llm"):
        context(conf)
    assert context(conf, env="test", params={"data_root": "/tmp/x"}).params["data_root"] == "/tmp/x"
    with pytest.raises(ConfigError, match="'smaple'"):
        context(conf, env="test", params={"smaple": {"n_train": 5}})
