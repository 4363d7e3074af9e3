"""Issue 15.1, match before sampling: ``sample.selection.mode: matched`` draws the top matched
latents of every configured pair on both sides (a real cache of a random SAE on the real model
and its permuted twin, matched by the similarity stage's own nodes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from autointerp.config import parse_config
from autointerp.dictionaries import DictionaryConfig
from autointerp.errors import ConfigError
from autointerp.hooks import RunContext, set_run_context
from autointerp.latent_cache import LatentCache, LatentCacheWriter
from autointerp.models import ModelConfig
from autointerp.pipelines.sample import nodes as sample_nodes
from autointerp.pipelines.similarity import nodes as sim_nodes
from autointerp.sampling import OK, SampleConfig, SampleJob, SelectionConfig, read_latents, select_latents

from .conftest import HOOKPOINT

OTHER = "layers.2.b"  # a second SAE at the same layer (a label; the dictionary reads layers.2)
TOP = 8
CFG = {
    "window_len": 16,
    "n_quantiles": 5,
    "n_train": 8,
    "n_test": 10,
    "min_test": 3,
    "min_train": 2,
    "seed": 3,
    "selection": {"mode": "matched", "n": 3, "min_activating": 5},
    "negatives": {"random": 6, "neighbour": 0, "embedding": 0, "pool_windows": 256},
}


def permuted_twin(cache: LatentCache, root, hookpoint: str, perm: np.ndarray) -> LatentCache:
    """A copy of ``cache`` whose latent i is latent perm[i] (written by the cache's own writer)."""
    meta = {k: cache.meta[k] for k in ("num_latents", "ctx_len", "n_contexts", "chunk_contexts", "shard_size")}
    w = LatentCacheWriter(
        root, meta=dict(meta, hookpoint=hookpoint, fingerprint="twin"), num_chunks=cache.meta["num_chunks"]
    )
    for i in range(cache.meta["num_chunks"]):
        indptr, lat, val = cache.chunk_rows(i)
        n = np.diff(indptr)
        m = max(int(n.max()), 1)
        values, indices = np.zeros((len(n), m), np.float32), np.zeros((len(n), m), np.int64)
        col = np.arange(len(lat)) - np.repeat(indptr[:-1], n)
        row = np.repeat(np.arange(len(n)), n)
        values[row, col], indices[row, col] = val, perm[lat]
        w.write_chunk(i, torch.from_numpy(values), torch.from_numpy(indices))
    w.finalize()
    return LatentCache(root)


@pytest.fixture(scope="module")
def pair(sample_cache, tmp_path_factory):
    """(tokens, {hookpoint: (cache, dictionary)}, the per-hookpoint matched tables, hookpoints)
    for layers.2 and its permuted twin, matched by the similarity stage's own nodes."""
    _, tokens, cache_a, dict_a = sample_cache
    root = tmp_path_factory.mktemp("matched_pair")
    perm = np.random.default_rng(0).permutation(cache_a.num_latents)
    cache_b = permuted_twin(cache_a, root / "cache", OTHER, perm)
    dict_b = DictionaryConfig("neurons", hookpoint=HOOKPOINT)  # no decoder needed: no neighbour negatives
    hookpoints = {
        HOOKPOINT: {"format": "sparsify", "path": dict_a.path},
        OTHER: {"format": "neurons", "hookpoint": HOOKPOINT},
    }
    top = sim_nodes.match_pair(cache_a, cache_b, hookpoints, {"matched_latents": TOP}, pair=(HOOKPOINT, OTHER))
    assert (top["jaccard"] == 1.0).all() and (top["coactivations"] >= 10).all()  # twins, not one-token flukes
    ta = top[top["hookpoint"] == HOOKPOINT]
    np.testing.assert_array_equal(ta["partner_latent"], perm[ta["latent"]])
    tables = {h: sim_nodes.matched_latents(top, hookpoint=h) for h in (HOOKPOINT, OTHER)}
    return tokens, {HOOKPOINT: (cache_a, dict_a), OTHER: (cache_b, dict_b)}, tables, hookpoints


def sample_side(pair, hookpoint, out, cfg=CFG):
    tokens, sides, tables, hookpoints = pair
    job, again = sample_nodes.sample_examples(
        tokens, sides[hookpoint][0], {}, hookpoints, cfg, tables[hookpoint], hookpoint=hookpoint, matching="table"
    )
    assert job is again
    job.progress = False
    job.run(out)
    return read_latents(out)


@pytest.fixture(scope="module")
def sampled(pair, tmp_path_factory):
    """Both sides sampled with selection.mode matched: {hookpoint: output folder}."""
    root = tmp_path_factory.mktemp("matched_sampled")
    for h in (HOOKPOINT, OTHER):
        sample_side(pair, h, root / h)
    return {h: root / h for h in (HOOKPOINT, OTHER)}


def test_matched_mode_samples_both_sides_of_every_top_pair(pair, sampled):
    _, sides, tables, _ = pair
    a, b = tables[HOOKPOINT], tables[OTHER]
    assert len(a) == len(b) == TOP and (a["partner_hookpoint"] == OTHER).all()
    lat_a, lat_b = (read_latents(sampled[h]) for h in (HOOKPOINT, OTHER))
    for lat, table in ((lat_a, a), (lat_b, b)):
        # left out before sampling: dead, or fewer firing tokens than min_activating
        before = lat["status"].str.startswith("dead") | lat["status"].str.contains("firing tokens")
        sampled = lat[~before]
        # every matched latent went to the sampler (a rare one gets its status there)
        assert set(table["latent"]) <= set(sampled["latent"])
        # plus selection.n random others
        assert len(set(sampled["latent"]) - set(table["latent"])) == CFG["selection"]["n"]
    ok_a = set(lat_a.loc[lat_a["status"] == OK, "latent"])
    ok_b = set(lat_b.loc[lat_b["status"] == OK, "latent"])
    both = [(x, y) for x, y in zip(a["latent"], a["partner_latent"]) if x in ok_a and y in ok_b]
    assert len(both) >= TOP // 2  # explain and score cover both sides of these pairs
    # twins fire on the same tokens: each side of a pair gets the same status and test windows
    st_a, st_b = lat_a.set_index("latent")["status"], lat_b.set_index("latent")["status"]
    assert all(st_a[x] == st_b[y] for x, y in zip(a["latent"], a["partner_latent"]))
    # a random draw of the same size would almost never hold both sides of a pair
    random = SelectionConfig(mode="random", n=TOP + 3, min_activating=5)
    chosen_a, _ = select_latents(sides[HOOKPOINT][0].stats(), sides[HOOKPOINT][0].num_latents, random, 3)
    chosen_b, _ = select_latents(sides[OTHER][0].stats(), sides[OTHER][0].num_latents, random, 3)
    assert sum(x in chosen_a and y in chosen_b for x, y in zip(a["latent"], a["partner_latent"])) < len(both)


def test_other_matches_are_other_work(pair, tmp_path):
    """The matched latents are part of the job's fingerprint (a new matching re-samples);
    other selection modes keep their fingerprints."""
    tokens, sides, _, _ = pair
    cache, dictionary = sides[HOOKPOINT]
    cfg = parse_config(SampleConfig, CFG, "parameters: sample")
    fp = [
        SampleJob(HOOKPOINT, tokens, cache, ModelConfig(), dictionary, cfg, matched=m).fingerprint()
        for m in ([1, 2], [2, 1], [1, 3])
    ]
    assert fp[0] == fp[1] != fp[2]
    random = parse_config(SampleConfig, dict(CFG, selection={"mode": "random", "n": 3}), "parameters: sample")
    assert (
        SampleJob(HOOKPOINT, tokens, cache, ModelConfig(), dictionary, random, matched=[1]).fingerprint()
        == SampleJob(HOOKPOINT, tokens, cache, ModelConfig(), dictionary, random).fingerprint()
    )


def test_select_latents_matched_mode():
    count = np.array([0, 3, 50, 100, 7, 1000, 20, 0, 60, 5000])
    stats = {"firing_count": count, "frequency": count / 10000}
    cfg = parse_config(SelectionConfig, {"mode": "matched", "n": 2, "min_activating": 10}, "x")
    chosen, skipped = select_latents(stats, 10, cfg, 0, "h", matched=[8, 1, 12, 8])
    assert {8, 1} <= set(chosen) and len(chosen) == 4  # the rare matched latent 1 too: the sampler says why
    assert all(count[c] >= 10 for c in set(chosen) - {1})
    assert skipped[12].startswith("out of range") and 1 not in skipped and {0, 4, 7} <= set(skipped)
    assert select_latents(stats, 10, cfg, 0, "h", matched=[8, 1]) == (
        chosen,
        {k: v for k, v in skipped.items() if k != 12},
    )
    only_random, _ = select_latents(stats, 10, cfg, 0, "h", matched=[])
    assert len(only_random) == 2


def test_matched_mode_needs_matching_on():
    with pytest.raises(ConfigError, match="similarity.matched_latents"):
        sample_nodes.matched_for(HOOKPOINT, None, "off")
    assert sample_nodes.matched_for(HOOKPOINT, None, "unpaired") == []
    assert sample_nodes.matched_for(HOOKPOINT, None, "") is None
    empty = pd.DataFrame(columns=["hookpoint", "latent"])
    assert sample_nodes.matched_for(HOOKPOINT, empty, "table") == []


def test_match_runs_before_sample_in_the_chain():
    from autointerp.pipeline_registry import CHAIN
    from autointerp.pipelines.explain.pipeline import create_pipeline as explain_pipeline
    from autointerp.pipelines.sample.pipeline import create_pipeline as sample_pipeline
    from autointerp.pipelines.score.pipeline import create_pipeline as score_pipeline
    from autointerp.pipelines.similarity.pipeline import create_match_pipeline as match_pipeline
    from autointerp.pipelines.similarity.pipeline import create_pipeline as similarity_pipeline

    assert CHAIN.index("match") < CHAIN.index("sample")

    params = {
        "hookpoints": {HOOKPOINT: {}, "layers.2.mlp": {}, "layers.3": {}},
        "similarity": {"pairs": [[HOOKPOINT, "layers.2.mlp"]], "matched_latents": 4},
        "sample": {"selection": {"mode": "matched"}},
    }
    previous = set_run_context(RunContext(params=params, env="test", conf_source="conf"))
    try:
        chain = match_pipeline() + sample_pipeline() + similarity_pipeline()  # similarity's copy merges
        order = [n.name for n in chain.nodes]
        inputs = {n.name: n.inputs for n in chain.nodes}
        assert order.count("layers_2__layers_2_mlp.match_pair") == 1
        assert order.index("layers_2.matched_latents") < order.index("layers_2.sample_examples")
        assert "layers_2.matched_latents" in inputs["layers_2.sample_examples"]
        assert "layers_2_mlp.matched_latents" in inputs["layers_2_mlp.sample_examples"]
        assert not any("matched" in i for i in inputs["layers_3.sample_examples"])  # in no pair: random only
        # explain and score take the matched latents first (explain.max_latents, score.max_llm_latents)
        later = {n.name: n.inputs for n in (explain_pipeline() + score_pipeline()).nodes}
        for stage in ("explain_latents", "score_latents"):
            assert "layers_2.matched_latents" in later[f"layers_2.{stage}"]
            assert not any("matched" in i for i in later[f"layers_3.{stage}"])
        params["sample"]["selection"]["mode"] = "random"
        assert not any("matched" in i for n in sample_pipeline().nodes for i in n.inputs)
        params["similarity"]["matched_latents"] = 0
        assert len(match_pipeline().nodes) == 0
    finally:
        set_run_context(previous)


def test_explanation_measures_on_the_matched_pairs(pair, sampled, tmp_path):
    """Explain both sides (the statistical explainer, on the sampled training windows) and
    compare: the explanation measure is computed on the matched pairs (n > 0), beside its
    chance level from random pairs of explained latents. Twins fire on the same tokens, so their
    explanations agree far above chance."""
    from autointerp import similarity as sim
    from autointerp.explainers import read_explanations
    from autointerp.pipelines.explain.nodes import explain_latents
    from autointerp.sampling import read_sampled_examples

    tokens, sides, tables, _ = pair
    explanations = {}
    for h in (HOOKPOINT, OTHER):
        job = explain_latents(
            read_sampled_examples(sampled[h]),
            read_latents(sampled[h]),
            tokens,
            {},
            {"explainers": ["tokens"], "progress": False},
            hookpoint=h,
        )
        job.run(tmp_path / h)
        explanations[h] = read_explanations(tmp_path / h)
    res = sim.compare(
        sides[HOOKPOINT][0],
        sides[OTHER][0],
        cfg=sim.SimilarityConfig(bootstrap=200),
        explanations_a=explanations[HOOKPOINT],
        explanations_b=explanations[OTHER],
        progress=False,
    )
    row = res.summary.set_index(["matching", "measure"]).loc[("coactivation", "explanation_cosine")]
    top = tables[HOOKPOINT]
    ok = {h: set(read_latents(sampled[h]).query("status == 'ok'")["latent"]) for h in (HOOKPOINT, OTHER)}
    both = sum(x in ok[HOOKPOINT] and y in ok[OTHER] for x, y in zip(top["latent"], top["partner_latent"]))
    assert row["n"] >= both >= TOP // 2  # every top pair with both sides ok, and any other explained pair
    # chance: random pairs of explained latents (templated `tokens` sentences are close in any
    # case); twins agree more than that (not fully: each draws its own training windows, seeded
    # by its own latent index, and these random-SAE latents are dense and polysemantic)
    assert 0 < row["chance"] < 1 and np.isfinite(row["ci_low"]) and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert row["lift_diff"] == pytest.approx(row["mean"] - row["chance"]) and row["lift_diff"] > 0
