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
    subject model reads left to right), clipped into its context. Not centred: fixed grid
    windows. Activating windows of a latent are chosen greedily by decreasing activation and
    never overlap, so any two examples of a latent (train or test, any kind) share no token.
    ``value``/``marked``/``quantile`` always describe the window's strongest token (usually the
    one it was centred on; a stronger token whose own window was dropped for overlap wins).
Active
    A token is active when its activation exceeds the latent's threshold
    (``sample.active_threshold`` / ``active_thresholds``, see :mod:`.active`; default: above 0).
Quantiles
    Activating windows are binned by the activation of their strongest token into
    ``n_quantiles`` bins of equal size by rank (``n_quantiles - 1`` the strongest).
Train and test
    ``min_test`` activating test windows (spread over the bins) are reserved first, training
    takes up to ``n_train`` of the rest, the test set is filled up to ``n_test``. A latent with
    fewer than ``min_test + min_train`` windows gets status ``too_few_for_test``.
Non-activating windows
    Drawn without replacement from a seeded pool of grid windows with no active token:
    ``random``, ``neighbour`` (a latent with the most similar decoder direction, or the most
    co-occurring latent when the dictionary has no decoder, is active there; this one is not),
    ``embedding`` (closest in sentence embedding to the mean embedding of the latent's training
    examples, each embedded as the grid window holding its marked token, or as the window itself
    with ``negatives.embedding_query: windows``). Test
    negatives (``negatives.<kind>``) first, then training ones (``negatives.train.<kind>``,
    counter-examples for the contrastive explainer), so no two share a token; none overlaps an
    activating window of the latent.
"""

from .active import keep_active, shard_thresholds
from .config import (
    NEGATIVE_KINDS,
    NEIGHBOUR_SOURCES,
    OK,
    SELECTION_MODES,
    TOO_FEW_FOR_TEST,
    TRAIN_MODES,
    ActiveThreshold,
    NegativesConfig,
    SampleConfig,
    SelectionConfig,
    TrainNegatives,
)
from .job import LATENT_COLUMNS, SampleJob, read_latents, read_sampled_examples, sample_hookpoint
from .pool import WindowPool, draw_negatives
from .sampler import latent_row
from .selection import rare_reason, select_latents
from .windows import (
    Windows,
    activating_windows,
    overlaps,
    split_train_test,
    spread_over_bins,
    strongest_in_windows,
)

__all__ = [
    "TOO_FEW_FOR_TEST",
    "ActiveThreshold",
    "TrainNegatives",
    "draw_negatives",
    "keep_active",
    "shard_thresholds",
    "strongest_in_windows",
    "LATENT_COLUMNS",
    "NEGATIVE_KINDS",
    "NEIGHBOUR_SOURCES",
    "OK",
    "SELECTION_MODES",
    "TRAIN_MODES",
    "NegativesConfig",
    "SampleConfig",
    "SampleJob",
    "SelectionConfig",
    "Windows",
    "WindowPool",
    "activating_windows",
    "latent_row",
    "overlaps",
    "rare_reason",
    "read_latents",
    "read_sampled_examples",
    "sample_hookpoint",
    "select_latents",
    "spread_over_bins",
    "split_train_test",
]
