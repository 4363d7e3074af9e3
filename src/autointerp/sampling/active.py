"""When a token counts as *active* for a latent (``sample.active_threshold``).

Sparse dictionaries fire rarely, and "active" is simply "above 0". Dense latents, such as an
MLP's raw neurons (``format: neurons, k: null``), are above 0 on about half of all tokens and in
nearly every window, so they would have no non-activating window at all. A threshold per
latent makes them sampleable: with ``{quantile: q}`` a token is active only above the latent's
own q-quantile over every cached token (zeros included), at most a fraction ``1 - q`` of the
corpus; ``{value: x}`` is an absolute floor. Sampling applies it once, to the cache's
activations as they are read, so activating windows, quantile bins, the ``activations`` of
every example row (values at or below the threshold are written as 0), non-activating windows
(no active token) and co-occurrence neighbours all use the same notion.
"""

from __future__ import annotations

import numpy as np

from ..latent_cache import ShardActivations
from .config import ActiveThreshold


def shard_thresholds(sh: ShardActivations, spec: ActiveThreshold, n_tokens: int) -> np.ndarray:
    """Per latent of the shard's range, the activation a token must exceed to be active."""
    thr = np.full(sh.end - sh.start, float(spec.value), dtype=np.float32)
    if spec.quantile is None or len(sh.values) == 0:
        return thr
    m = int(np.floor((1.0 - spec.quantile) * n_tokens))  # at most m active tokens per latent
    rel = sh.latents - sh.start
    count = np.bincount(rel, minlength=len(thr))
    dense = np.flatnonzero(count > m)
    if len(dense) == 0:
        return thr
    # the (m+1)-th largest value of each dense latent: strictly above it are at most m tokens
    # (entries are sorted by latent, so each latent is one slice; a partition is linear in it)
    ends = np.cumsum(count)
    for j in dense.tolist():
        c, a = int(count[j]), int(ends[j] - count[j])
        q = np.partition(sh.values[a : a + c], c - m - 1)[c - m - 1]
        thr[j] = max(thr[j], float(q))
    return thr


def keep_active(sh: ShardActivations, thr: np.ndarray) -> ShardActivations:
    """The shard with only its active entries (values above their latent's threshold)."""
    keep = sh.values > thr[sh.latents - sh.start]
    if keep.all():
        return sh
    return ShardActivations(sh.start, sh.end, sh.tokens[keep], sh.latents[keep], sh.values[keep])
