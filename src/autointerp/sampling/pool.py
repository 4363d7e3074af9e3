"""The seeded pool of candidate non-activating windows of one hookpoint."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..latent_cache import ShardActivations


class WindowPool:
    """A seeded sample of grid windows, with each latent's max activation in each of them.

    ``acts`` is a sparse [pool, num_latents] matrix: its size depends on the pool and the
    dictionary, not on the number of latents sampled.
    """

    def __init__(self, n_contexts: int, ctx_len: int, window_len: int, size: int, seed: int):
        W = min(window_len, ctx_len)
        per = ctx_len // W
        total = n_contexts * per
        rng = np.random.default_rng([seed, 0x9001])
        ids = rng.permutation(total)[:size]
        self.context = ids // per
        self.start = (ids % per) * W
        self.window_len, self.ctx_len = W, ctx_len
        self.tok2pool = np.full(n_contexts * ctx_len, -1, dtype=np.int32)
        flat = (self.context * ctx_len + self.start)[:, None] + np.arange(W)
        self.tok2pool[flat] = np.arange(len(ids), dtype=np.int32)[:, None]
        self._parts: list[sp.csc_matrix] = []
        self.acts: sp.csc_matrix | None = None
        self.embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.context)

    def add_shard(self, sh: ShardActivations, num_latents: int) -> None:
        rows = self.tok2pool[sh.tokens]
        m = rows >= 0
        rows, cols, vals = rows[m].astype(np.int64), sh.latents[m].astype(np.int64), sh.values[m]
        if len(rows):
            key = cols * len(self) + rows
            order = np.argsort(key, kind="stable")
            key, vals = key[order], vals[order]
            first = np.concatenate([[True], key[1:] != key[:-1]])
            idx = np.flatnonzero(first)
            vmax = np.maximum.reduceat(vals, idx)
            key = key[idx]
            rows, cols = key % len(self), key // len(self)
        else:
            vmax = vals
        self._parts.append(
            sp.csc_matrix((vmax.astype(np.float32), (rows, cols - sh.start)), shape=(len(self), sh.end - sh.start))
        )

    def finish(self) -> None:
        self.acts = sp.hstack(self._parts, format="csc") if self._parts else sp.csc_matrix((len(self), 0))
        self._parts = []
        self._binary_rows = (self.acts > 0).astype(np.float32).tocsr()
        self.counts = np.asarray((self.acts > 0).sum(0)).ravel()

    def fires(self, latent: int) -> np.ndarray:
        """Pool rows where ``latent`` fires."""
        a = self.acts
        return a.indices[a.indptr[latent] : a.indptr[latent + 1]]

    def cooccurring(self, latent: int, n: int) -> np.ndarray:
        """The ``n`` latents with the highest Jaccard co-occurrence with ``latent`` over the pool."""
        rows = self.fires(latent)
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        co = np.asarray(self._binary_rows[rows].sum(0)).ravel()
        co[latent] = 0
        jac = co / np.maximum(len(rows) + self.counts - co, 1)
        cand = np.flatnonzero(co > 0)
        return cand[np.lexsort((cand, -jac[cand]))][:n]


def draw_negatives(
    pool: WindowPool,
    free: np.ndarray,
    kind: str,
    want: int,
    latent: int,
    neighbours,
    query: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pool rows of ``want`` non-activating windows of one kind among the ``free`` rows (sorted
    for ``random``, by rank otherwise). ``neighbours(latent)`` gives the latents whose windows
    make ``neighbour`` negatives; ``query`` is the latent's training embedding (``embedding``)."""
    if kind == "random":
        return np.sort(rng.permutation(np.flatnonzero(free))[:want]).astype(np.int64)
    if kind == "neighbour":  # round-robin over the neighbours, nearest first
        lists = []
        for j in neighbours(latent):
            r = pool.fires(int(j))
            lists.append(rng.permutation(r[free[r]]))
        chosen, seen = [], set()
        for depth in range(max((len(x) for x in lists), default=0)):
            for lst in lists:
                if depth < len(lst) and int(lst[depth]) not in seen and len(chosen) < want:
                    seen.add(int(lst[depth]))
                    chosen.append(int(lst[depth]))
            if len(chosen) >= want:
                break
        return np.asarray(chosen, dtype=np.int64)
    emb = pool.embeddings  # embedding: the free embedded windows closest to the query
    k = 0 if emb is None else len(emb)
    cand = np.flatnonzero(free[:k])
    if len(cand) == 0 or query is None:
        return np.zeros(0, dtype=np.int64)
    sims = emb[cand] @ query
    return cand[np.lexsort((cand, -sims))][:want].astype(np.int64)
