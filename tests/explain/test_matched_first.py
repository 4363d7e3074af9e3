"""Under ``sample.selection.mode: matched`` the LLM explainers take the hookpoint's matched
latents first (``ExplainJob.first``), so ``explain.max_latents`` covers the matched pairs the
explanation-based similarity measures compare (issue 15.1); the statistical explainer still
explains every latent. Through the real ``openai`` backend against a loopback chat server."""

from __future__ import annotations

import sys
from pathlib import Path

from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
from autointerp.jobs import llm_order
from autointerp.llm import LLMConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_server import ChatServer  # noqa: E402


def test_llm_order_puts_the_first_latents_ahead_in_their_order():
    assert llm_order([0, 1, 2, 3, 4], [3, 9, 1, 3]) == [3, 1, 0, 2, 4]  # 9 is not a sampled latent
    assert llm_order([0, 1, 2], None) == [0, 1, 2] == llm_order([0, 1, 2], [])


def test_max_latents_explains_the_matched_latents_with_the_llm(tmp_path, examples):
    latents = sorted(int(x) for x in examples.latent.unique())
    assert len(latents) >= 3
    matched = [latents[-1], latents[1]]  # not the first ones by id
    cfg = ExplainConfig(explainers=["default", "tokens"], max_latents=2, batch_latents=2, progress=False)
    with ChatServer(lambda body: "a latent") as server:
        llm = LLMConfig(backend="openai", base_url=server.url, model="fake-model", api_key_env=None, max_retries=0)
        ExplainJob("layers.2", examples, llm, cfg, first=matched).run(tmp_path / "matched")
        ExplainJob("layers.2", examples, llm, cfg).run(tmp_path / "by_id")
    by = {}
    for name in ("matched", "by_id"):
        df = read_explanations(tmp_path / name)
        by[name] = {e: sorted(g.latent) for e, g in df.groupby("explainer")}
    assert by["matched"]["default"] == sorted(matched)
    assert by["by_id"]["default"] == latents[:2]
    assert by["matched"]["tokens"] == by["by_id"]["tokens"] == latents
