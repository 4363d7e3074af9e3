"""Which latents of a hookpoint are sampled (``sample.selection``)."""

from __future__ import annotations

import logging

import numpy as np

from .config import SelectionConfig

log = logging.getLogger(__name__)


def _in_range(latents, num_latents: int, hookpoint: str, what: str) -> tuple[set[int], dict[int, str]]:
    chosen, skipped = set(), {}
    for i in latents:
        if 0 <= int(i) < num_latents:
            chosen.add(int(i))
        else:
            log.warning("%s: %s latent %s is out of range (%d latents); skipped", hookpoint, what, i, num_latents)
            skipped[int(i)] = f"out of range: hookpoint {hookpoint} has {num_latents} latents (0..{num_latents - 1})"
    return chosen, skipped


def select_latents(
    stats: dict[str, np.ndarray], num_latents: int, cfg: SelectionConfig, seed: int, hookpoint: str = "", matched=None
) -> tuple[list[int], dict[int, str]]:
    """(latents to sample, {latent: reason} for latents considered but not sampled).

    ``matched``: for mode ``matched``, the hookpoint's matched latents (its ``latent`` column
    of ``{namespace}.matched_latents``); every one is sampled (a rare one gets its status from
    the sampler, so that a matched pair shows why it has no examples), plus ``n`` random
    others drawn as mode ``random`` does."""
    count, freq = stats["firing_count"], stats["frequency"]
    if cfg.mode == "all":
        return list(range(num_latents)), {}
    if cfg.mode == "list":
        chosen, skipped = _in_range(cfg.latents, num_latents, hookpoint, "listed")
        return sorted(chosen), skipped
    eligible = count >= cfg.min_activating
    pool = np.flatnonzero(eligible) if cfg.eligible_only else np.arange(num_latents)
    rng = np.random.default_rng([seed, 0x5E1EC7])
    out_of_range: dict[int, str] = {}
    if cfg.mode == "first":
        chosen = pool[: cfg.n]
    elif cfg.mode == "random":
        chosen = np.sort(rng.choice(pool, min(cfg.n, len(pool)), replace=False)) if len(pool) else pool
    elif cfg.mode == "matched":
        must, out_of_range = _in_range([] if matched is None else matched, num_latents, hookpoint, "matched")
        rest = np.setdiff1d(pool, np.fromiter(must, np.int64, len(must)))
        extra = rng.choice(rest, min(cfg.n, len(rest)), replace=False) if len(rest) else rest
        chosen = np.unique(np.concatenate([np.fromiter(must, np.int64, len(must)), extra])).astype(np.int64)
    else:  # per_band
        parts = []
        edges = list(cfg.bands)
        for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
            f = freq[pool]
            band = pool[(f >= lo) & ((f < hi) | ((b == len(edges) - 2) & (f <= hi)))]
            if len(band) < cfg.n:
                log.warning(
                    "%s: frequency band [%g, %g) has %d eligible latents, fewer than %d",
                    hookpoint,
                    lo,
                    hi,
                    len(band),
                    cfg.n,
                )
            parts.append(rng.choice(band, min(cfg.n, len(band)), replace=False) if len(band) else band)
        chosen = np.unique(np.concatenate(parts)).astype(np.int64)
    skipped = dict(out_of_range)
    if cfg.eligible_only:  # rare latents left out of the draw are listed with their reason
        last = int(chosen[-1]) if cfg.mode == "first" and len(chosen) else num_latents
        drawn = set(int(i) for i in chosen)
        skipped |= {
            int(i): rare_reason(int(count[i]), cfg.min_activating)
            for i in np.flatnonzero(~eligible)
            if (cfg.mode != "first" or i < last) and int(i) not in drawn
        }
    return [int(i) for i in chosen], skipped


def rare_reason(n: int, minimum: int, what: str = "firing tokens") -> str:
    if n == 0:
        return "dead: never fires"
    return f"too rare: {n} {what} < selection.min_activating {minimum}"
