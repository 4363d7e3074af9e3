"""Per-hookpoint sampling state and the sampling of one latent (windows, split, negatives, rows)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ..errors import AutointerpError
from ..examples import EXAMPLE_SCHEMA, TokenStrings
from ..latent_cache import ShardActivations
from .active import keep_active, shard_thresholds
from .config import NEGATIVE_KINDS, OK, TOO_FEW_FOR_TEST
from .pool import WindowPool, draw_negatives
from .selection import rare_reason
from .windows import activating_windows, split_train_test

if TYPE_CHECKING:
    from .job import SampleJob

log = logging.getLogger(__name__)
QUERY_CACHE = 16384  # window embeddings kept for the embedding negatives' queries (~25 MB with MiniLM)

LATENT_COLUMNS = (
    [
        "hookpoint",
        "latent",
        "firing_count",
        "frequency",
        "max_activation",
        "mean_activation",
        "status",
        "n_windows",
        "n_train",
        "n_test",
    ]
    + [f"n_{k}" for k in NEGATIVE_KINDS]
    + ["n_train_non_activating", "active_threshold", "n_active", "note"]
)


class Sampler:
    """Per-hookpoint state shared by all latents: tokens, pool, neighbours, token strings."""

    def __init__(self, job: SampleJob, tokenizer, decoder: np.ndarray | None):
        self.job, self.cfg, self.cache = job, job.config, job.cache
        self.tokens = job.tokens
        self.ctx_len = self.cache.ctx_len
        self.W = min(self.cfg.window_len, self.ctx_len)
        self.strings = TokenStrings(tokenizer)
        self.decoder = decoder
        self.pool: WindowPool | None = None
        self.stats = self.cache.stats()
        self.active = self.cfg.threshold_for(job.hookpoint)
        self.thresholds = np.full(self.cache.num_latents, np.nan, dtype=np.float32)  # filled as shards are read
        self._neighbours: dict[int, np.ndarray] = {}  # of the latents being sampled
        self._window_embeddings: dict[tuple[int, int], np.ndarray] = {}  # (context, start) -> embedding
        # every corpus token's string, and whether its bytes are whole UTF-8 (see window_strings)
        present = np.unique(self.tokens[self.tokens >= 0]) if self.tokens.size else np.zeros(0, dtype=np.int64)
        size = int(present.max()) + 1 if len(present) else 1
        self._string_of = np.full(size, "", dtype=object)
        self._whole = np.zeros(size, dtype=bool)
        for t in present.tolist():
            try:
                self._string_of[t] = self.strings.token_bytes(t).decode("utf-8")
                self._whole[t] = True
            except UnicodeDecodeError:
                pass

    def load_shard(self, s: int) -> ShardActivations:
        """Cache shard ``s`` with only its active entries (see :mod:`.active`)."""
        sh = self.cache.load_shard(s)
        if self.active.trivial:
            self.thresholds[sh.start : sh.end] = 0.0
            return sh
        thr = shard_thresholds(sh, self.active, self.cache.n_tokens)
        self.thresholds[sh.start : sh.end] = thr
        return keep_active(sh, thr)

    def build_pool(self, needed_shards: set[int]) -> None:
        """Pass over the shards (all of them when neighbours are needed) to fill the pool."""
        neg = self.cfg.negatives
        self.pool = WindowPool(self.cache.n_contexts, self.ctx_len, self.W, neg.pool_windows, self.cfg.seed)
        n = self.cache.num_latents
        shards = range(len(self.cache.shard_ranges)) if neg.uses_neighbours else sorted(needed_shards)
        for s in shards:
            self.pool.add_shard(self.load_shard(s), n)
        if not neg.uses_neighbours:  # only the shards with sampled latents were read: pad the others
            done = dict(zip(sorted(needed_shards), self.pool._parts))
            self.pool._parts = [
                done.get(s, sp.csc_matrix((len(self.pool), b - a), dtype=np.float32))
                for s, (a, b) in enumerate(self.cache.shard_ranges)
            ]
        self.pool.finish()
        if neg.uses_embeddings:
            from ..embeddings import embed

            k = min(neg.embedding_pool, len(self.pool))
            texts = [self.text(c, s) for c, s in zip(self.pool.context[:k], self.pool.start[:k])]
            self.pool.embeddings = embed(
                texts, neg.embedding_model, progress=self.job.progress, dtype=neg.embedding_dtype
            )
            # pool windows are grid windows: the queries (``grid``) reuse their embeddings
            keys = zip(self.pool.context[:k].tolist(), self.pool.start[:k].tolist())
            self._window_embeddings.update(zip(keys, self.pool.embeddings))

    def text(self, ctx: int, start: int) -> str:
        return "".join(self.strings.window(self.tokens[ctx, start : start + self.W]))

    def neighbours(self, latent: int) -> np.ndarray:
        got = self._neighbours.get(latent)
        if got is not None:
            return got
        n = self.cfg.negatives.n_neighbours
        if self.cfg.negatives.neighbour_source == "decoder" and self.decoder is not None:
            return self._decoder_neighbours([latent])[latent]
        self._neighbours[latent] = out = self.pool.cooccurring(latent, n)
        return out

    def _decoder_neighbours(self, latents: list[int]) -> dict[int, np.ndarray]:
        """The ``n_neighbours`` latents with the most similar decoder directions, for a group
        of latents at once (one matrix product)."""
        n = self.cfg.negatives.n_neighbours
        lat = np.asarray(latents, dtype=np.int64)
        sims = self.decoder[lat] @ self.decoder.T
        sims[np.arange(len(lat)), lat] = -np.inf
        m = min(n, sims.shape[1] - 1)
        top = np.argpartition(-sims, m, axis=1)[:, :n]
        out = {}
        for i, latent in enumerate(latents):
            t = top[i]
            out[latent] = t[np.argsort(-sims[i, t], kind="stable")]
        self._neighbours.update(out)
        return out

    # one latent ---------------------------------------------------------------
    def sample_latents(self, items: list[tuple[int, np.ndarray, np.ndarray]]) -> list[tuple[dict | None, dict]]:
        """Sample latents given as (latent, firing tokens, values); the embedding queries of all
        of them are embedded in one batch, their decoder neighbours found in one product. Each
        result is (the latent's example columns or None, its latents-table info). A latent that
        fails is reported, never raised."""
        self._neighbours = {}
        plans = [_guard(latent, self._plan, latent, toks, vals) for latent, toks, vals in items]
        planned = [p[0] for p in plans if not isinstance(p[1], dict)]
        if (
            planned
            and self.cfg.negatives.uses_neighbours
            and self.decoder is not None
            and self.cfg.negatives.neighbour_source == "decoder"
        ):
            self._decoder_neighbours(planned)
        queries = self._queries(plans)
        return [
            (None, p[1]) if isinstance(p[1], dict) and "status" in p[1] else _guard(p[0], self._finish, p, q)
            for p, q in zip(plans, queries)
        ]

    def _plan(self, latent: int, toks: np.ndarray, vals: np.ndarray):
        cfg = self.cfg
        info = {"n_windows": 0, "note": "", "active_threshold": float(self.thresholds[latent]), "n_active": len(toks)}
        win = activating_windows(toks, vals, self.ctx_len, cfg)
        info["n_windows"] = len(win)
        if len(win) < cfg.selection.min_activating:
            return [], dict(
                info, status=rare_reason(len(win), cfg.selection.min_activating, "non-overlapping activating windows")
            )
        min_test, min_train = min(cfg.min_test, cfg.n_test), min(cfg.min_train, cfg.n_train)  # (configs built in code)
        if len(win) < min_test + min_train:
            return [], dict(
                info,
                status=TOO_FEW_FOR_TEST,
                note=f"{len(win)} non-overlapping activating windows < sample.min_test {min_test} + "
                f"sample.min_train {min_train}: no activating test set beside a training set",
            )
        rng = np.random.default_rng([cfg.seed, latent])
        train, test = split_train_test(win, cfg, rng)
        return latent, (toks, vals, win, train, test, rng, info)

    def _queries(self, plans) -> list[np.ndarray | None]:
        """Mean sentence embedding of each planned latent's training examples (embedding
        negatives), each example embedded as its grid window (the one holding its marked token,
        ``negatives.embedding_query: grid``) or as the window itself (``windows``). A window is
        embedded once: latents share windows (grid ones all the more), so the embeddings of recent
        windows are kept (at most ``QUERY_CACHE`` of them: memory stays flat)."""
        out: list[np.ndarray | None] = [None] * len(plans)
        if not self.cfg.negatives.uses_embeddings:
            return out
        grid = self.cfg.negatives.embedding_query == "grid"
        keys: dict[int, list[tuple[int, int]]] = {}
        for i, (_, p) in enumerate(plans):
            if isinstance(p, dict):
                continue
            _, _, win, train, _, _, _ = p
            start = win.start[train]
            if grid:  # as the pool's grid (and activating_windows with centre: false) cut them
                start = np.minimum((start + win.marked[train]) // self.W * self.W, self.ctx_len - self.W)
            keys[i] = list(zip(win.context[train].tolist(), start.tolist()))
        todo = list(dict.fromkeys(k for ks in keys.values() for k in ks if k not in self._window_embeddings))
        if todo:
            from ..embeddings import embed

            neg = self.cfg.negatives
            emb = embed([self.text(c, s) for c, s in todo], neg.embedding_model, dtype=neg.embedding_dtype)
            self._window_embeddings.update(zip(todo, emb))
        for i, ks in keys.items():
            if ks:
                q = np.mean([self._window_embeddings[k] for k in ks], axis=0)
                out[i] = q / max(float(np.linalg.norm(q)), 1e-12)
        while len(self._window_embeddings) > QUERY_CACHE:  # oldest first (dicts keep insertion order)
            del self._window_embeddings[next(iter(self._window_embeddings))]
        return out

    def _finish(self, plan, query) -> tuple[list[dict], dict]:
        cfg, neg = self.cfg, self.cfg.negatives
        latent, (toks, vals, win, train, test, rng, info) = plan
        info = dict(info, n_train=len(train), n_test=len(test))
        notes = []
        if len(train) < cfg.n_train or len(test) < cfg.n_test:
            notes.append(
                f"only {len(win)} activating windows: {len(train)}/{cfg.n_train} train, {len(test)}/{cfg.n_test} test"
            )
        used = np.concatenate([train, test])
        # pool windows without an active token of the latent and sharing no token with one of its
        # examples (pool windows are disjoint grid windows: ``tok2pool`` names the one of a token)
        free = np.ones(len(self.pool), dtype=bool)
        free[self.pool.fires(latent)] = False
        touched = self.pool.tok2pool[self._positions(win.context[used] * self.ctx_len + win.start[used]).ravel()]
        free[touched[touched >= 0]] = False
        negs = {}
        for split, counts in (("test", neg), ("train", neg.train)):  # test first: the scorers' set has priority
            for kind in NEGATIVE_KINDS:
                want = getattr(counts, kind)
                if want:
                    rows = draw_negatives(self.pool, free, kind, want, latent, self.neighbours, query, rng)
                    free[rows] = False
                    negs[split, kind] = rows
                    if len(rows) < want:
                        notes.append(f"{len(rows)}/{want} {kind} non-activating {split} windows")
        n_neg = sum(len(r) for (split, _), r in negs.items() if split == "test")
        info.update({f"n_{kind}": len(negs.get(("test", kind), ())) for kind in NEGATIVE_KINDS})
        info["n_train_non_activating"] = sum(len(r) for (split, _), r in negs.items() if split == "train")
        info["note"] = "; ".join(notes)
        if n_neg < neg.min_non_activating:
            return None, dict(
                info,
                status=f"too few non-activating windows: {n_neg} < min_non_activating "
                f"{neg.min_non_activating} (the latent fires nearly everywhere)",
            )
        parts = [
            (split, "activating", win.quantile[idx], win.context[idx], win.start[idx], win.marked[idx])
            for split, idx in (("train", train), ("test", test))
        ]
        parts += [
            (split, kind, np.full(len(r), -1), self.pool.context[r], self.pool.start[r], np.full(len(r), -1))
            for (split, kind), r in negs.items()
        ]
        ctx = np.concatenate([p[3] for p in parts]).astype(np.int64)
        start = np.concatenate([p[4] for p in parts]).astype(np.int64)
        block = {
            "latent": np.full(len(ctx), latent, dtype=np.int64),
            "split": np.concatenate([np.full(len(p[3]), p[0], dtype=object) for p in parts]),
            "kind": np.concatenate([np.full(len(p[3]), p[1], dtype=object) for p in parts]),
            "quantile": np.concatenate([p[2] for p in parts]).astype(np.int64),
            "context": ctx,
            "start": start,
            "marked": np.concatenate([p[5] for p in parts]).astype(np.int64),
            "activations": self._window_activations(ctx * self.ctx_len + start, toks, vals),
        }
        return block, dict(info, status=OK)

    def _positions(self, lo: np.ndarray) -> np.ndarray:
        """Flat token positions [windows, W] of windows starting at flat positions ``lo``."""
        return np.asarray(lo, dtype=np.int64)[:, None] + np.arange(self.W)

    def _window_activations(self, lo: np.ndarray, toks: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """The latent's activation at every token of each window [windows, W] (0 where inactive)."""
        pos = self._positions(lo)
        if len(toks) == 0:
            return np.zeros(pos.shape, dtype=np.float32)
        i = np.minimum(np.searchsorted(toks, pos), len(toks) - 1)
        return np.where(toks[i] == pos, vals[i], 0.0).astype(np.float32)

    def window_strings(self, ids: np.ndarray) -> np.ndarray:
        """Token strings [windows, W] (object array) of token-id windows: looked up per token id
        when every token of the window is whole UTF-8 (nearly always), else decoded window by
        window (:meth:`TokenStrings.window`: split characters go to the token that completes them)."""
        whole = (ids >= 0) & (ids < len(self._whole))
        whole[whole] = self._whole[ids[whole]]
        out = self._string_of[np.clip(ids, 0, len(self._string_of) - 1)]
        for i in np.flatnonzero(~whole.all(1)):
            out[i] = self.strings.window(ids[i])
        return out

    def table(self, blocks: list[dict]) -> pa.Table:
        """The example rows of several latents (their :meth:`_finish` columns) as one table."""
        cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
        n, W = len(cols["latent"]), self.W
        ids = self.tokens[cols["context"][:, None], cols["start"][:, None] + np.arange(W)].astype(np.int64)
        acts = cols["activations"]
        offsets = pa.array(np.arange(0, n * W + 1, W, dtype=np.int32))

        def lists(values, kind):
            return pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), type=kind))

        h = self.job.hookpoint
        ids_of = [
            f"{h}/{lat}/{c}:{s}"
            for lat, c, s in zip(cols["latent"].tolist(), cols["context"].tolist(), cols["start"].tolist())
        ]
        arrays = [
            pa.array(np.full(n, h, dtype=object), pa.string()),
            pa.array(cols["latent"]),
            pa.array(cols["split"], pa.string()),
            pa.array(cols["kind"], pa.string()),
            pa.array(cols["quantile"]),
            pa.array(cols["context"]),
            pa.array(cols["start"]),
            lists(ids, pa.int64()),
            lists(self.window_strings(ids), pa.string()),
            lists(acts, pa.float32()),
            pa.array(acts.max(1) if W else np.zeros(n, np.float32), pa.float32()),
            pa.array(cols["marked"]),
            pa.array(ids_of, pa.string()),
        ]
        return pa.Table.from_arrays(arrays, schema=EXAMPLE_SCHEMA)

    def latent_row(self, latent: int, status: str, info: dict | None = None) -> dict:
        return latent_row(self.job.hookpoint, self.stats, self.cache.num_latents, latent, status, info)


