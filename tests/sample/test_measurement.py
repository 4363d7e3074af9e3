"""Sampling defects of issue 12 (each test failed on the code before its fix):
12.1 a test set reserved first, 12.2 a notion of "active" for dense latents (raw neurons),
12.3 a window described by its strongest token, 12.5 training negatives disjoint from the test ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.models import ModelConfig
from autointerp.sampling import (
    OK,
    TOO_FEW_FOR_TEST,
    ActiveThreshold,
    SampleConfig,
    SampleJob,
    activating_windows,
    read_latents,
    read_sampled_examples,
    shard_thresholds,
)

from .conftest import NEURONS
from .test_sample import NO_EMBED, W, run_sample

ROOT = Path(__file__).resolve().parents[2]


def overlap(a, b) -> bool:
    return a.context == b.context and abs(a.start - b.start) < W


# ---------------------------------------------------------------- 12.3 strongest token


def test_window_describes_its_strongest_token():
    """A (10) at 30 takes [18, 34); C (8) at 40 proposes [28, 44), which overlaps and is dropped;
    B (5) at 50 takes [38, 54), which holds C: the window is C's (value 8, marked 2, quantile by 8)."""
    cfg = parse_config(
        SampleConfig,
        {"window_len": 16, "n_quantiles": 3, "n_train": 1, "n_test": 1, "min_test": 1, "min_train": 1},
        "x",
    )
    tokens = np.array([30, 40, 50, 64 + 30])  # context 0: A, C, B; context 1: D (6)
    values = np.array([10.0, 8.0, 5.0, 6.0], dtype=np.float32)
    win = activating_windows(tokens, values, 64, cfg)
    got = sorted(
        zip(win.context.tolist(), win.start.tolist(), win.marked.tolist(), win.value.tolist(), win.quantile.tolist())
    )
    assert got == [(0, 18, 12, 10.0, 2), (0, 38, 2, 8.0, 1), (1, 18, 12, 6.0, 0)]


# ---------------------------------------------------------------- 12.1 test set first


def test_test_set_is_reserved_before_training(sample_cache, tmp_path):
    """With n_train far above what a latent has, training used to take every window (no test
    example at all); now min_test test windows are reserved first, and a latent with fewer than
    min_test + min_train windows gets its own status instead of `ok`."""
    _, _, cache, _ = sample_cache
    st = cache.stats()
    normal = int(np.flatnonzero((st["firing_count"] >= 40) & (st["frequency"] < 0.05))[0])
    small = [int(i) for i in np.flatnonzero((st["firing_count"] >= 6) & (st["firing_count"] <= 14))[:6]]
    assert small, "the test cache has no latent with 6..14 firing tokens"
    cfg = dict(
        NO_EMBED,
        n_train=500,
        n_test=500,
        min_test=8,
        min_train=7,
        selection={"mode": "list", "latents": [normal, *small], "min_activating": 5},
    )
    _, ex, lat = run_sample(sample_cache, tmp_path, cfg)
    row = lat.set_index("latent").loc[normal]
    assert row.status == OK and row.n_test == 8 and row.n_train == row.n_windows - 8
    test = ex[(ex.latent == normal) & (ex.split == "test") & (ex.kind == "activating")]
    assert len(test) == 8 and test["quantile"].nunique() >= 4  # spread over the bins
    few = lat[lat.latent.isin(small) & (lat.n_windows >= 5)]
    assert len(few) and (few.status == TOO_FEW_FOR_TEST).all()
    assert few.note.str.contains("min_test 8").all() and not ex.latent.isin(few.latent).any()
    assert (lat[lat.latent.isin(small) & (lat.n_windows < 5)].status.str.startswith("too rare")).all()


def test_min_test_and_min_train_are_checked():
    with pytest.raises(ConfigError, match="min_test"):
        parse_config(SampleConfig, {"n_test": 4, "min_test": 5}, "parameters: sample")
    with pytest.raises(ConfigError, match="quantile"):
        parse_config(SampleConfig, {"active_threshold": {"quantile": 1.5}}, "parameters: sample")
    with pytest.raises(ConfigError, match="active_thresholds.layers.6.*unknown key 'quantil'"):
        parse_config(SampleConfig, {"active_thresholds": {"layers.6": {"quantil": 0.9}}}, "parameters: sample")


# ---------------------------------------------------------------- 12.5 training negatives


def test_training_negatives_are_disjoint_from_the_test_set(sample_cache, tmp_path):
    _, _, cache, _ = sample_cache
    _, ex, lat = run_sample(sample_cache, tmp_path, NO_EMBED)  # train: 3 random, 2 neighbour
    ok = lat[lat.status == OK]
    assert len(ok) == 6 and (ok.n_train_non_activating == 5).all()
    for latent, g in ex.groupby("latent"):
        train_neg = g[(g.split == "train") & (g.kind != "activating")]
        assert sorted(train_neg.kind) == ["neighbour", "neighbour", "random", "random", "random"]
        test = g[g.split == "test"]
        assert not any(overlap(a, b) for a in train_neg.itertuples() for b in test.itertuples())
        assert not set(train_neg.example_id) & set(test.example_id)
        toks, _ = cache.latent_activations(int(latent))
        fires = set(toks.tolist())
        for r in train_neg.itertuples():
            assert max(r.activations) == 0 and r.marked == -1 and r.quantile == -1
            assert not fires & set(range(r.context * cache.ctx_len + r.start, r.context * cache.ctx_len + r.start + W))


