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
    # no frequency limit: on 480 tokens only frequent noise latents co-fire on 10 tokens
    cfg = sim.SimilarityConfig(matched_latents=5, matched_max_frequency=None)
    params = {"matched_latents": 5, "matched_max_frequency": None}
    ab = nodes.match_pair(a, b, {"layers.1": {}, "layers.2": {}}, params, pair=("layers.1", "layers.2"))
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


def test_latents_firing_nearly_everywhere_are_not_top_matches(three):
    """Dense latents match almost perfectly but cannot be sampled (no non-activating window):
    ``matched_max_frequency`` leaves their pairs out of the top matches."""
    a, b, _, _ = three
    _, _, matched, _ = sim.coactivation_matching(a, b, sim.SimilarityConfig(), progress=False)
    freq = dict(zip(matched["latent_a"], matched["count_a"] / a.n_tokens))
    dense = {lat for lat, f in freq.items() if f > 0.1}
    assert dense  # Zipf frequencies: the most frequent latents fire on more than a tenth of the tokens
    loose = sim.pair_top_matched(a, b, sim.SimilarityConfig(matched_max_frequency=None), top_n=10, progress=False)
    assert dense & set(loose.loc[loose["hookpoint"] == "layers.1", "latent"])  # twins: dense ones match best too
    t = sim.pair_top_matched(a, b, sim.SimilarityConfig(), top_n=10, progress=False)
    ta = t[t["hookpoint"] == "layers.1"]
    assert len(ta) == 10 and not dense & set(ta["latent"]) and (ta["jaccard"] == 1.0).all()
    with pytest.raises(ConfigError, match="matched_max_frequency"):
        nodes.similarity_config({"matched_max_frequency": 0})