def latent_row(
    hookpoint: str, stats: dict, num_latents: int, latent: int, status: str, info: dict | None = None
) -> dict:
    """One row of the latents table."""
    known = 0 <= latent < num_latents

    def stat(k, cast):
        return cast(stats[k][latent]) if known else cast("nan")

    row = {
        "hookpoint": hookpoint,
        "latent": latent,
        "firing_count": int(stats["firing_count"][latent]) if known else -1,
        "frequency": stat("frequency", float),
        "max_activation": stat("max_activation", float),
        "mean_activation": stat("mean_activation", float),
        "status": status,
        "n_windows": 0,
        "n_train": 0,
        "n_test": 0,
        **{f"n_{k}": 0 for k in NEGATIVE_KINDS},
        "n_train_non_activating": 0,
        "active_threshold": float("nan"),
        "n_active": -1,
        "note": "",
    }
    row.update({k: v for k, v in (info or {}).items() if k != "status"})
    return row


def _guard(latent: int, func, *args):
    """``func(*args)``; a failure becomes the latent's status (one odd latent never aborts a run)."""
    try:
        return func(*args)
    except AutointerpError:
        raise
    except Exception as e:  # noqa: BLE001
        log.warning("latent %d failed: %s: %s", latent, type(e).__name__, e)
        return None, {"status": f"failed: {type(e).__name__}: {e}"}