# ---------------------------------------------------------------- 12.2 dense latents


def run_neurons(neuron_cache, out, **sample):
    tokens, cache, dictionary = neuron_cache
    cfg = dict(
        NO_EMBED,
        selection={"mode": "random", "n": 8, "min_activating": 5},
        negatives={
            "random": 6,
            "neighbour": 2,
            "embedding": 0,
            "neighbour_source": "cooccurrence",
            "pool_windows": 256,
            "train": {"random": 2},
        },
        **sample,
    )
    job = SampleJob(
        NEURONS,
        tokens,
        cache,
        ModelConfig(),
        dictionary,
        parse_config(SampleConfig, cfg, "parameters: sample"),
        progress=False,
    )
    job.run(out)
    return read_sampled_examples(out), read_latents(out)


def test_raw_neurons_get_ok_latents_with_a_quantile_threshold(neuron_cache, tmp_path):
    _, cache, _ = neuron_cache
    st = cache.stats()
    assert np.median(st["frequency"]) > 0.2  # raw neurons are dense: "> 0" is no notion of firing
    _, lat = run_neurons(neuron_cache, tmp_path / "plain")
    assert (lat.status == OK).sum() <= 2 and lat.status.str.startswith("too few non-activating").sum() >= 6

    ex, lat = run_neurons(neuron_cache, tmp_path / "q", active_thresholds={NEURONS: {"quantile": 0.99}})
    ok = lat[lat.status == OK]
    assert len(ok) == 8 and (ok.n_random == 6).all() and (ok.n_neighbour == 2).all()
    assert (ok.n_active <= 0.01 * cache.n_tokens).all() and (ok.active_threshold > 0).all()
    thr = dict(zip(ok.latent, ok.active_threshold))
    shards = {s: cache.load_shard(s) for s in {int(lt) // cache.shard_size for lt in ok.latent}}
    for latent, g in ex.groupby("latent"):
        sh = shards[int(latent) // cache.shard_size]
        sl = sh.latent_slices()[int(latent)]
        raw = dict(zip(sh.tokens[sl].tolist(), sh.values[sl].tolist()))
        for r in g.itertuples():
            flat = r.context * cache.ctx_len + r.start + np.arange(W)
            values = np.array([raw.get(int(t), 0.0) for t in flat])
            above = values > thr[latent]
            # activations are written through the threshold: 0 at or below it, the raw value above it
            assert np.allclose(r.activations, np.where(above, values, 0.0))
            if r.kind == "activating":
                assert above[r.marked] and values[r.marked] == values.max()
            else:  # a real non-activating window: no token above the threshold (though many above 0)
                assert not above.any()
        assert (g.kind != "activating").sum() == 10 and (g.kind == "activating").sum() >= 13


def test_quantile_threshold_counts_zeros(neuron_cache):
    """The q-quantile is over every cached token (zeros included): at most (1 - q) N tokens are
    above it, and a latent firing less often than that keeps the plain "> 0"."""
    _, cache, _ = neuron_cache
    sh = cache.load_shard(0)
    N = cache.n_tokens
    for q in (0.9, 0.99):
        thr = shard_thresholds(sh, ActiveThreshold(quantile=q), N)
        above = np.bincount(sh.latents - sh.start, weights=sh.values > thr[sh.latents - sh.start], minlength=len(thr))
        count = np.bincount(sh.latents - sh.start, minlength=len(thr))
        assert (above <= np.floor((1 - q) * N)).all()
        assert (thr[count <= (1 - q) * N] == 0).all() and (thr[count > (1 - q) * N] > 0).all()
    floor = shard_thresholds(sh, ActiveThreshold(value=0.5), N)
    assert (floor == 0.5).all()


def test_latents_vs_neurons_sets_a_threshold_for_raw_neurons():
    """The experiment's raw-neuron entry gets a notion of "active"; the SAE and top-k entries keep > 0."""
    base = yaml.safe_load((ROOT / "conf/base/parameters_sample.yml").read_text())["sample"]
    env = yaml.safe_load((ROOT / "conf/latents_vs_neurons/parameters_sample.yml").read_text())["sample"]
    hookpoints = yaml.safe_load((ROOT / "conf/latents_vs_neurons/parameters.yml").read_text())["hookpoints"]
    merged = dict(
        base,
        **{
            k: (dict(base[k], **v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v)
            for k, v in env.items()
        },
    )
    cfg = parse_config(SampleConfig, merged, "parameters: sample")
    raw = [h for h, d in hookpoints.items() if d.get("format") == "neurons" and d.get("k") is None]
    assert raw and all(cfg.threshold_for(h).quantile for h in raw)
    assert all(cfg.threshold_for(h).trivial for h in hookpoints if h not in raw)
