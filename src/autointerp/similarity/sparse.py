"""Co-activation and matching without dense ``latents x latents`` arrays (issue 16.2).

The count of tokens where latent i of A and latent j of B both fire is computed only for the
pairs that co-fire: for each latent shard of A (its latents over all tokens, ``LatentCache.load_shard``,
a binary CSR ``[shard latents, tokens]``) times B's binary token-major CSR ``[tokens, latents]``,
a sparse product ``A_s^T B`` (scipy's sparse matmul), turned into Jaccard indices at once.
Memory: B's CSR (8 bytes per cached activation), one shard product, and the kept graph.

``candidates`` (m): every latent keeps only its m highest-Jaccard partners on either side
(top-m per row of each shard product, exact; top-m per column, reduced across shards, exact):
the graph is the union. ``None`` keeps every co-firing pair (the exact graph).

Matching: the maximum-weight one-to-one matching on that graph, by scipy's sparse assignment
(:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`, LAPJVsp). A full matching
rarely exists on a sparse graph, so every latent gets a dummy partner ("unmatched"), and every
real edge (i, j) a mirror edge between the dummies, the textbook reduction of maximum-weight
matching to a perfect one: with edge costs ``2 - J`` (real), ``1`` (mirror) and ``1.5``
(dummy) every perfect matching costs ``1.5 (na + nb) - sum(J of the real edges used)``, so
the cheapest one maximises the total Jaccard. On the exact graph this is the optimum of the
dense Hungarian assignment (pairs that never co-fire add 0 there); latents that never fire, or
whose partners are all taken, stay unmatched.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from tqdm.auto import tqdm

from ..latent_cache import LatentCache
from .coactivation import Coactivation, check_same_corpus


def token_csr(cache: LatentCache) -> sp.csr_matrix:
    """Binary CSR ``[all tokens, num_latents]`` (int32): 1 where a latent fires on a token."""
    indptrs, cols, offset = [np.zeros(1, dtype=np.int64)], [], 0
    for i in range(cache.meta["num_chunks"]):
        indptr, lat, _ = cache.chunk_rows(i)
        indptrs.append(indptr[1:] + offset)
        cols.append(lat.astype(np.int32))
        offset += len(lat)
    indptr = np.concatenate(indptrs)
    itype = np.int32 if offset < 2**31 else np.int64
    cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int32)
    return sp.csr_matrix(
        (np.ones(offset, dtype=np.int32), cols.astype(itype, copy=False), indptr.astype(itype)),
        shape=(len(indptr) - 1, cache.num_latents),
    )


def shard_csr(cache: LatentCache, s: int) -> tuple[int, sp.csr_matrix]:
    """(first latent, binary CSR ``[latents of shard s, all tokens]``), i.e. rows of ``A^T``."""
    sh = cache.load_shard(s)
    n = sh.end - sh.start
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sh.latents - sh.start, minlength=n), out=indptr[1:])
    itype = np.int32 if cache.n_tokens < 2**31 and len(sh.tokens) < 2**31 else np.int64
    return sh.start, sp.csr_matrix(
        (np.ones(len(sh.tokens), dtype=np.int32), sh.tokens.astype(itype), indptr.astype(itype)),
        shape=(n, cache.n_tokens),
    )


BUCKETS_PER_OCTAVE, BUCKETS = 16, 256  # value buckets of the top-m prefilter: 2**-16 .. 1


def top_per_group(group: np.ndarray, value: np.ndarray, m: int, n_groups: int | None = None) -> np.ndarray:
    """Indices of the ``m`` largest ``value`` (in (0, 1]) within each ``group`` (ties: first occurrence).

    A histogram of log-spaced value buckets per group (one ``bincount``) finds each group's
    bucket of its m-th largest value; only the entries at or above it are sorted, and groups
    of at most m entries are kept whole.
    """
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    n_groups = int(group.max()) + 1 if n_groups is None else n_groups
    group = group.astype(np.int64, copy=False)
    v32 = np.maximum(np.asarray(value, dtype=np.float32), np.float32(1e-30))
    q = np.floor(BUCKETS + BUCKETS_PER_OCTAVE * np.log2(v32)).clip(0, BUCKETS - 1).astype(np.int64)
    hist = np.bincount(group * BUCKETS + q, minlength=n_groups * BUCKETS).reshape(n_groups, BUCKETS)
    at_least = np.cumsum(hist[:, ::-1], axis=1)  # [g, i]: entries in the top i+1 buckets
    del hist
    enough = at_least >= m
    thr = np.where(enough.any(1), BUCKETS - 1 - np.argmax(enough, axis=1), 0)
    del at_least, enough
    whole = (np.bincount(group, minlength=n_groups) <= m)[group]  # groups of at most m: kept whole, unsorted
    cand = np.flatnonzero(~whole & (q >= thr[group]))
    g, v = group[cand], value[cand]
    key = g.astype(np.float64) + 0.5 * (1.0 - np.clip(v.astype(np.float64), 0.0, 1.0))  # group, then -value
    order = np.argsort(key, kind="stable")
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    rank = np.arange(len(gs)) - np.repeat(starts, np.diff(np.r_[starts, len(gs)]))
    return np.sort(np.concatenate([np.flatnonzero(whole), cand[order[rank < m]]]))


class _Edges:
    """Edges (row, col, count, jaccard) gathered shard by shard."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, *arrays):
        if len(arrays[0]):
            self.parts.append(arrays)

    def arrays(self):
        if not self.parts:
            return (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
        return tuple(np.concatenate(x) for x in zip(*self.parts))

    def __len__(self):
        return sum(len(p[0]) for p in self.parts)


def sparse_coactivation(
    cache_a: LatentCache, cache_b: LatentCache, candidates: int | None = None, progress: bool = True
):
    """The co-firing graph of two caches: a :class:`~autointerp.similarity.Coactivation` whose
    ``both`` is a scipy CSR ``[na, nb]`` of co-activation counts (only pairs that co-fire, or
    their top ``candidates`` per latent on either side); ``jaccard()`` keeps that sparsity."""
    check_same_corpus(cache_a, cache_b)
    na, nb = cache_a.num_latents, cache_b.num_latents
    B = token_csr(cache_b)
    count_b = np.bincount(B.indices, minlength=nb).astype(np.int64)
    count_a = np.zeros(na, dtype=np.int64)
    kept, by_col = _Edges(), _Edges()
    tau = np.zeros(nb, dtype=np.float32)  # per column of B: its m-th highest Jaccard so far
    shards = range(len(cache_a.shard_ranges))
    for s in tqdm(
        shards, desc=f"co-activation {cache_a.hookpoint} x {cache_b.hookpoint}", unit="shard", disable=not progress
    ):
        start, AT = shard_csr(cache_a, s)
        count_a[start : start + AT.shape[0]] = np.diff(AT.indptr)
        P = (AT @ B).tocoo()
        del AT
        row, col, both = P.row.astype(np.int32) + np.int32(start), P.col.astype(np.int32), P.data.astype(np.int32)
        del P
        jac = (both / (count_a[row] + count_b[col] - both)).astype(np.float32)  # int64 counts: no overflow
        if candidates is None:
            kept.add(row, col, both, jac)
            continue
        keep = top_per_group(row - start, jac, candidates)
        kept.add(row[keep], col[keep], both[keep], jac[keep])
        keep = np.flatnonzero(jac >= tau[col])  # below a column's m-th best so far: never in its top m
        by_col.add(row[keep], col[keep], both[keep], jac[keep])
        if len(by_col) > 4 * candidates * nb:  # reduce to the top m per column so far
            r, c, n, j = by_col.arrays()
            keep = top_per_group(c, j, candidates, nb)
            by_col.parts = [(r[keep], c[keep], n[keep], j[keep])]
            full = np.bincount(c[keep], minlength=nb) >= candidates
            np.minimum.at(low := np.ones(nb, dtype=np.float32), c[keep], j[keep])
            tau = np.where(full, low, 0.0).astype(np.float32)
    r, c, n, j = kept.arrays()
    if candidates is not None:
        r2, c2, n2, j2 = by_col.arrays()
        keep = top_per_group(c2, j2, candidates, nb)
        r, c, n = np.concatenate([r, r2[keep]]), np.concatenate([c, c2[keep]]), np.concatenate([n, n2[keep]])
        _, first = np.unique(r.astype(np.int64) * nb + c, return_index=True)  # an edge kept from both sides once
        r, c, n = r[first], c[first], n[first]
    both = sp.csr_matrix((n.astype(np.int32), (r, c)), shape=(na, nb))
    return Coactivation(both, count_a, count_b, cache_a.n_tokens)


def match_sparse(sim: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-weight one-to-one matching on the edges of ``sim`` (values in (0, 1], absent =
    no edge), sorted by A's latent; latents without a partner are left out (module docstring)."""
    coo = sp.coo_matrix(sim)
    keep = coo.data > 0
    r, c, w = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float64)
    if len(r) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ra, ri = np.unique(r, return_inverse=True)  # only latents with an edge take part
    ca, ci = np.unique(c, return_inverse=True)
    na, nb, e = len(ra), len(ca), len(ri)
    # rows: A (na), B' (nb); columns: B (nb), A' (na)
    rows = np.concatenate([ri, np.arange(na), na + np.arange(nb), na + ci])
    cols = np.concatenate([ci, nb + np.arange(na), np.arange(nb), nb + ri])
    cost = np.concatenate([2.0 - np.minimum(w, 1.0), np.full(na, 1.5), np.full(nb, 1.5), np.ones(e)])
    G = sp.csr_matrix((cost, (rows, cols)), shape=(na + nb, nb + na))
    _, match_col = min_weight_full_bipartite_matching(G)
    a_side = match_col[:na]
    real = a_side < nb
    out_a, out_b = ra[np.flatnonzero(real)], ca[a_side[real]]
    return out_a.astype(np.int64), out_b.astype(np.int64)
