"""Activating and non-activating example windows per latent, with disjoint train and test sets.

Per hookpoint, :class:`SampleJob` streams the latent cache shard by shard (memory does not
grow with the number of latents sampled) and writes, into one folder::

    meta.json                         # fingerprint; complete: true once everything is written
    examples/latents_000000_000255.parquet   # one file per cache shard that holds sampled latents
    status/latents_000000_000255.parquet     # the latents table rows of that shard
    latents.parquet                   # one row per latent considered, with its status

A killed run resumes: finished partitions are kept when the fingerprint matches.

Windows
    ``window_len`` tokens inside one context (never across a context boundary). Centred
    (default): the window holding an activating token starts ``marked_position`` tokens before
    it (default ``window_len * 3 // 4``: 24 tokens of context before the token, 7 after, since the
    subject model reads left to right), clipped into its context; ``marked`` records where the
    token ended up. Not centred: fixed grid windows, marked at their strongest token.
    Activating windows of a latent are chosen greedily by decreasing activation and never
    overlap, so any two examples of a latent (train or test, any kind) share no token.
Quantiles
    Activating windows are binned by the activation of their marked token into
    ``n_quantiles`` bins of equal size by rank (``n_quantiles - 1`` the strongest).
Non-activating windows
    Drawn without replacement from a seeded pool of grid windows: ``random`` (zero activation
    for the latent), ``neighbour`` (a latent with the most similar decoder direction, or the
    most co-occurring latent when the dictionary has no decoder, fires there; this one does
    not), ``embedding`` (zero-activation windows closest in sentence embedding to the latent's
    training windows). None overlaps an activating window of the latent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from tqdm.auto import tqdm

from .caching import file_digest, tokens_digest
from .config import as_dict
from .dictionaries import DictionaryConfig
from .errors import AutointerpError, ConfigError
from .examples import EXAMPLE_SCHEMA, TokenStrings, read_examples
from .latent_cache import LatentCache, ShardActivations
from .models import ModelConfig

log = logging.getLogger(__name__)

SELECTION_MODES = ("all", "first", "random", "per_band", "list")
TRAIN_MODES = ("quantiles", "top", "random")
NEIGHBOUR_SOURCES = ("decoder", "cooccurrence")
NEGATIVE_KINDS = ("neighbour", "embedding", "random")  # the order in which they are drawn
OK = "ok"
LATENT_GROUP = 16  # latents sampled together (their embedding queries form one batch)


@dataclass(frozen=True)
class SelectionConfig:
    """Which latents to sample. ``mode``: all | first (the first ``n``) | random (a seeded
    random ``n``) | per_band (``n`` per firing-frequency band, edges in ``bands``) | list
    (``latents``). Latents with fewer than ``min_activating`` activating windows are skipped
    as too rare; with ``eligible_only`` the first/random/per_band draws pick among latents that
    fire at least ``min_activating`` times (the others are still listed, with their reason)."""

    mode: str = "random"
    n: int = 32
    latents: list[int] | None = None
    bands: list[float] = field(default_factory=lambda: [0.0, 1e-4, 1e-3, 1e-2, 1.0])
    min_activating: int = 10
    eligible_only: bool = True

    def validate(self, where: str) -> None:
        if self.mode not in SELECTION_MODES:
            raise ConfigError(f"{where}.mode: unknown mode '{self.mode}'. Use one of {', '.join(SELECTION_MODES)}.")
        if self.mode == "list" and not self.latents:
            raise ConfigError(f"{where}.latents: mode 'list' needs a list of latent indices.")
        if self.n < 0 or self.min_activating < 1:
            raise ConfigError(f"{where}: n must be >= 0 and min_activating >= 1.")
        if len(self.bands) < 2 or any(b <= a for a, b in zip(self.bands, self.bands[1:])):
            raise ConfigError(f"{where}.bands: give at least two increasing frequency edges, e.g. [0, 1e-4, 1e-3, 1e-2, 1].")


@dataclass(frozen=True)
class NegativesConfig:
    """How many non-activating test windows of each kind, and where they come from."""

    random: int = 50
    neighbour: int = 0
    embedding: int = 0
    neighbour_source: str = "decoder"  # falls back to cooccurrence for neurons (no decoder)
    n_neighbours: int = 10
    embedding_model: str | None = None  # None: the packaged all-MiniLM-L6-v2
    pool_windows: int = 4096  # candidate windows per hookpoint (seeded sample of grid windows)
    embedding_pool: int = 1024  # of which this many are embedded for embedding negatives
    min_non_activating: int = 1  # fewer found: the latent is skipped (fires nearly everywhere)

    def validate(self, where: str) -> None:
        if min(self.random, self.neighbour, self.embedding) < 0:
            raise ConfigError(f"{where}: counts of non-activating windows must be >= 0.")
        if self.neighbour_source not in NEIGHBOUR_SOURCES:
            raise ConfigError(f"{where}.neighbour_source: use one of {', '.join(NEIGHBOUR_SOURCES)}.")
        if self.pool_windows < 1 or self.embedding_pool < 0 or self.n_neighbours < 1 or self.min_non_activating < 0:
            raise ConfigError(f"{where}: pool_windows and n_neighbours must be >= 1, embedding_pool and min_non_activating >= 0.")

    @property
    def total(self) -> int:
        return self.random + self.neighbour + self.embedding


@dataclass(frozen=True)
class SampleConfig:
    """Paper defaults: 32-token windows, 10 quantiles, 40 train, 50 test, 50 non-activating."""

    window_len: int = 32
    centre: bool = True
    marked_position: int | None = None  # None: window_len * 3 // 4
    n_quantiles: int = 10
    n_train: int = 40
    train_mode: str = "quantiles"  # quantiles (spread over the bins) | top | random
    n_test: int = 50  # spread evenly over the quantile bins
    seed: int = 0
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)

    def validate(self, where: str) -> None:
        if self.window_len < 1 or self.n_quantiles < 1 or self.n_train < 0 or self.n_test < 0:
            raise ConfigError(f"{where}: window_len and n_quantiles must be >= 1, n_train and n_test >= 0.")
        if self.marked_position is not None and not 0 <= self.marked_position < self.window_len:
            raise ConfigError(f"{where}.marked_position must be between 0 and window_len - 1 ({self.window_len - 1}).")
        if self.train_mode not in TRAIN_MODES:
            raise ConfigError(f"{where}.train_mode: unknown mode '{self.train_mode}'. Use one of {', '.join(TRAIN_MODES)}.")

    @property
    def marked(self) -> int:
        return self.window_len * 3 // 4 if self.marked_position is None else self.marked_position


# ---------------------------------------------------------------- latent selection


def select_latents(stats: dict[str, np.ndarray], num_latents: int, cfg: SelectionConfig, seed: int,
                   hookpoint: str = "") -> tuple[list[int], dict[int, str]]:
    """(latents to sample, {latent: reason} for latents considered but not sampled)."""
    count, freq = stats["firing_count"], stats["frequency"]
    if cfg.mode == "all":
        return list(range(num_latents)), {}
    if cfg.mode == "list":
        chosen, skipped = set(), {}
        for i in cfg.latents:
            if 0 <= int(i) < num_latents:
                chosen.add(int(i))
            else:
                log.warning("%s: latent %s is out of range (%d latents); skipped", hookpoint, i, num_latents)
                skipped[int(i)] = f"out of range: hookpoint {hookpoint} has {num_latents} latents (0..{num_latents - 1})"
        return sorted(chosen), skipped
    eligible = count >= cfg.min_activating
    pool = np.flatnonzero(eligible) if cfg.eligible_only else np.arange(num_latents)
    rng = np.random.default_rng([seed, 0x5E1EC7])
    if cfg.mode == "first":
        chosen = pool[:cfg.n]
    elif cfg.mode == "random":
        chosen = np.sort(rng.choice(pool, min(cfg.n, len(pool)), replace=False)) if len(pool) else pool
    else:  # per_band
        parts = []
        edges = list(cfg.bands)
        for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
            f = freq[pool]
            band = pool[(f >= lo) & ((f < hi) | ((b == len(edges) - 2) & (f <= hi)))]
            if len(band) < cfg.n:
                log.warning("%s: frequency band [%g, %g) has %d eligible latents, fewer than %d", hookpoint, lo, hi, len(band), cfg.n)
            parts.append(rng.choice(band, min(cfg.n, len(band)), replace=False) if len(band) else band)
        chosen = np.unique(np.concatenate(parts)).astype(np.int64)
    skipped = {}
    if cfg.eligible_only:  # rare latents left out of the draw are listed with their reason
        last = int(chosen[-1]) if cfg.mode == "first" and len(chosen) else num_latents
        skipped = {int(i): rare_reason(int(count[i]), cfg.min_activating)
                   for i in np.flatnonzero(~eligible) if cfg.mode != "first" or i < last}
    return [int(i) for i in chosen], skipped


def rare_reason(n: int, minimum: int, what: str = "firing tokens") -> str:
    if n == 0:
        return "dead: never fires"
    return f"too rare: {n} {what} < selection.min_activating {minimum}"


# ---------------------------------------------------------------- windows


@dataclass
class Windows:
    """Non-overlapping windows of one latent: context, start, marked position, marked value."""

    context: np.ndarray
    start: np.ndarray
    marked: np.ndarray
    value: np.ndarray
    quantile: np.ndarray

    def __len__(self) -> int:
        return len(self.context)


def activating_windows(tokens: np.ndarray, values: np.ndarray, ctx_len: int, cfg: SampleConfig) -> Windows:
    """Greedy by decreasing activation: each firing token proposes a window (centred or grid);
    a window overlapping one already taken is dropped. Then rank-based quantile bins."""
    W = min(cfg.window_len, ctx_len)
    ctx = tokens // ctx_len
    pos = tokens % ctx_len
    if cfg.centre:
        start = np.clip(pos - min(cfg.marked, W - 1), 0, ctx_len - W)
    else:
        start = np.minimum((pos // W) * W, ctx_len - W)
    order = np.lexsort((tokens, -values))
    taken: dict[int, list[int]] = {}
    keep = []
    for i in order:
        c, s = int(ctx[i]), int(start[i])
        lst = taken.setdefault(c, [])
        if any(abs(s - t) < W for t in lst):
            continue
        lst.append(s)
        keep.append(i)
    keep = np.asarray(keep, dtype=np.int64)
    val = values[keep]
    n = len(keep)
    quant = np.zeros(n, dtype=np.int64)
    if n:
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((tokens[keep], val))] = np.arange(n)
        quant = rank * cfg.n_quantiles // n
    return Windows(ctx[keep], start[keep], pos[keep] - start[keep], val, quant)


def spread_over_bins(bins: np.ndarray, n: int, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items drawn without replacement, as evenly over bins as they allow
    (remainders and shortfalls go to the strongest bins first)."""
    if n <= 0 or len(bins) == 0:
        return np.zeros(0, dtype=np.int64)
    members = [rng.permutation(np.flatnonzero(bins == b)) for b in range(n_bins)]
    quota = np.full(n_bins, n // n_bins)
    quota[n_bins - n % n_bins:] += 1 if n % n_bins else 0
    taken = [m[:q] for m, q in zip(members, quota)]
    short = n - sum(len(t) for t in taken)
    while short > 0:
        progressed = False
        for b in reversed(range(n_bins)):
            if short and len(taken[b]) < len(members[b]):
                taken[b] = members[b][:len(taken[b]) + 1]
                short -= 1
                progressed = True
        if not progressed:
            break
    return np.sort(np.concatenate(taken)).astype(np.int64)


def split_train_test(win: Windows, cfg: SampleConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and test windows (disjoint)."""
    n = len(win)
    if cfg.train_mode == "top":
        train = np.lexsort((np.arange(n), -win.value))[:cfg.n_train]
    elif cfg.train_mode == "random":
        train = rng.permutation(n)[:cfg.n_train]
    else:
        train = spread_over_bins(win.quantile, cfg.n_train, cfg.n_quantiles, rng)
    rest = np.setdiff1d(np.arange(n), train)
    test = rest[spread_over_bins(win.quantile[rest], cfg.n_test, cfg.n_quantiles, rng)]
    return np.sort(train), np.sort(test)


# ---------------------------------------------------------------- candidate pool of non-activating windows


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
        self._parts.append(sp.csc_matrix((vmax.astype(np.float32), (rows, cols - sh.start)),
                                         shape=(len(self), sh.end - sh.start)))

    def finish(self) -> None:
        self.acts = sp.hstack(self._parts, format="csc") if self._parts else sp.csc_matrix((len(self), 0))
        self._parts = []
        self._binary_rows = (self.acts > 0).astype(np.float32).tocsr()
        self.counts = np.asarray((self.acts > 0).sum(0)).ravel()

    def fires(self, latent: int) -> np.ndarray:
        """Pool rows where ``latent`` fires."""
        a = self.acts
        return a.indices[a.indptr[latent]:a.indptr[latent + 1]]

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


def overlaps(ctx: np.ndarray, start: np.ndarray, taken_ctx: np.ndarray, taken_start: np.ndarray, W: int) -> np.ndarray:
    """For each window (ctx, start), whether it overlaps any taken window."""
    out = np.zeros(len(ctx), dtype=bool)
    if len(taken_ctx) == 0 or len(ctx) == 0:
        return out
    by_ctx: dict[int, np.ndarray] = {}
    for c in np.unique(taken_ctx):
        by_ctx[int(c)] = np.sort(taken_start[taken_ctx == c])
    for i, (c, s) in enumerate(zip(ctx.tolist(), start.tolist())):
        t = by_ctx.get(c)
        if t is not None:
            j = np.searchsorted(t, s)
            if (j < len(t) and t[j] - s < W) or (j > 0 and s - t[j - 1] < W):
                out[i] = True
    return out


# ---------------------------------------------------------------- the job


@dataclass
class SampleJob:
    """Everything needed to sample one hookpoint; run by the catalog's dataset (resumable)."""

    hookpoint: str
    tokens: np.ndarray
    cache: LatentCache
    model: ModelConfig
    dictionary: DictionaryConfig
    config: SampleConfig
    progress: bool = True

    def fingerprint(self) -> str:
        blob = json.dumps({"hookpoint": self.hookpoint, "tokens": tokens_digest(self.tokens),
                           "cache": self.cache.meta.get("fingerprint"), "model": self.model.name_or_path,
                           "dictionary": as_dict(self.dictionary), "files": file_digest(self.dictionary.path)
                           if self.config.negatives.neighbour else "", "config": as_dict(self.config)},
                          sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def run(self, root: str | Path) -> dict:
        return sample_hookpoint(root, self)


def _read_meta(root: Path) -> dict | None:
    p = root / "meta.json"
    return json.loads(p.read_text()) if p.exists() else None


def _write_meta(root: Path, meta: dict) -> None:
    tmp = root / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(root / "meta.json")


def _decoder_directions(job: SampleJob, model) -> np.ndarray | None:
    from .dictionaries import load_dictionary

    d = load_dictionary(job.dictionary, job.hookpoint, model)
    W = getattr(d, "W_dec", None)
    if W is None:
        return None
    W = W.detach().float().numpy()
    return W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)


class _Sampler:
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

    def build_pool(self, needed_shards: set[int]) -> None:
        """Pass over the shards (all of them when neighbours are needed) to fill the pool."""
        neg = self.cfg.negatives
        self._needed_shards = needed_shards
        self.pool = WindowPool(self.cache.n_contexts, self.ctx_len, self.W, neg.pool_windows, self.cfg.seed)
        n = self.cache.num_latents
        shards = (self.cache.iter_shards() if neg.neighbour
                  else (self.cache.load_shard(s) for s in sorted(self._needed_shards)))
        for sh in shards:
            self.pool.add_shard(sh, n)
        if not neg.neighbour:  # only the shards with sampled latents were read: pad the others
            parts, done = [], {}
            for p, s in zip(self.pool._parts, sorted(self._needed_shards)):
                done[s] = p
            for s, (a, b) in enumerate(self.cache.shard_ranges):
                parts.append(done.get(s, sp.csc_matrix((len(self.pool), b - a), dtype=np.float32)))
            self.pool._parts = parts
        self.pool.finish()
        if neg.embedding:
            from .embeddings import embed

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
        info = {"n_windows": 0, "note": ""}
        win = activating_windows(toks, vals, self.ctx_len, cfg)
        info["n_windows"] = len(win)
        if len(win) < cfg.selection.min_activating:
            return [], dict(info, status=rare_reason(len(win), cfg.selection.min_activating, "non-overlapping activating windows"))
        rng = np.random.default_rng([cfg.seed, latent])
        train, test = split_train_test(win, cfg, rng)
        return latent, (toks, vals, win, train, test, rng, info)

    def _queries(self, plans) -> list[np.ndarray | None]:
        """Mean sentence embedding of each planned latent's training windows (embedding negatives)."""
        out: list[np.ndarray | None] = [None] * len(plans)
        if not self.cfg.negatives.embedding:
            return out
        texts, owner = [], []
        for i, (latent, p) in enumerate(plans):
            if isinstance(p, dict):
                continue
            _, _, win, train, _, _, _ = p
            for j in train:
                texts.append(self.text(int(win.context[j]), int(win.start[j])))
                owner.append(i)
        if not texts:
            return out
        from .embeddings import embed

        emb = embed(texts, self.cfg.negatives.embedding_model)
        owner = np.asarray(owner)
        for i in np.unique(owner):
            q = emb[owner == i].mean(0)
            out[int(i)] = q / max(float(np.linalg.norm(q)), 1e-12)
        return out

    def _finish(self, plan, query) -> tuple[list[dict], dict]:
        cfg = self.cfg
        latent, (toks, vals, win, train, test, rng, info) = plan
        info = dict(info, n_train=len(train), n_test=len(test))
        notes = []
        if len(train) < cfg.n_train or len(test) < cfg.n_test:
            notes.append(f"only {len(win)} activating windows: {len(train)}/{cfg.n_train} train, {len(test)}/{cfg.n_test} test")
        used = np.concatenate([train, test])
        negs = self.negatives(latent, win.context[used], win.start[used], query, rng)
        n_neg = sum(len(v[0]) for v in negs.values())
        for kind, (c, _) in negs.items():
            info[f"n_{kind}"] = len(c)
            want = getattr(cfg.negatives, kind)
            if len(c) < want:
                notes.append(f"{len(c)}/{want} {kind} non-activating windows")
        info["note"] = "; ".join(notes)
        if n_neg < cfg.negatives.min_non_activating:
            return [], dict(info, status=f"too few non-activating windows: {n_neg} < min_non_activating "
                                         f"{cfg.negatives.min_non_activating} (the latent fires nearly everywhere)")
        rows = []
        for split, idx in (("train", train), ("test", test)):
            for i in idx:
                rows.append(self.row(latent, split, "activating", int(win.quantile[i]), int(win.context[i]),
                                     int(win.start[i]), int(win.marked[i]), toks, vals))
        for kind, (c, s) in negs.items():
            for ci, si in zip(c.tolist(), s.tolist()):
                rows.append(self.row(latent, "test", kind, -1, ci, si, -1, toks, vals))
        return rows, dict(info, status=OK)

    def negatives(self, latent, act_ctx, act_start, query, rng) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        neg, pool = self.cfg.negatives, self.pool
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if neg.total == 0:
            return out
        free = np.ones(len(pool), dtype=bool)
        free[pool.fires(latent)] = False
        free &= ~overlaps(pool.context, pool.start, act_ctx, act_start, self.W)

        def take(kind, rows):
            rows = np.asarray(rows, dtype=np.int64)
            free[rows] = False
            out[kind] = (pool.context[rows], pool.start[rows])

        for kind in NEGATIVE_KINDS:
            want = getattr(neg, kind)
            if not want:
                continue
            if kind == "random":
                cand = np.flatnonzero(free)
                take(kind, np.sort(rng.permutation(cand)[:want]))
            elif kind == "neighbour":
                lists = []
                for j in self.neighbours(latent):
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
                take(kind, chosen)
            else:  # embedding
                emb = pool.embeddings
                k = 0 if emb is None else len(emb)
                cand = np.flatnonzero(free[:k])
                if len(cand) == 0 or query is None:
                    take(kind, [])
                    continue
                sims = emb[cand] @ query
                take(kind, cand[np.lexsort((cand, -sims))][:want])
        return out

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
    stat = (lambda k, cast: cast(stats[k][latent]) if known else cast("nan"))
    row = {"hookpoint": hookpoint, "latent": latent,
           "firing_count": int(stats["firing_count"][latent]) if known else -1,
           "frequency": stat("frequency", float), "max_activation": stat("max_activation", float),
           "mean_activation": stat("mean_activation", float), "status": status,
           "n_windows": 0, "n_train": 0, "n_test": 0, **{f"n_{k}": 0 for k in NEGATIVE_KINDS}, "note": ""}
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


LATENT_COLUMNS = ["hookpoint", "latent", "firing_count", "frequency", "max_activation", "mean_activation", "status",
                  "n_windows", "n_train", "n_test"] + [f"n_{k}" for k in NEGATIVE_KINDS] + ["note"]


def _part_name(start: int, end: int) -> str:
    return f"latents_{start:06d}_{end - 1:06d}.parquet"


def sample_hookpoint(root: str | Path, job: SampleJob) -> dict:
    """Sample every selected latent of one hookpoint into ``root`` (see module docstring)."""
    root = Path(root)
    cfg, cache = job.config, job.cache
    if cfg.window_len > cache.ctx_len:
        raise ConfigError(f"parameters: sample.window_len ({cfg.window_len}) is longer than the cached contexts "
                          f"({cache.ctx_len} tokens). Lower sample.window_len or raise corpus.ctx_len.")
    if job.tokens.shape != (cache.n_contexts, cache.ctx_len):
        raise AutointerpError(f"corpus_tokens has shape {job.tokens.shape} but the latent cache of {job.hookpoint} was "
                              f"built on {cache.n_contexts} x {cache.ctx_len} tokens. Rebuild it: `kedro run --pipelines cache`.")
    fp = job.fingerprint()
    old = _read_meta(root)
    if old is not None and old.get("fingerprint") == fp and old.get("complete"):
        log.info("examples %s are complete and up to date", root)
        return old
    if old is not None and old.get("fingerprint") != fp:
        shutil.rmtree(root)
    for d in ("examples", "status"):
        (root / d).mkdir(parents=True, exist_ok=True)
        for tmp in (root / d).glob("*.tmp"):
            tmp.unlink()
    _write_meta(root, {"hookpoint": job.hookpoint, "fingerprint": fp, "complete": False})

    stats = cache.stats()
    selected, skipped = select_latents(stats, cache.num_latents, cfg.selection, cfg.seed, job.hookpoint)
    by_shard: dict[int, list[int]] = {}
    for latent in selected:
        by_shard.setdefault(latent // cache.shard_size, []).append(latent)
    pending = [s for s in sorted(by_shard) if not (root / "status" / _part_name(*cache.shard_ranges[s])).exists()]

    t0 = time.perf_counter()
    n_done = 0
    if pending:
        from .models import load_model

        model, tokenizer = load_model(job.model)
        decoder = None
        if cfg.negatives.neighbour and cfg.negatives.neighbour_source == "decoder":
            decoder = _decoder_directions(job, model)
            if decoder is None:
                log.info("%s: the dictionary has no decoder; neighbours by co-occurrence", job.hookpoint)
        sampler = _Sampler(job, tokenizer, decoder)
        sampler.build_pool(set(pending))
        bar = tqdm(total=sum(len(by_shard[s]) for s in pending), unit="latent", desc=f"sample {job.hookpoint}",
                   disable=not job.progress)
        for s in pending:
            sh = cache.load_shard(s)
            slices = sh.latent_slices()
            name = _part_name(sh.start, sh.end)
            tmp = root / "examples" / (name + ".tmp")
            writer = pq.ParquetWriter(tmp, EXAMPLE_SCHEMA)
            status_rows, batch = [], []
            todo = by_shard[s]
            for b in range(0, len(todo), LATENT_GROUP):
                group = todo[b:b + LATENT_GROUP]
                items = [(lat, sh.tokens[slices.get(lat, slice(0, 0))], sh.values[slices.get(lat, slice(0, 0))]) for lat in group]
                for latent, (rows, info) in zip(group, sampler.sample_latents(items)):
                    status_rows.append(sampler.latent_row(latent, info["status"], info))
                    batch.extend(rows)
                    if len(batch) >= 512:
                        writer.write_table(pa.Table.from_pylist(batch, schema=EXAMPLE_SCHEMA))
                        batch = []
                bar.update(len(group))
                n_done += len(group)
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=EXAMPLE_SCHEMA))
            writer.close()
            tmp.replace(root / "examples" / name)
            stmp = root / "status" / (name + ".tmp")
            pd.DataFrame(status_rows, columns=LATENT_COLUMNS).to_parquet(stmp, index=False)
            stmp.replace(root / "status" / name)
        bar.close()
    seconds = time.perf_counter() - t0

    # the latents table: sampled latents (from the partitions) and the ones skipped before sampling
    parts = [pd.read_parquet(f) for f in sorted((root / "status").glob("*.parquet"))]
    if skipped:
        parts.append(pd.DataFrame([latent_row(job.hookpoint, stats, cache.num_latents, i, r) for i, r in skipped.items()],
                                  columns=LATENT_COLUMNS))
    latents = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LATENT_COLUMNS)
    latents = latents.sort_values("latent", kind="stable").reset_index(drop=True)
    if not any((root / "examples").glob("*.parquet")):
        pq.write_table(EXAMPLE_SCHEMA.empty_table(), root / "examples" / "empty.parquet")
    tmp = root / "latents.parquet.tmp"
    latents.to_parquet(tmp, index=False)
    tmp.replace(root / "latents.parquet")
    meta = {"hookpoint": job.hookpoint, "fingerprint": fp, "complete": True,
            "n_latents": int(len(latents)), "n_ok": int((latents["status"] == OK).sum()) if len(latents) else 0,
            "seconds": seconds}
    if n_done and seconds:
        meta["latents_per_s"] = n_done / seconds
    _write_meta(root, meta)
    return meta


def read_latents(root: str | Path) -> pd.DataFrame:
    p = Path(root) / "latents.parquet"
    if not p.exists():
        raise AutointerpError(f"no latents table at '{p}'. Run `kedro run --pipelines sample` first.")
    return pd.read_parquet(p)


def read_sampled_examples(root: str | Path) -> pd.DataFrame:
    return read_examples(Path(root) / "examples")
