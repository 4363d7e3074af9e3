"""Issue 15.2, like with like: the residual-vs-MLP experiment compares SAEs of one sparsity,
and every measure is reported as a lift over its chance level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from similarity_helpers import random_sparse, write_cache

from autointerp import similarity as sim
from autointerp.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

ROOT = Path(__file__).resolve().parents[2]


def env_parameters(env: str) -> dict:
    """The parameters of ``kedro run --env <env>``, through the project's OmegaConfigLoader."""
    loader = CONFIG_LOADER_CLASS(conf_source=str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def sae_k(params: dict, hookpoint: str) -> int:
    train = params["train_sae"]
    return int((train.get("overrides") or {}).get(hookpoint, {}).get("k", train["k"]))


def test_residual_vs_mlp_pairs_have_equal_k():
    base, exp = env_parameters("base"), env_parameters("residual_vs_mlp")
    pairs = [tuple(p) for p in exp["similarity"]["pairs"]]
    kinds = {sim.pair_kind(a, b) for a, b in pairs}
    assert {"residual", "mlp"} <= kinds
    for a, b in pairs:
        for h in (a, b):
            assert h in exp["hookpoints"] and h in exp["train_sae"]["hookpoints"]  # trained by this run's train_sae
    ks = {h: sae_k(exp, h) for p in pairs for h in p}
    assert len(set(ks.values())) == 1, ks  # one sparsity for every compared SAE
    # the default run's MLP SAEs differ (k=128): the experiment trains its own, under its own data root
    assert any(sae_k(base, h) != ks[h] for h in ks)
    assert "residual_vs_mlp" in exp["hookpoints"][pairs[0][0]]["path"]


def test_residual_vs_mlp_measures_the_papers_metric_on_matched_latents():
    """The experiment matches before sampling: the top 30 pairs of every SAE pair are sampled on
    both sides, explained by every explainer and cross-scored (at least 30 pairs) by a scorer
    the run's calibration can read (MiniLM), each beside its chance level."""
    from autointerp.config import parse_config
    from autointerp.explainers.config import ExplainConfig
    from autointerp.sampling.config import SampleConfig

    exp = env_parameters("residual_vs_mlp")
    cfg = parse_config(sim.SimilarityConfig, exp["similarity"], "parameters: similarity")
    assert cfg.matched_latents >= 30 and cfg.explainer is None and cfg.explainers is None  # LLM first, then tokens
    assert cfg.cross_scoring.enabled and cfg.cross_scoring.max_pairs >= cfg.matched_latents
    assert cfg.cross_scoring.scorer == "embedding" and cfg.cross_scoring.both_ways
    sample = parse_config(SampleConfig, exp["sample"], "parameters: sample")
    assert sample.selection.mode == "matched"
    explain = parse_config(ExplainConfig, exp["explain"], "parameters: explain")
    assert "tokens" in explain.explainers and any(e != "tokens" for e in explain.explainers)
    # the LLM explainer explains the first max_latents sampled latents of a hookpoint (by id): all
    # the matched ones (up to matched_latents per pair the hookpoint is in) plus the random extras
    per_hookpoint = max(sum(h in p for p in cfg.pairs) for p0 in cfg.pairs for h in p0) * cfg.matched_latents
    assert explain.max_latents is None or explain.max_latents >= per_hookpoint + sample.selection.n


def test_every_measure_has_its_lift_over_chance(tmp_path):
    rng = np.random.default_rng(0)
    n, ctx = 64, 16
    val, idx = random_sparse(rng, 30 * ctx, n, 4)
    perm = rng.permutation(n)
    a = write_cache(tmp_path / "a", "layers.1", val, idx, ctx_len=ctx, chunk_contexts=8, shard_size=32, num_latents=n)
    b = write_cache(
        tmp_path / "b", "layers.2", val, perm[idx], ctx_len=ctx, chunk_contexts=8, shard_size=32, num_latents=n
    )
    W = rng.normal(size=(n, 16)).astype(np.float32)
    summaries = []
    for method in ("dense", "sparse"):
        res = sim.compare(
            a,
            b,
            cfg=sim.SimilarityConfig(decoder_baseline="always", matching=method),
            W_dec_a=W,
            W_dec_b=W[np.argsort(perm)],
            progress=False,
        )
        s = res.summary
        assert len(s) >= 2
        np.testing.assert_allclose(s["lift_diff"], s["mean"] - s["chance"])
        np.testing.assert_allclose(s["lift_diff_ci_low"], s["ci_low"] - s["chance"])
        ok = s["chance"] > 0
        np.testing.assert_allclose(s.loc[ok, "lift_ratio"], s.loc[ok, "mean"] / s.loc[ok, "chance"])
        jac = s.set_index(["matching", "measure"]).loc[("coactivation", "jaccard")]
        assert jac["lift_diff"] > 0.5 and jac["lift_ratio"] > 5  # a permuted twin: far above chance
        assert jac["l0_a"] == pytest.approx(jac["l0_b"]) == pytest.approx(4.0)
        summaries.append(s.assign(hookpoint_b=f"layers.{2 + len(summaries)}"))
    df = sim.overview(summaries)
    assert {"lift_diff", "lift_ratio", "kind"} <= set(df.columns)
    fig = sim.overview_figure(df)
    assert len(fig.axes) == 2 and "lift" in fig.axes[1].get_ylabel()
