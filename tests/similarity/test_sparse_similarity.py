"""Similarity without dense matrices (issue 16.2): sparse co-activation and sparse matching agree
with the dense counts and the Hungarian optimum, on caches written with the cache's writer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from similarity_helpers import twin_caches

from autointerp import similarity as sim
from autointerp.similarity.sparse import top_per_group

N_DEFAULT = 4608  # latents of the default SAEs (576 x 8)


@pytest.fixture(scope="module")
def default_size(tmp_path_factory):
    """Two 4,608-latent TopK caches (k=32), 16k tokens, 40 dead latents on either side."""
    return twin_caches(tmp_path_factory.mktemp("twins"), 16384, N_DEFAULT, 32, dead=40)


@pytest.fixture(scope="module")
def dense_result(default_size):
    a, b = default_size
    co = sim.coactivation(a, b, progress=False)
    jac = co.jaccard()
    rows, cols = sim.match(jac)
    return co, jac, rows, cols


def test_sparse_counts_equal_dense_counts(default_size, dense_result):
    a, b = default_size
    co_d = dense_result[0]
    co_s = sim.sparse_coactivation(a, b, candidates=None, progress=False)
    assert sp.issparse(co_s.both) and sp.issparse(co_s.jaccard())
    np.testing.assert_array_equal(co_s.both.toarray(), co_d.both)  # every co-firing pair, exactly
    np.testing.assert_array_equal(co_s.count_a, co_d.count_a)
    np.testing.assert_array_equal(co_s.count_b, co_d.count_b)
    np.testing.assert_allclose(co_s.jaccard().toarray(), dense_result[1], rtol=1e-6, atol=1e-7)
    assert co_s.both.nnz == int((co_d.both > 0).sum()) < N_DEFAULT**2  # only the pairs that co-fire


def test_sparse_matching_reaches_the_hungarian_optimum_on_4608_latents(default_size, dense_result):
    a, b = default_size
    co_d, jac, rows, cols = dense_result
    optimum = jac[rows, cols].sum()
    dense_pairs = {(int(r), int(c)) for r, c in zip(rows, cols) if jac[r, c] > 0}
    for candidates in (None, 32):
        co = sim.sparse_coactivation(a, b, candidates=candidates, progress=False)
        rs, cs = sim.match_sparse(co.jaccard())
        total = jac[rs, cs].sum()
        assert len(set(rs.tolist())) == len(rs) and len(set(cs.tolist())) == len(cs)  # one-to-one
        assert (jac[rs, cs] > 0).all()
        if candidates is None:  # the exact graph: the same optimum
            assert total == pytest.approx(optimum, rel=1e-6)
        else:  # the pruned graph: within 0.1% of it (measured gap: see docs/similarity.md)
            assert optimum * (1 - 1e-3) <= total <= optimum * (1 + 1e-6)
        same = np.mean([(int(r), int(c)) in dense_pairs for r, c in zip(rs, cs)])
        assert same >= 0.99, (candidates, same)
    # dead latents are left out of the sparse matching
    dead_a = np.flatnonzero(co_d.count_a == 0)
    assert len(dead_a) >= 30 and not set(dead_a.tolist()) & set(rs.tolist())


def test_compare_sparse_and_dense_agree(default_size):
    a, b = default_size
    out = {}
    for method in ("dense", "sparse"):
        cfg = sim.SimilarityConfig(matching=method, candidates=None)
        out[method] = sim.compare(a, b, cfg=cfg, progress=False)
    d, s = (
        out[m].summary.set_index(["matching", "measure"]).loc[("coactivation", "jaccard")] for m in ("dense", "sparse")
    )
    assert d["method"] == "dense" and s["method"] == "sparse"
    assert s["n"] == d["n"] and s["mean"] == pytest.approx(d["mean"], rel=1e-6)
    assert s["chance"] == pytest.approx(d["chance"], rel=1e-6)  # the same random pairing of live latents
    assert s["dead_a"] == d["dead_a"] >= 30
    assert s["unmatched"] == d["unmatched"] == N_DEFAULT - s["n"]
    assert (out["sparse"].matched["jaccard"] > 0).all() and (out["dense"].matched["jaccard"] > 0).all()
    assert sp.issparse(out["sparse"].matrices["jaccard"])
    figs = sim.heatmap_figures(out["sparse"], 16)  # heatmaps read the sparse matrix
    assert "heatmap_jaccard.png" in figs


def test_auto_method_by_size():
    cfg = sim.SimilarityConfig()
    assert not cfg.sparse_for(4608, 4608) and cfg.sparse_for(65536, 4608)
    assert sim.SimilarityConfig(matching="sparse").sparse_for(10, 10)


def test_match_sparse_equals_hungarian_on_random_graphs():
    rng = np.random.default_rng(0)
    for trial in range(20):
        na, nb = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        dense = rng.random((na, nb)) * (rng.random((na, nb)) < rng.uniform(0.02, 0.5))
        dense[rng.random(na) < 0.2] = 0  # latents without any edge
        r, c = linear_sum_assignment(dense, maximize=True)
        rs, cs = sim.match_sparse(sp.csr_matrix(dense))
        assert dense[rs, cs].sum() == pytest.approx(dense[r, c].sum(), rel=1e-9, abs=1e-12), trial
        assert len(set(rs.tolist())) == len(rs) and len(set(cs.tolist())) == len(cs)
    assert len(sim.match_sparse(sp.csr_matrix((3, 4)))[0]) == 0


def test_top_per_group_is_exact():
    rng = np.random.default_rng(1)
    for _ in range(10):
        n_groups = int(rng.integers(1, 200))
        g, v, m = rng.integers(0, n_groups, 4000), rng.random(4000) ** 6, int(rng.integers(1, 60))
        ref = []
        for x in range(n_groups):
            ix = np.flatnonzero(g == x)
            ref += ix[np.argsort(-v[ix], kind="stable")[:m]].tolist()
        np.testing.assert_array_equal(np.sort(top_per_group(g, v, m)), np.sort(ref))
