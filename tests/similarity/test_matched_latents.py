"""Issue 15.1, match before sampling: the top matched latents of each pair, per hookpoint."""

from __future__ import annotations

import numpy as np
import pytest
from similarity_helpers import random_sparse, write_cache

from autointerp import similarity as sim
from autointerp.errors import ConfigError
from autointerp.pipelines.similarity import nodes

N, CTX = 48, 16


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Caches of three hookpoints: B is A permuted; C is unrelated noise."""
    root = tmp_path_factory.mktemp("matched")
    rng = np.random.default_rng(4)
    val, idx = random_sparse(rng, 30 * CTX, N, 4)
    perm = rng.permutation(N)
    val_c, idx_c = random_sparse(rng, 30 * CTX, N, 4)
    kw = dict(ctx_len=CTX, chunk_contexts=8, shard_size=16, num_latents=N)
    return (
        write_cache(root / "a", "layers.1", val, idx, **kw),
        write_cache(root / "b", "layers.2", val, perm[idx], **kw),
        write_cache(root / "c", "layers.3", val_c, idx_c, **kw),
        perm,
    )


def test_top_matched_both_sides_of_a_twin(three):
    a, b, _, perm = three
    for method in ("dense", "sparse"):
        t = sim.pair_top_matched(a, b, sim.SimilarityConfig(matching=method), top_n=10)
        assert list(t.columns) == sim.MATCHED_COLUMNS and len(t) == 20
        ta, tb = t[t["hookpoint"] == "layers.1"], t[t["hookpoint"] == "layers.2"]
        assert list(ta["rank"]) == list(range(10)) == list(tb["rank"])
        np.testing.assert_array_equal(ta["partner_latent"], perm[ta["latent"]])  # the twin is the match
        np.testing.assert_array_equal(tb["latent"], ta["partner_latent"])
        assert (ta["jaccard"] == 1.0).all() and ta["jaccard"].is_monotonic_decreasing
        assert (t["pair"] == "layers.1|layers.2").all()


def test_hookpoint_gathers_every_pair_it_is_in(three):
    a, b, c, _ = three
    cfg = sim.SimilarityConfig(matched_latents=5)
    ab = nodes.match_pair(a, b, {"layers.1": {}, "layers.2": {}}, {"matched_latents": 5}, pair=("layers.1", "layers.2"))
    bc = sim.pair_top_matched(b, c, cfg, cfg.matched_latents)
    t = nodes.matched_latents(ab, bc, hookpoint="layers.2")
    assert set(t["pair"]) == {"layers.1|layers.2", "layers.2|layers.3"} and len(t) == 10
    assert (t["hookpoint"] == "layers.2").all() and t["rank"].is_monotonic_increasing
    # the twin pair's matches are far better than the noise pair's
    by_pair = t.groupby("pair")["jaccard"].mean()
    assert by_pair["layers.1|layers.2"] == 1.0 > 3 * by_pair["layers.2|layers.3"]
    assert len(sim.hookpoint_matched("layers.9", ab, bc)) == 0
    assert len(sim.top_matched(ab.iloc[:0], 5)) == 0


def test_matched_latents_must_not_be_negative():
    with pytest.raises(ConfigError, match="matched_latents"):
        nodes.similarity_config({"matched_latents": -1})
