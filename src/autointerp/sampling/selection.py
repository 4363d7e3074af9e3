"""Which latents of a hookpoint are sampled (``sample.selection``)."""

from __future__ import annotations

import logging

import numpy as np

from .config import SelectionConfig

log = logging.getLogger(__name__)


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
