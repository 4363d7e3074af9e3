"""Properties of sampled examples on a real cache (real model, random SAE)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from autointerp.config import parse_config
from autointerp.errors import AutointerpError, ConfigError
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig
from autointerp.sampling import OK, SampleConfig, SampleJob, activating_windows, read_latents, read_sampled_examples

from .conftest import HOOKPOINT

W = 16
BASE = {
    "window_len": W,
    "n_quantiles": 5,
    "n_train": 8,
    "n_test": 10,
    "min_test": 3,
    "min_train": 2,
    "seed": 3,
    "selection": {"mode": "random", "n": 6, "min_activating": 5},
    "negatives": {
        "random": 6,
        "neighbour": 3,
        "embedding": 6,
        "pool_windows": 256,
        "embedding_pool": 128,
        "train": {"random": 3, "neighbour": 2, "embedding": 2},
    },
}
NO_EMBED = dict(BASE, negatives=dict(BASE["negatives"], embedding=0, train={"random": 3, "neighbour": 2}))


def run_sample(sample_cache, out, cfg: dict):
    root, tokens, cache, dictionary = sample_cache
    job = SampleJob(
        HOOKPOINT,
        tokens,
        cache,
        ModelConfig(),
        dictionary,
        parse_config(SampleConfig, cfg, "parameters: sample"),
        progress=False,
    )
    meta = job.run(out)
    return meta, read_sampled_examples(out), read_latents(out)


@pytest.fixture(scope="module")
def sampled(sample_cache, tmp_path_factory):
    return run_sample(sample_cache, tmp_path_factory.mktemp("sampled"), BASE)


def cache_values(cache: LatentCache, latent: int) -> dict[int, float]:
    toks, vals = cache.latent_activations(latent)
    return dict(zip(toks.tolist(), vals.tolist()))


def test_columns_and_counts(sampled):
    _, ex, lat = sampled
    for col in [
        "hookpoint",
        "latent",
        "split",
        "kind",
        "quantile",
        "context",
        "start",
        "token_ids",
        "tokens",
        "activations",
        "max_activation",
        "marked",
    ]:
        assert col in ex.columns
    ok = lat[lat.status == OK]
    assert len(ok) == 6 and set(ex.latent) == set(ok.latent)
    assert (lat.loc[lat.status != OK, "status"].str.len() > 0).all()
    for _latent, g in ex.groupby("latent"):
        train = g[g.split == "train"]
        assert (train.kind == "activating").sum() == 8 and (g.kind == "activating").sum() >= 8 + 5
        assert (train.kind == "random").sum() == 3 and set(train.kind) <= {
            "activating",
            "random",
            "neighbour",
            "embedding",
        }
        assert ((g.kind == "random") & (g.split == "test")).sum() == 6
        assert all(len(t) == W for t in g.token_ids) and all(len(t) == W for t in g.tokens)


def test_windows_disjoint_within_latent(sampled):
    """Test examples are absent from the training set: no two windows of a latent share a token."""
    _, ex, _ = sampled
    for latent, g in ex.groupby("latent"):
        train = g[g.split == "train"]
        test = g[g.split == "test"]
        train_keys = set(zip(train.context, train.start))
        assert not train_keys & set(zip(test.context, test.start))
        for c, sub in g.groupby("context"):
            starts = np.sort(sub.start.to_numpy())
            assert (np.diff(starts) >= W).all(), f"latent {latent}: overlapping windows in context {c}"


@pytest.mark.parametrize("seed", range(20))
def test_greedy_windows_match_the_definition(seed):
    """The byte-map greedy keeps exactly the windows the definition keeps: in order, each
    window that overlaps none kept before it (random corpora, ragged context ends)."""
    from autointerp.sampling.windows import greedy_non_overlapping

    rng = np.random.default_rng(seed)
    ctx_len, w = int(rng.integers(8, 40)), int(rng.integers(1, 9))
    n = int(rng.integers(0, 200))
    ctx, start = rng.integers(0, 5, n), rng.integers(0, ctx_len - w + 1, n)
    order = rng.permutation(n)
    kept: list[int] = []
    for i in order:
        if all(ctx[j] != ctx[i] or abs(start[j] - start[i]) >= w for j in kept):
            kept.append(int(i))
    assert greedy_non_overlapping(ctx, start, order, ctx_len, w).tolist() == sorted(kept)


def test_activations_match_cache(sampled, sample_cache, model_and_tokenizer):
    _, tokens, cache, _ = sample_cache
    _, tok = model_and_tokenizer
    _, ex, _ = sampled
    for latent, g in ex.groupby("latent"):
        truth = cache_values(cache, int(latent))
        for r in g.itertuples():
            assert 0 <= r.start and r.start + W <= cache.ctx_len
            assert list(r.token_ids) == tokens[r.context, r.start : r.start + W].tolist()
            flat = r.context * cache.ctx_len + r.start + np.arange(W)
            expected = [truth.get(int(t), 0.0) for t in flat]
            assert np.allclose(r.activations, expected)
            assert r.max_activation == pytest.approx(max(expected))
            text = tok.decode(list(r.token_ids), clean_up_tokenization_spaces=False)
            if "\ufffd" not in text:
                assert "".join(r.tokens) == text
            if r.kind == "activating":
                assert r.activations[r.marked] == truth[int(flat[r.marked])] > 0
            else:
                assert r.marked == -1 and r.quantile == -1
                assert not any(int(t) in truth for t in flat), "non-activating window where the latent fires"


def test_activating_token_is_centred(sampled):
    _, ex, _ = sampled
    act = ex[ex.kind == "activating"]
    marked = W * 3 // 4
    inside = act[(act.start > 0) & (act.start < 64 - W)]
    # centred on the token it was drawn for, unless a stronger token of the window took over (issue 12.3)
    assert len(inside) and (inside.marked == marked).mean() > 0.9
    for r in act.itertuples():
        assert r.activations[r.marked] == max(r.activations) == r.max_activation


def test_quantile_bins_monotone(sampled, sample_cache):
    _, tokens, cache, _ = sample_cache
    _, ex, _ = sampled
    cfg = parse_config(SampleConfig, BASE, "x")
    for latent, g in ex[ex.kind == "activating"].groupby("latent"):
        marked = g.apply(lambda r: r.activations[r.marked], axis=1)
        by_q = marked.groupby(g["quantile"])
        qs = sorted(by_q.groups)
        for a, b in zip(qs, qs[1:]):
            assert by_q.get_group(a).max() <= by_q.get_group(b).min()
        test_q = g.loc[g.split == "test", "quantile"]
        assert test_q.nunique() >= min(5, len(test_q))  # test examples spread over the bins
        # the full set of windows: bins of equal size by rank, monotone
        toks, vals = cache.latent_activations(int(latent))
        win = activating_windows(toks, vals, cache.ctx_len, cfg)
        sizes = np.bincount(win.quantile, minlength=5)
        assert sizes.max() - sizes.min() <= 1
        for q in range(4):
            assert win.value[win.quantile == q].max() <= win.value[win.quantile == q + 1].min()


@pytest.fixture(scope="module")
def sampled_exact_queries(sample_cache, tmp_path_factory):
    cfg = dict(BASE, negatives=dict(BASE["negatives"], embedding_query="windows"))
    return run_sample(sample_cache, tmp_path_factory.mktemp("sampled_windows"), cfg)


@pytest.mark.parametrize("query", ["grid", "windows"])
def test_hard_negatives_closer_than_random(query, sampled, sampled_exact_queries):
    """Closer to the latent's own training windows (embedded exactly here) than random ones,
    whether the query was built from their grid windows (the default) or from the windows."""
    from autointerp.embeddings import embed

    _, ex, _ = sampled if query == "grid" else sampled_exact_queries
    ex = ex[(ex.split == "train") | ex.kind.isin(["embedding", "random"])].reset_index(drop=True)
    emb = embed(["".join(t) for t in ex.tokens])  # one batch
    gaps = []
    for _latent, g in ex.groupby("latent"):
        q = emb[g.index[g.split == "train"]].mean(0)
        q /= np.linalg.norm(q)
        sim = {k: emb[g.index[g.kind == k]] @ q for k in ("embedding", "random")}
        if len(sim["embedding"]) and len(sim["random"]):
            gaps.append(sim["embedding"].mean() - sim["random"].mean())
    assert len(gaps) >= 4 and np.mean(gaps) > 0


def test_neighbour_negatives_are_where_similar_latents_fire(sampled, sample_cache):
    from autointerp.dictionaries import load_dictionary

    _, _, cache, dictionary = sample_cache
    _, ex, _ = sampled
    W_dec = load_dictionary(dictionary, HOOKPOINT).W_dec.numpy()
    W_dec = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    neg = ex[ex.kind == "neighbour"]
    assert len(neg)
    for r in neg.head(6).itertuples():
        flat = r.context * cache.ctx_len + r.start + np.arange(W)
        dense = cache.dense(flat)
        assert dense[:, r.latent].max() == 0
        others = np.flatnonzero(dense.max(0) > 0)
        top10 = np.argsort(-(W_dec @ W_dec[r.latent]))[1:11]
        assert set(others) & set(top10), "no near neighbour fires in a neighbour window"


def test_same_seed_same_samples_and_resume(sample_cache, tmp_path):
    _, ex1, lat1 = run_sample(sample_cache, tmp_path / "a", NO_EMBED)
    _, ex2, lat2 = run_sample(sample_cache, tmp_path / "b", NO_EMBED)
    pd.testing.assert_frame_equal(ex1, ex2)
    pd.testing.assert_frame_equal(lat1, lat2)
    # a latent's samples do not depend on which other latents are sampled
    keep = sorted(set(ex1.latent))[:2]
    _, ex3, _ = run_sample(
        sample_cache, tmp_path / "c", dict(NO_EMBED, selection={"mode": "list", "latents": keep, "min_activating": 5})
    )
    sub = ex1[ex1.latent.isin(keep)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        sub[["latent", "split", "kind", "context", "start"]], ex3[["latent", "split", "kind", "context", "start"]]
    )
    _, ex4, _ = run_sample(sample_cache, tmp_path / "d", dict(NO_EMBED, seed=99))
    assert not ex4[["latent", "context", "start"]].equals(ex1[["latent", "context", "start"]])
    # a re-run with the same configuration is a no-op
    parts = sorted((tmp_path / "a" / "examples").glob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in parts]
    run_sample(sample_cache, tmp_path / "a", NO_EMBED)
    assert [p.stat().st_mtime_ns for p in parts] == mtimes
    # a killed run resumes: finished partitions are kept, the missing one is computed
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    (tmp_path / "a" / "meta.json").write_text(json.dumps(dict(meta, complete=False)))
    for d in ("examples", "status"):
        (tmp_path / "a" / d / parts[-1].name).unlink()
    _, ex5, lat5 = run_sample(sample_cache, tmp_path / "a", NO_EMBED)
    assert [p.stat().st_mtime_ns for p in parts[:-1]] == mtimes[:-1] and parts[-1].exists()
    pd.testing.assert_frame_equal(ex5, ex1)
    pd.testing.assert_frame_equal(lat5, lat1)


def test_odd_latents_are_recorded_not_fatal(sample_cache, tmp_path):
    _, _, cache, _ = sample_cache
    st = cache.stats()
    dense = int(np.argmax(st["frequency"]))
    normal = int(np.flatnonzero((st["firing_count"] >= 40) & (st["frequency"] < 0.05))[0])
    dead = int(np.flatnonzero(st["firing_count"] == 0)[0]) if (st["firing_count"] == 0).any() else None
    latents = [dense, normal, cache.num_latents + 5] + ([dead] if dead is not None else [])
    cfg = dict(
        NO_EMBED,
        n_train=500,
        n_test=500,
        selection={"mode": "list", "latents": latents, "min_activating": 5},
        negatives={"random": 5, "neighbour": 0, "embedding": 0, "pool_windows": 256, "min_non_activating": 3},
    )
    meta, ex, lat = run_sample(sample_cache, tmp_path, cfg)
    status = dict(zip(lat.latent, lat.status))
    assert status[cache.num_latents + 5].startswith("out of range")
    assert status[dense].startswith("too few non-activating"), status[dense]
    assert status[normal] == OK
    if dead is not None:
        assert status[dead].startswith("dead")
    assert set(ex.latent) == {normal}
    row = lat[lat.latent == normal].iloc[0]
    assert row.n_train + row.n_test == row.n_windows and "activating windows" in row.note  # took what exists


def test_bad_config_messages(sample_cache, tmp_path):
    with pytest.raises(ConfigError, match="window_len"):
        run_sample(sample_cache, tmp_path / "x", dict(BASE, window_len=1000))
    with pytest.raises(ConfigError, match="unknown key 'n_trian'.*n_train"):
        parse_config(SampleConfig, {"n_trian": 3}, "parameters: sample")
    with pytest.raises(ConfigError, match="train_mode"):
        parse_config(SampleConfig, {"train_mode": "best"}, "parameters: sample")
    with pytest.raises(AutointerpError, match="kedro run --pipelines cache"):
        LatentCache(tmp_path / "nothing")


def test_cooccurrence_neighbours(sample_cache, tmp_path):
    """Neighbours by co-occurrence (what neurons use): another latent fires in the window, this one does not."""
    _, _, cache, _ = sample_cache
    cfg = dict(
        NO_EMBED,
        negatives={
            "random": 0,
            "neighbour": 4,
            "embedding": 0,
            "neighbour_source": "cooccurrence",
            "pool_windows": 256,
        },
    )
    _, ex, lat = run_sample(sample_cache, tmp_path, cfg)
    neg = ex[ex.kind == "neighbour"]
    assert len(neg) >= 8 and (lat.n_neighbour > 0).sum() >= 3
    for r in neg.head(4).itertuples():
        dense = cache.dense(r.context * cache.ctx_len + r.start + np.arange(W))
        assert dense[:, r.latent].max() == 0 and (dense.max(0) > 0).sum() > 0


def test_latent_selection_modes():
    from autointerp.sampling import SelectionConfig, select_latents

    count = np.array([0, 3, 50, 100, 7, 1000, 20, 0, 60, 5000])
    stats = {"firing_count": count, "frequency": count / 10000}

    def sel(**kw):
        return select_latents(stats, 10, parse_config(SelectionConfig, kw, "x"), seed=0, hookpoint="h")

    chosen, skipped = sel(mode="first", n=3, min_activating=10)
    assert chosen == [2, 3, 5] and set(skipped) == {0, 1, 4} and skipped[0].startswith("dead")
    chosen, skipped = sel(mode="random", n=4, min_activating=10)
    assert len(chosen) == 4 and all(count[c] >= 10 for c in chosen) and set(skipped) == {0, 1, 4, 7}
    assert sel(mode="random", n=4, min_activating=10) == (chosen, skipped)  # seeded
    chosen, _ = sel(mode="per_band", n=1, min_activating=10, bands=[0, 0.01, 0.1, 1])
    assert len(chosen) == 3 and sorted(np.digitize(count[chosen] / 10000, [0.01, 0.1])) == [0, 1, 2]
    chosen, skipped = sel(mode="list", latents=[2, 12, -1])
    assert chosen == [2] and skipped[12].startswith("out of range") and -1 in skipped
    assert sel(mode="all")[0] == list(range(10))
    with pytest.raises(ConfigError, match="mode"):
        sel(mode="best")


def test_top_mode_trains_on_the_strongest_windows(sample_cache, tmp_path):
    _, ex, _ = run_sample(sample_cache, tmp_path, dict(NO_EMBED, train_mode="top"))
    act = ex[ex.kind == "activating"]
    for _latent, g in act.groupby("latent"):
        marked = g.apply(lambda r: r.activations[r.marked], axis=1)
        # the test set is served first (min_test windows spread over the bins), then training takes the strongest
        test = marked[g.split == "test"]
        assert (test > marked[g.split == "train"].min()).sum() <= 3
        assert (g.loc[g.split == "train", "quantile"] == 4).any()


def test_token_strings_never_lose_characters(model_and_tokenizer):
    from autointerp.examples import TokenStrings

    _, tok = model_and_tokenizer
    text = "Naïve café — 日本語 text 🙂 with\ttabs\n and  spaces"
    ids = tok.encode(text, add_special_tokens=False)
    strings = TokenStrings(tok).window(ids)
    assert len(strings) == len(ids) and "".join(strings) == text
    assert any(s == "" for s in strings)  # a split character sits on the token that completes it


def test_one_job_for_both_outputs_runs_once(sample_cache, tmp_path, monkeypatch):
    """The sample node returns the same job for the examples and the latents table: the second
    save is answered from memory (the folder is not re-fingerprinted or re-read)."""
    import autointerp.sampling.job as job_module

    root, tokens, cache, dictionary = sample_cache
    calls = []
    real = job_module.sample_hookpoint
    monkeypatch.setattr(job_module, "sample_hookpoint", lambda out, job: calls.append(out) or real(out, job))
    cfg = dict(NO_EMBED, selection={"mode": "first", "n": 1, "min_activating": 5})
    job = SampleJob(
        HOOKPOINT,
        tokens,
        cache,
        ModelConfig(),
        dictionary,
        parse_config(SampleConfig, cfg, "parameters: sample"),
        progress=False,
    )
    first = job.run(tmp_path / "x")
    assert job.run(tmp_path / "x") is first and len(calls) == 1 and first["complete"]
    job.run(tmp_path / "y")  # another folder is another piece of work
    assert len(calls) == 2
