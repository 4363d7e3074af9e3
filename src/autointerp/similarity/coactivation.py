"""Co-activation of two dictionaries' latents over the same cached tokens, from the sparse caches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from ..errors import AutointerpError
from ..latent_cache import LatentCache


def chunk_csr(cache: LatentCache, i: int) -> sp.csr_matrix:
    """Binary CSR ``[tokens of chunk i, num_latents]``: 1 where a latent fires on a token."""
    indptr, latents, _ = cache.chunk_rows(i)
    data = np.ones(len(latents), dtype=np.float32)
    return sp.csr_matrix((data, latents, indptr), shape=(len(indptr) - 1, cache.num_latents))


def _token_blocks(cache: LatentCache, bounds: np.ndarray):
    """CSR row blocks of ``cache`` for the token ranges ``bounds[j]:bounds[j+1]``."""
    per_chunk = cache.chunk_contexts * cache.ctx_len
    current, current_i = None, -1
    for a, b in zip(bounds[:-1], bounds[1:]):
        i = int(a) // per_chunk
        if i != current_i:
            current, current_i = chunk_csr(cache, i), i
        yield current[int(a) - i * per_chunk : int(b) - i * per_chunk]


@dataclass
class Coactivation:
    """``both[i, j]``: tokens where latent i of A and latent j of B both fire (a dense array, or
    a scipy CSR holding only the pairs that co-fire); ``count_a/b``: tokens where each fires;
    ``n_tokens`` compared."""

    both: np.ndarray | sp.csr_matrix
    count_a: np.ndarray
    count_b: np.ndarray
    n_tokens: int

    def jaccard(self) -> np.ndarray | sp.csr_matrix:
        """Jaccard index of every pair (dense), or of the pairs in ``both`` when it is sparse."""
        if sp.issparse(self.both):
            coo = self.both.tocoo()
            d = coo.data.astype(np.float64)
            jac = d / (self.count_a[coo.row] + self.count_b[coo.col] - d)
            return sp.csr_matrix((jac.astype(np.float32), (coo.row, coo.col)), shape=self.both.shape)
        both = self.both.astype(np.float32)
        union = self.count_a[:, None].astype(np.float32) + self.count_b[None, :].astype(np.float32) - both
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, both / np.maximum(union, 1), 0.0).astype(np.float32)


def check_same_corpus(cache_a: LatentCache, cache_b: LatentCache) -> None:
    if (cache_a.n_contexts, cache_a.ctx_len) != (cache_b.n_contexts, cache_b.ctx_len):
        raise AutointerpError(
            f"the caches of '{cache_a.hookpoint}' ({cache_a.n_contexts}x{cache_a.ctx_len} tokens) and "
            f"'{cache_b.hookpoint}' ({cache_b.n_contexts}x{cache_b.ctx_len}) were built on different corpora. "
            "Rebuild both with `kedro run --pipelines cache`."
        )


def coactivation(cache_a: LatentCache, cache_b: LatentCache, progress: bool = True) -> Coactivation:
    """Co-activation counts of every latent pair, from the sparse caches, chunk by chunk.

    Sparse chunks multiply as sparse matrices (``A^T B``); a chunk dense enough that a dense
    product is cheaper (raw MLP neurons) is densified on its own, never the whole cache.
    """
    check_same_corpus(cache_a, cache_b)
    na, nb = cache_a.num_latents, cache_b.num_latents
    n_tok = cache_a.n_tokens
    pa, pb = cache_a.chunk_contexts * cache_a.ctx_len, cache_b.chunk_contexts * cache_b.ctx_len
    bounds = np.unique(np.concatenate([np.arange(0, n_tok, pa), np.arange(0, n_tok, pb), [n_tok]]))
    both = np.zeros((na, nb), dtype=np.int32)
    count_a = np.zeros(na, dtype=np.int64)
    count_b = np.zeros(nb, dtype=np.int64)
    bar = tqdm(
        total=n_tok,
        unit="tok",
        unit_scale=True,
        desc=f"co-activation {cache_a.hookpoint} x {cache_b.hookpoint}",
        disable=not progress,
    )
    for A, B in zip(_token_blocks(cache_a, bounds), _token_blocks(cache_b, bounds)):
        count_a += np.asarray(A.sum(0)).ravel().astype(np.int64)
        count_b += np.asarray(B.sum(0)).ravel().astype(np.int64)
        t = A.shape[0]
        sparse_work = A.nnz * B.nnz / max(t, 1)
        dense_work = t * na * nb
        if sparse_work * 30 > dense_work:
            both += np.rint(A.toarray().T @ B.toarray()).astype(np.int32)
        else:
            prod = (A.T.tocsr() @ B).tocoo()
            both[prod.row, prod.col] += np.rint(prod.data).astype(np.int32)  # no duplicate indices in a product
        bar.update(t)
    bar.close()
    return Coactivation(both, count_a, count_b, n_tok)
