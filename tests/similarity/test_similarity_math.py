"""Pure-math tests of autointerp.similarity on caches written with LatentCacheWriter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from similarity_helpers import random_sparse, write_cache

from autointerp import similarity as sim
from autointerp.errors import AutointerpError

N_LAT, K, CTX = 96, 6, 16


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    rng = np.random.default_rng(0)
    val, idx = random_sparse(rng, 40 * CTX, N_LAT, K)
    return val, idx


def dense_binary(val, idx, n):
    out = np.zeros((len(val), n), dtype=np.float64)
    np.put_along_axis(out, idx, (val > 0).astype(np.float64), axis=1)
    return out


def test_coactivation_equals_dense_recomputation(tmp_path, base):
    val, idx = base
    rng = np.random.default_rng(1)
    val_b, idx_b = random_sparse(rng, len(val), 70, 20)  # another width, denser, other layout
    val_b[rng.random(val_b.shape) < 0.2] = 0.0  # some zero padding, as a cache sees it
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=7, shard_size=40, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b", "layers.2", val_b, idx_b, ctx_len=CTX, chunk_contexts=3, shard_size=64, num_latents=70
    )
    co = sim.coactivation(a, b, progress=False)
    A, B = dense_binary(val, idx, N_LAT), dense_binary(val_b, idx_b, 70)
    np.testing.assert_array_equal(co.both, (A.T @ B).astype(np.int64))
    np.testing.assert_array_equal(co.count_a, A.sum(0))
    np.testing.assert_array_equal(co.count_b, B.sum(0))
    inter = A.T @ B
    union = A.sum(0)[:, None] + B.sum(0)[None, :] - inter
    np.testing.assert_allclose(co.jaccard(), np.where(union > 0, inter / np.maximum(union, 1), 0), rtol=1e-6)
    # every token of a chunk is read through the same CSR as the reference
    np.testing.assert_array_equal(sim.chunk_csr(b, 1).toarray(), B[3 * CTX : 6 * CTX])


def test_permuted_dictionary_matches_perfectly(tmp_path, base):
    val, idx = base
    rng = np.random.default_rng(2)
    perm = rng.permutation(N_LAT)  # latent i of A is latent perm[i] of B
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=8, shard_size=32, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b", "layers.2", val, perm[idx], ctx_len=CTX, chunk_contexts=5, shard_size=50, num_latents=N_LAT
    )
    W = rng.normal(size=(N_LAT, 24)).astype(np.float32)
    W_b = np.empty_like(W)
    W_b[perm] = W
    words = [
        "cats",
        "numbers",
        "French verbs",
        "closing brackets",
        "names of kings",
        "the word 'the'",
        "past tense",
        "punctuation",
    ]
    texts = [f"{words[i % len(words)]} in context {i}" for i in range(N_LAT)]
    ex_a = pd.DataFrame(
        {
            "hookpoint": "layers.1",
            "latent": np.arange(0, N_LAT, 2),
            "explanation": [texts[i] for i in range(0, N_LAT, 2)],
        }
    )
    ex_b = pd.DataFrame(
        {
            "hookpoint": "layers.2",
            "latent": perm[np.arange(0, N_LAT, 3)],
            "explanation": [texts[i] for i in range(0, N_LAT, 3)],
        }
    )
    cfg = sim.SimilarityConfig(decoder_baseline="always")
    res = sim.compare(a, b, cfg=cfg, explanations_a=ex_a, explanations_b=ex_b, W_dec_a=W, W_dec_b=W_b, progress=False)
    live = res.matched["count_a"] > 0
    assert live.sum() > N_LAT * 0.8
    np.testing.assert_array_equal(res.matched["latent_b"][live], perm[res.matched["latent_a"][live]])
    np.testing.assert_allclose(res.matched["jaccard"][live], 1.0)
    np.testing.assert_allclose(res.matched["decoder_cosine"], 1.0, atol=1e-5)
    ec = res.matched["explanation_cosine"].dropna()
    assert len(ec) == len(range(0, N_LAT, 6))  # latents explained on both sides
    np.testing.assert_allclose(ec, 1.0, atol=1e-5)
    s = res.summary.set_index(["matching", "measure"])
    for key in [
        ("coactivation", "explanation_cosine"),
        ("coactivation", "decoder_cosine"),
        ("decoder", "decoder_cosine"),
    ]:
        assert s.loc[key, "mean"] == pytest.approx(1.0, abs=1e-5)
        assert s.loc[key, "frac_above"] == 1.0
    assert s.loc[("decoder", "jaccard"), "agreement_with_coactivation"] >= live.mean() - 1e-9
    assert s.loc[("coactivation", "jaccard"), "chance"] < 0.2
    assert res.unmatched == 0
    # side by side: the explanations of a matched pair are the same text
    both = res.matched.dropna(subset=["explanation_a", "explanation_b"])
    assert (both["explanation_a"] == both["explanation_b"]).all()


def test_random_dictionary_is_near_chance(tmp_path, base):
    val, idx = base
    rng = np.random.default_rng(3)
    val_r, idx_r = random_sparse(rng, len(val), N_LAT, K)
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=8, shard_size=96, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b", "layers.2", val_r, idx_r, ctx_len=CTX, chunk_contexts=8, shard_size=96, num_latents=N_LAT
    )
    W = rng.normal(size=(N_LAT, 256)).astype(np.float32)
    W_r = rng.normal(size=(N_LAT, 256)).astype(np.float32)
    res = sim.compare(a, b, cfg=sim.SimilarityConfig(decoder_baseline="always"), W_dec_a=W, W_dec_b=W_r, progress=False)
    s = res.summary.set_index(["matching", "measure"])
    # Hungarian on noise picks the best of many bad pairs: above the random-pairing chance, far below 1
    assert s.loc[("coactivation", "jaccard"), "mean"] < 0.15
    assert s.loc[("coactivation", "jaccard"), "frac_above"] < 0.05  # rare latents can coincide by luck
    assert (
        abs(s.loc[("coactivation", "decoder_cosine"), "mean"] - s.loc[("coactivation", "decoder_cosine"), "chance"])
        < 0.05
    )
    assert s.loc[("decoder", "decoder_cosine"), "mean"] < 0.3
    assert s.loc[("decoder", "decoder_cosine"), "frac_above"] == 0.0


def test_different_widths_match_on_the_smaller(tmp_path, base):
    val, idx = base
    keep = 60
    mask = idx < keep
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=8, shard_size=96, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b",
        "layers.2",
        np.where(mask, val, 0),
        np.where(mask, idx, 0),
        ctx_len=CTX,
        chunk_contexts=8,
        shard_size=96,
        num_latents=keep,
    )
    res = sim.compare(a, b, progress=False)
    assert res.unmatched == N_LAT - keep and len(res.matched) == keep
    live = res.matched["count_b"] > 0
    assert (res.matched["latent_a"][live] == res.matched["latent_b"][live]).all()
    assert res.summary["unmatched"].iloc[0] == N_LAT - keep


def test_caches_of_other_corpora_are_refused(tmp_path, base):
    val, idx = base
    a = write_cache(
        tmp_path / "a", "layers.1", val, idx, ctx_len=CTX, chunk_contexts=8, shard_size=96, num_latents=N_LAT
    )
    b = write_cache(
        tmp_path / "b",
        "layers.2",
        val[: CTX * 10],
        idx[: CTX * 10],
        ctx_len=CTX,
        chunk_contexts=8,
        shard_size=96,
        num_latents=N_LAT,
    )
    with pytest.raises(AutointerpError, match="kedro run --pipelines cache"):
        sim.coactivation(a, b)


def test_score_comparison_with_missing_scores():
    rng = np.random.default_rng(0)
    sae = pd.DataFrame({"scorer": "detection", "control": False, "balanced_accuracy": rng.uniform(0.7, 0.9, 50)})
    neu = pd.DataFrame({"scorer": "detection", "control": False, "balanced_accuracy": rng.uniform(0.5, 0.6, 50)})
    t = sim.compare_scores(
        {"layers.6.mlp": sae, "neurons": neu, "topk": None},
        {"layers.6.mlp": "SAE", "neurons": "neurons", "topk": "top-32 neurons"},
    )
    assert t.loc[0, "ci_low"] < t.loc[0, "mean"] < t.loc[0, "ci_high"]
    assert t.loc[0, "ci_low"] > t.loc[1, "ci_high"]  # clearly separated distributions
    assert "score" in t.loc[2, "note"] and t.loc[2, "n"] == 0
    sim.scores_figure(t)


def test_explanation_table_takes_one_explainer():
    import pandas as pd

    from autointerp.similarity import explanation_table

    df = pd.DataFrame(
        {
            "hookpoint": ["h"] * 4,
            "latent": [0, 0, 1, 1],
            "explainer": ["default", "tokens", "default", "tokens"],
            "explanation": ["llm zero", 'fires on " a"', None, 'fires on " b"'],
        }
    )
    assert explanation_table(df, "h") == {0: "llm zero"}  # the LLM explainer, failures dropped
    assert explanation_table(df, "h", "tokens") == {0: 'fires on " a"', 1: 'fires on " b"'}
