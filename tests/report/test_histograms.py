"""The browser's activation histograms, read from the latent cache one chunk file at a time:
the same counts and edges as a histogram of each latent's values read whole."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from autointerp.report.data import cache_histograms, histogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "similarity"))
from similarity_helpers import random_sparse, write_cache  # noqa: E402


def test_chunked_histograms_equal_whole_latent_histograms(tmp_path):
    rng = np.random.default_rng(0)
    val, idx = random_sparse(rng, 4 * 64, num_latents=300, k=40)  # dense-ish: 40 of 300 per token
    val = (val * rng.gamma(2.0, size=(len(val), 1))).astype(np.float32)  # maxima that differ by latent
    val[:64][idx[:64] == 7] = 0.0  # latent 7 is silent in the first chunk (zeros are not stored)
    cache = write_cache(  # latent 300 never fires (drawn from 300)
        tmp_path / "c", "layers.0", val, idx, ctx_len=16, chunk_contexts=4, shard_size=128, num_latents=301
    )
    assert cache.meta["num_chunks"] == 4 and len(cache.shard_ranges) == 3  # several chunks and shards
    stats = cache.stats()
    assert stats["firing_count"][300] == 0 and stats["firing_count"][7] > 0
    assert cache_histograms(cache, [300], bins=20)[300][0].size == 0  # a shard where no chunk has it
    wanted = [0, 5, 7, 127, 128, 200, 299, 300]
    got = cache_histograms(cache, wanted + [-1, 301], bins=20)  # out-of-range ids are left out
    assert sorted(got) == sorted(set(wanted))
    for lat in wanted:
        _, values = cache.latent_activations(lat)
        counts, edges = histogram(values, 20)
        assert np.array_equal(got[lat][0], counts) and np.array_equal(got[lat][1], edges), lat
        assert got[lat][0].sum() == stats["firing_count"][lat]
