"""The run context (hooks.run_context) through real Kedro sessions on a copy of the project's conf:
environment files merge key by key, credentials follow Kedro's environments plus conf/local,
and a misspelt top-level section is refused. No pipeline runs: loading the context is enough."""

from __future__ import annotations

import shutil
import sys
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
    server = {"backend": "openai", "base_url": "http://localhost:8000/v1"}
    write(conf / "local" / "parameters_llm.yml", {"llm": server})
    write(conf / "local" / "parameters_sample.yml", {"sample": {"n_train": 40, "selection": {"n": 3}}})
    ctx = context(conf)
    assert ctx.env == "local"
    llm = base(conf, "llm", "parameters_llm.yml")
    assert ctx.params["llm"] == {**llm, **server, "cache_dir": ctx.params["llm"]["cache_dir"]}
    assert ctx.params["llm"]["cache_dir"].endswith("07_model_output/llm_cache")  # the response cache is kept
    sample = base(conf, "sample", "parameters_sample.yml")
    assert ctx.params["sample"] == {**sample, "n_train": 40, "selection": {**sample["selection"], "n": 3}}
    # untouched sections are base's
    assert ctx.params["hookpoints"].keys() == base(conf, "hookpoints", "parameters.yml").keys()


def test_env_file_overrides_one_key_and_replaces_hookpoints_whole(conf):
    write(conf / "exp" / "parameters_score.yml", {"score": {"n_activating": 7}})
    write(conf / "exp" / "parameters.yml", {"hookpoints": {"layers.3": {"format": "neurons", "k": 8}}})
    write(conf / "exp" / "parameters_similarity.yml", {"similarity": {"pairs": []}})  # base's pairs name base's SAEs
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
    with pytest.raises(ConfigError, match=r"unknown top-level key 'smaple'.*Did you mean 'sample'\?") as err:
        context(conf)
    sections = {k for f in (conf / "base").glob("parameters*.yml") for k in yaml.safe_load(f.read_text())}
    assert "sample" in sections and "hookpoints" in sections
    assert str(err.value).split("Valid keys: ")[1].rstrip(".").split(", ") == sorted(sections | {"data_root"})
    assert context(conf, env="test", params={"data_root": "/tmp/x"}).params["data_root"] == "/tmp/x"
    with pytest.raises(ConfigError, match="'smaple'"):
        context(conf, env="test", params={"smaple": {"n_train": 5}})


# ---------------------------------------------------------------- the key reaches every LLM stage


def _fake_server_class():
    """The loopback OpenAI-compatible server of the LLM tests (tests/llm/fake_server.py)."""
    if str(ROOT / "tests" / "llm") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / "llm"))
    from fake_server import FakeServer

    return FakeServer


def tiny_examples(hookpoint: str):
    """Two latents, each with train and test windows of both kinds (docs/formats.md), no tokenizer needed."""
    import pandas as pd

    words = "the king rode out to meet the queen at dawn".split()
    rows = []
    for latent in (0, 1):
        for split, n_act, n_non in (("train", 3, 1), ("test", 2, 2)):
            for i in range(n_act + n_non):
                kind = "activating" if i < n_act else "random"
                acts = [float(2 + i) if (kind == "activating" and j == 1 + latent) else 0.0 for j in range(len(words))]
                rows.append(
                    dict(
                        hookpoint=hookpoint,
                        latent=latent,
                        split=split,
                        kind=kind,
                        quantile=i % 2 if kind == "activating" else -1,
                        context=10 * latent + i,
                        start=0 if split == "train" else 1,
                        token_ids=list(range(len(words))),
                        tokens=[w if j == 0 else " " + w for j, w in enumerate(words)],
                        activations=acts,
                        max_activation=max(acts),
                        marked=1 + latent if kind == "activating" else -1,
                        example_id=f"{hookpoint}/{latent}/{split}{i}",
                    )
                )
    return pd.DataFrame(rows)


