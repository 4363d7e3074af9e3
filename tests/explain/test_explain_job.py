"""The explain job with real local generation (SmolLM2): results per latent, persisted as it
goes, resumed without redoing latents, served from the response cache on a re-run."""

from __future__ import annotations

import json

from autointerp.explainers import COLUMNS, ExplainConfig, ExplainJob, read_explanations
from autointerp.llm import LLMConfig, make_client


def test_local_explanations_resume_and_cache(tmp_path, examples):
    llm = LLMConfig(cache_dir=str(tmp_path / "llm_cache"), batch_size=4)
    cfg = ExplainConfig(
        explainers=["default", "tokens"],
        n_examples=3,
        max_tokens=10,
        batch_latents=2,
        progress=False,
        retry_failed=False,
    )
    out = tmp_path / "explanations"

    # First run: stop after the first batch by limiting latents (like a killed run).
    meta = ExplainJob("layers.2", examples, llm, ExplainConfig(**{**cfg.__dict__, "max_latents": 2})).run(out)
    assert meta["explained_this_run"] == 2
    lines = [json.loads(x) for x in (out / "explanations.jsonl").read_text().splitlines()]
    # the LLM explains the first max_latents latents, the statistical explainer all of them
    assert [(r["explainer"], r["latent"]) for r in lines] == [
        ("default", 0),
        ("default", 1),
        ("tokens", 0),
        ("tokens", 1),
        ("tokens", 2),
    ]
    # A torn last line, as left by a killed process, is ignored.
    with open(out / "explanations.jsonl", "a") as f:
        f.write('{"hookpoint": "layers.2", "latent": 2, "expl')

    client = make_client(llm)
    meta = ExplainJob("layers.2", examples, llm, cfg, client=client).run(out)
    assert meta["explained_this_run"] == 1  # only latent 2 was left
    assert client.usage.requests == 1
    both = read_explanations(out)
    assert both.groupby("explainer").latent.apply(list).to_dict() == {"default": [0, 1, 2], "tokens": [0, 1, 2]}
    df = both[both.explainer == "default"].reset_index(drop=True)
    assert set(df.columns) >= set(COLUMNS)
    assert (df.prompt_tokens > 50).all() and (df.completion_tokens > 0).all()
    assert (df.completion_tokens <= 10).all()
    # Each row is either an explanation or a counted failure that keeps the raw answer.
    for r in df.itertuples():
        assert (r.explanation is None) != (r.failure is None)
        assert r.raw
    assert meta["failed"] == int(df.failure.notna().sum())

    # A re-run from scratch is answered from the response cache: no new requests.
    (out / "explanations.jsonl").unlink()
    client3 = make_client(llm)
    ExplainJob("layers.2", examples, llm, cfg, client=client3).run(out)
    assert client3.usage.requests == 0 and client3.usage.cached_requests == 3
    again = read_explanations(out)
    assert again[["explainer", "latent", "explanation", "raw"]].equals(
        both[["explainer", "latent", "explanation", "raw"]]
    )
    # A different prompt variant is not mistaken for work already done.
    con = ExplainConfig(**{**cfg.__dict__, "explainers": ["contrastive"], "max_latents": 1})
    client4 = make_client(llm)
    ExplainJob("layers.2", examples, llm, con, client=client4).run(out)
    assert client4.usage.requests == 1
    assert read_explanations(out).explainer.tolist() == ["contrastive"]
