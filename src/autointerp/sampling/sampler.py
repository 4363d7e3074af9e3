"""Per-hookpoint sampling state and the sampling of one latent (windows, split, negatives, rows)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..errors import AutointerpError
from ..examples import TokenStrings
from ..latent_cache import ShardActivations
from .active import keep_active, shard_thresholds
from .config import NEGATIVE_KINDS, OK, TOO_FEW_FOR_TEST
from .pool import WindowPool, draw_negatives
from .selection import rare_reason
from .windows import activating_windows, overlaps, split_train_test

if TYPE_CHECKING:
    from .job import SampleJob

log = logging.getLogger(__name__)

LATENT_COLUMNS = ["hookpoint", "latent", "firing_count", "frequency", "max_activation", "mean_activation", "status",
                  "n_windows", "n_train", "n_test"] + [f"n_{k}" for k in NEGATIVE_KINDS] + [
                  "n_train_non_activating", "active_threshold", "n_active", "note"]


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

    def load_shard(self, s: int) -> ShardActivations:
        """Cache shard ``s`` with only its active entries (see :mod:`.active`)."""
        sh = self.cache.load_shard(s)
        if self.active.trivial:
            self.thresholds[sh.start:sh.end] = 0.0
            return sh
        thr = shard_thresholds(sh, self.active, self.cache.n_tokens)
        self.thresholds[sh.start:sh.end] = thr
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
            self.pool._parts = [done.get(s, sp.csc_matrix((len(self.pool), b - a), dtype=np.float32))
                                for s, (a, b) in enumerate(self.cache.shard_ranges)]
        self.pool.finish()
        if neg.uses_embeddings:
            from ..embeddings import embed

            k = min(neg.embedding_pool, len(self.pool))
            texts = [self.text(c, s) for c, s in zip(self.pool.context[:k], self.pool.start[:k])]
            self.pool.embeddings = embed(texts, neg.embedding_model, progress=self.job.progress)

    def text(self, ctx: int, start: int) -> str:
        return "".join(self.strings.window(self.tokens[ctx, start:start + self.W]))

    def neighbours(self, latent: int) -> np.ndarray:
        n = self.cfg.negatives.n_neighbours
        if self.cfg.negatives.neighbour_source == "decoder" and self.decoder is not None:
            sims = self.decoder @ self.decoder[latent]
            sims[latent] = -np.inf
            top = np.argpartition(-sims, min(n, len(sims) - 1))[:n]
            return top[np.argsort(-sims[top], kind="stable")]
        return self.pool.cooccurring(latent, n)

    # one latent ---------------------------------------------------------------
    def sample_latents(self, items: list[tuple[int, np.ndarray, np.ndarray]]) -> list[tuple[list[dict], dict]]:
        """Sample latents given as (latent, firing tokens, values); the embedding queries of all
        of them are embedded in one batch. A latent that fails is reported, never raised."""
        plans = [_guard(latent, self._plan, latent, toks, vals) for latent, toks, vals in items]
        queries = self._queries(plans)
        return [p if isinstance(p[1], dict) and "status" in p[1] else _guard(p[0], self._finish, p, q)
                for p, q in zip(plans, queries)]

    def _plan(self, latent: int, toks: np.ndarray, vals: np.ndarray):
        cfg = self.cfg
        info = {"n_windows": 0, "note": "", "active_threshold": float(self.thresholds[latent]), "n_active": len(toks)}
        win = activating_windows(toks, vals, self.ctx_len, cfg)
        info["n_windows"] = len(win)
        if len(win) < cfg.selection.min_activating:
            return [], dict(info, status=rare_reason(len(win), cfg.selection.min_activating, "non-overlapping activating windows"))
        min_test, min_train = min(cfg.min_test, cfg.n_test), min(cfg.min_train, cfg.n_train)  # (configs built in code)
        if len(win) < min_test + min_train:
            return [], dict(info, status=TOO_FEW_FOR_TEST,
                            note=f"{len(win)} non-overlapping activating windows < sample.min_test {min_test} + "
                                 f"sample.min_train {min_train}: no activating test set beside a training set")
        rng = np.random.default_rng([cfg.seed, latent])
        train, test = split_train_test(win, cfg, rng)
        return latent, (toks, vals, win, train, test, rng, info)

    def _queries(self, plans) -> list[np.ndarray | None]:
        """Mean sentence embedding of each planned latent's training windows (embedding negatives)."""
        out: list[np.ndarray | None] = [None] * len(plans)
        if not self.cfg.negatives.uses_embeddings:
            return out
        texts, owner = [], []
        for i, (_, p) in enumerate(plans):
            if isinstance(p, dict):
                continue
            _, _, win, train, _, _, _ = p
            for j in train:
                texts.append(self.text(int(win.context[j]), int(win.start[j])))
                owner.append(i)
        if not texts:
            return out
        from ..embeddings import embed

        emb = embed(texts, self.cfg.negatives.embedding_model)
        owner = np.asarray(owner)
        for i in np.unique(owner):
            q = emb[owner == i].mean(0)
            out[int(i)] = q / max(float(np.linalg.norm(q)), 1e-12)
        return out

    def _finish(self, plan, query) -> tuple[list[dict], dict]:
        cfg, neg = self.cfg, self.cfg.negatives
        latent, (toks, vals, win, train, test, rng, info) = plan
        info = dict(info, n_train=len(train), n_test=len(test))
        notes = []
        if len(train) < cfg.n_train or len(test) < cfg.n_test:
            notes.append(f"only {len(win)} activating windows: {len(train)}/{cfg.n_train} train, {len(test)}/{cfg.n_test} test")
        used = np.concatenate([train, test])
        free = np.ones(len(self.pool), dtype=bool)  # pool windows without an active token, not overlapping an example
        free[self.pool.fires(latent)] = False
        free &= ~overlaps(self.pool.context, self.pool.start, win.context[used], win.start[used], self.W)
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
            return [], dict(info, status=f"too few non-activating windows: {n_neg} < min_non_activating "
                                         f"{neg.min_non_activating} (the latent fires nearly everywhere)")
        rows = []
        for split, idx in (("train", train), ("test", test)):
            for i in idx:
                rows.append(self.row(latent, split, "activating", int(win.quantile[i]), int(win.context[i]),
                                     int(win.start[i]), int(win.marked[i]), toks, vals))
        for (split, kind), r in negs.items():
            for ci, si in zip(self.pool.context[r].tolist(), self.pool.start[r].tolist()):
                rows.append(self.row(latent, split, kind, -1, ci, si, -1, toks, vals))
        return rows, dict(info, status=OK)

    def row(self, latent, split, kind, quantile, ctx, start, marked, toks, vals) -> dict:
        W = self.W
        ids = self.tokens[ctx, start:start + W].astype(np.int64)
        lo = ctx * self.ctx_len + start
        a, b = np.searchsorted(toks, [lo, lo + W])
        acts = np.zeros(W, dtype=np.float32)
        acts[toks[a:b] - lo] = vals[a:b]
        return {"hookpoint": self.job.hookpoint, "latent": latent, "split": split, "kind": kind,
                "quantile": quantile, "context": ctx, "start": start, "token_ids": ids.tolist(),
                "tokens": self.strings.window(ids), "activations": acts.tolist(),
                "max_activation": float(acts.max()) if W else 0.0, "marked": marked,
                "example_id": f"{self.job.hookpoint}/{latent}/{ctx}:{start}"}

    def latent_row(self, latent: int, status: str, info: dict | None = None) -> dict:
        return latent_row(self.job.hookpoint, self.stats, self.cache.num_latents, latent, status, info)


def latent_row(hookpoint: str, stats: dict, num_latents: int, latent: int, status: str, info: dict | None = None) -> dict:
    """One row of the latents table."""
    known = 0 <= latent < num_latents

    def stat(k, cast):
        return cast(stats[k][latent]) if known else cast("nan")

    row = {"hookpoint": hookpoint, "latent": latent,
           "firing_count": int(stats["firing_count"][latent]) if known else -1,
           "frequency": stat("frequency", float), "max_activation": stat("max_activation", float),
           "mean_activation": stat("mean_activation", float), "status": status,
           "n_windows": 0, "n_train": 0, "n_test": 0, **{f"n_{k}": 0 for k in NEGATIVE_KINDS},
           "n_train_non_activating": 0, "active_threshold": float("nan"), "n_active": -1, "note": ""}
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
        return [], {"status": f"failed: {type(e).__name__}: {e}"}
