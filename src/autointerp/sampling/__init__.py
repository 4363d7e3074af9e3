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

from .config import (
                     NEGATIVE_KINDS,
                     NEIGHBOUR_SOURCES,
                     OK,
                     SELECTION_MODES,
                     TRAIN_MODES,
                     NegativesConfig,
                     SampleConfig,
                     SelectionConfig,
)
from .job import LATENT_COLUMNS, SampleJob, read_latents, read_sampled_examples, sample_hookpoint
from .pool import WindowPool
from .sampler import latent_row
from .selection import rare_reason, select_latents
from .windows import Windows, activating_windows, overlaps, split_train_test, spread_over_bins

__all__ = ["LATENT_COLUMNS", "NEGATIVE_KINDS", "NEIGHBOUR_SOURCES", "OK", "SELECTION_MODES", "TRAIN_MODES",
           "NegativesConfig", "SampleConfig", "SampleJob", "SelectionConfig", "Windows", "WindowPool",
           "activating_windows", "latent_row", "overlaps", "rare_reason", "read_latents", "read_sampled_examples",
           "sample_hookpoint", "select_latents", "spread_over_bins", "split_train_test"]
