"""Activating windows of one latent, their quantile bins, and the train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SampleConfig


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
    """Greedy by decreasing activation: each active token proposes a window (centred or grid);
    a window overlapping one already taken is dropped. Each kept window is then described by its
    *strongest* token (``marked``, ``value``): a window kept for one token can hold a stronger one
    whose own window was dropped for overlap. Then rank-based quantile bins of those values.
    ``tokens`` are sorted flat positions of the active tokens, ``values`` their activations."""
    W = min(cfg.window_len, ctx_len)
    ctx = tokens // ctx_len
    pos = tokens % ctx_len
    if cfg.centre:
        start = np.clip(pos - min(cfg.marked, W - 1), 0, ctx_len - W)
    else:
        start = np.minimum((pos // W) * W, ctx_len - W)
    keep = greedy_non_overlapping(ctx, start, np.lexsort((tokens, -values)), ctx_len, W)
    w_ctx, w_start = ctx[keep], start[keep]
    strongest = strongest_in_windows(tokens, values, w_ctx * ctx_len + w_start, W)
    val = values[strongest]
    n = len(keep)
    quant = np.zeros(n, dtype=np.int64)
    if n:
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((tokens[strongest], val))] = np.arange(n)
        quant = rank * cfg.n_quantiles // n
    return Windows(w_ctx, w_start, pos[strongest] - w_start, val, quant)


def greedy_non_overlapping(ctx: np.ndarray, start: np.ndarray, order: np.ndarray, ctx_len: int, W: int) -> np.ndarray:
    """Indices (ascending) of the windows ``(ctx, start)`` of length ``W`` kept when taking them
    in ``order`` and dropping each one that overlaps one already kept. A kept window at ``s``
    blocks every start in ``(s - W, s + W)`` of its context, so each test is one lookup in a
    byte map over the contexts present (one Python step per candidate, no scan of kept ones)."""
    if len(order) == 0:
        return np.zeros(0, dtype=np.int64)
    present, local = np.unique(ctx, return_inverse=True)
    key = (local.astype(np.int64) * ctx_len + start).tolist()
    base = (local.astype(np.int64) * ctx_len).tolist()
    blocked = bytearray(len(present) * ctx_len)
    ones = b"\x01" * (2 * W)
    keep = []
    for i in order.tolist():
        k = key[i]
        if blocked[k]:
            continue
        keep.append(i)
        lo, hi = max(k - W + 1, base[i]), min(k + W, base[i] + ctx_len)
        blocked[lo:hi] = ones[: hi - lo]
    return np.sort(np.asarray(keep, dtype=np.int64))  # by flat position: windows in corpus order


def strongest_in_windows(tokens: np.ndarray, values: np.ndarray, lo: np.ndarray, W: int) -> np.ndarray:
    """For each window ``[lo, lo + W)`` of flat positions (non-overlapping, ascending), the index
    into ``tokens`` (sorted) of its strongest token (the first one on ties)."""
    if len(lo) == 0:
        return np.zeros(0, dtype=np.int64)
    w = np.searchsorted(lo, tokens, side="right") - 1
    inside = (w >= 0) & (tokens < lo[np.maximum(w, 0)] + W)
    idx = np.flatnonzero(inside)
    order = idx[np.lexsort((tokens[idx], -values[idx], w[idx]))]
    first = np.concatenate([[True], w[order][1:] != w[order][:-1]])
    out = order[first]
    if len(out) != len(lo):
        raise AssertionError("a window holds none of the latent's active tokens")
    return out


def spread_over_bins(bins: np.ndarray, n: int, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items drawn without replacement, as evenly over bins as they allow
    (remainders and shortfalls go to the strongest bins first)."""
    if n <= 0 or len(bins) == 0:
        return np.zeros(0, dtype=np.int64)
    members = [rng.permutation(np.flatnonzero(bins == b)) for b in range(n_bins)]
    quota = np.full(n_bins, n // n_bins)
    quota[n_bins - n % n_bins :] += 1 if n % n_bins else 0
    taken = [m[:q] for m, q in zip(members, quota)]
    short = n - sum(len(t) for t in taken)
    while short > 0:
        progressed = False
        for b in reversed(range(n_bins)):
            if short and len(taken[b]) < len(members[b]):
                taken[b] = members[b][: len(taken[b]) + 1]
                short -= 1
                progressed = True
        if not progressed:
            break
    return np.sort(np.concatenate(taken)).astype(np.int64)


def split_train_test(win: Windows, cfg: SampleConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and test windows (disjoint). The test set is served first:
    ``min_test`` windows spread over the quantile bins are reserved, training takes up to
    ``n_train`` of the rest (``train_mode``), and the test set is filled up to ``n_test``
    (spread over the bins) from what training left. The caller checks that the latent has
    ``min_test + min_train`` windows at least."""
    n = len(win)
    everything = np.arange(n)
    reserved = spread_over_bins(win.quantile, min(cfg.min_test, cfg.n_test), cfg.n_quantiles, rng)
    rest = np.setdiff1d(everything, reserved)
    if cfg.train_mode == "top":
        train = rest[np.lexsort((rest, -win.value[rest]))[: cfg.n_train]]
    elif cfg.train_mode == "random":
        train = rest[rng.permutation(len(rest))[: cfg.n_train]]
    else:
        train = rest[spread_over_bins(win.quantile[rest], cfg.n_train, cfg.n_quantiles, rng)]
    rest = np.setdiff1d(rest, train)
    more = rest[spread_over_bins(win.quantile[rest], cfg.n_test - len(reserved), cfg.n_quantiles, rng)]
    return np.sort(train), np.sort(np.concatenate([reserved, more]))


def overlaps(ctx: np.ndarray, start: np.ndarray, taken_ctx: np.ndarray, taken_start: np.ndarray, W: int) -> np.ndarray:
    """For each window (ctx, start), whether it overlaps any taken window (of length ``W`` too)."""
    ctx, start = np.asarray(ctx, dtype=np.int64), np.asarray(start, dtype=np.int64)
    if len(taken_ctx) == 0 or len(ctx) == 0:
        return np.zeros(len(ctx), dtype=bool)
    span = int(max(start.max(), np.max(taken_start))) + 2 * W  # keys of different contexts differ by >= W
    taken = np.sort(np.asarray(taken_ctx, dtype=np.int64) * span + np.asarray(taken_start, dtype=np.int64))
    key = ctx * span + start
    j = np.searchsorted(taken, key)
    right = (j < len(taken)) & (taken[np.minimum(j, len(taken) - 1)] - key < W)
    left = (j > 0) & (key - taken[np.maximum(j - 1, 0)] < W)
    return right | left