def test_key_only_in_credentials_reaches_explain_score_and_cross_scoring(conf, tmp_path, monkeypatch):
    import pandas as pd

    from autointerp.pipelines.explain.nodes import explain_latents
    from autointerp.pipelines.score.nodes import score_latents
    from autointerp.pipelines.similarity.nodes import cross_scorer

    monkeypatch.delenv("AUTOINTERP_UNSET_KEY", raising=False)
    write(conf / "local" / "credentials.yml", {"llm": {"api_key": "sk-only-in-credentials"}})
    context(conf, env="test")  # the key is in conf/local; the run environment is test
    with _fake_server_class()() as srv:
        llm = {
            "backend": "openai",
            "base_url": srv.url,
            "model": "fake-model",
            "api_key_env": "AUTOINTERP_UNSET_KEY",
            "cache_dir": None,
            "max_retries": 0,
            "timeout": 20.0,
        }
        ex_a, ex_b = tiny_examples("layers.2"), tiny_examples("layers.3")

        job = explain_latents(
            examples=ex_a,
            latents=None,
            corpus_tokens=None,
            llm=llm,
            explain={"explainers": ["default"], "progress": False},
            hookpoint="layers.2",
        )
        job.run(tmp_path / "explain")
        assert srv.auth == {"Bearer sk-only-in-credentials"} and srv.total > 0
        explanations = pd.read_json(tmp_path / "explain" / "explanations.jsonl", lines=True)
        assert explanations["explanation"].notna().all()

        srv.auth.clear()
        srv.counts.clear()
        score = {
            "scorers": ["detection"],
            "n_activating": 2,
            "n_non_activating": 2,
            "control": False,
            "detection": {"mode": "logprob"},
        }
        score_latents(ex_a, explanations, score, llm, hookpoint="layers.2").run(tmp_path / "score")
        assert srv.auth == {"Bearer sk-only-in-credentials"} and srv.total > 0

        srv.auth.clear()
        srv.counts.clear()
        scorer = cross_scorer(ex_a, ex_b, llm, score, pair=("layers.2", "layers.3"))
        out = scorer.score_one("the word king", scorer.examples_b[1], 1)
        assert out["n"] == 4
        assert srv.auth == {"Bearer sk-only-in-credentials"} and srv.total > 0


def test_run_context_travels_to_another_process(conf):
    """What a runner with worker processes ships: the context pickles, and installs there."""
    import pickle

    write(conf / "test" / "credentials.yml", {"llm": {"api_key": "sk-worker"}})
    ctx = context(conf, env="test")
    previous = hooks.set_run_context(None)
    assert previous is ctx
    assert hooks.set_run_context(pickle.loads(pickle.dumps(ctx))) is None
    assert hooks.run_context() == ctx and hooks.run_context().llm_credentials() == {"api_key": "sk-worker"}


def test_a_bad_key_inside_any_section_is_refused_when_the_context_is_made(conf):
    """Every section is parsed up front (hooks.check_section_contents), not only by its stage."""
    write(conf / "local" / "parameters_score.yml", {"score": {"n_activatin": 5}})
    with pytest.raises(ConfigError, match=r"parameters: score: unknown key 'n_activatin'.*'n_activating'"):
        context(conf)
    (conf / "local" / "parameters_score.yml").unlink()
    write(conf / "local" / "parameters_llm.yml", {"llm": {"backend": "openai"}})  # no server URL
    with pytest.raises(ConfigError, match=r"llm .*base_url"):
        context(conf)
    (conf / "local" / "parameters_llm.yml").unlink()
    write(conf / "local" / "parameters.yml", {"hookpoints": {"layers.3": {"format": "neurons"}}})
    with pytest.raises(
        ConfigError, match=r"similarity.pairs\[0\]: hookpoint 'layers.4' is not in parameters: hookpoints"
    ):
        context(conf)
