"""Configuration of the ``sample`` stage (``sample:`` in parameters_sample.yml) and its constants."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..models import DTYPES, resolve_dtype

SELECTION_MODES = ("all", "first", "random", "per_band", "list", "matched")
TRAIN_MODES = ("quantiles", "top", "random")
NEIGHBOUR_SOURCES = ("decoder", "cooccurrence")
EMBEDDING_QUERIES = ("grid", "windows")  # what the embedding negatives' query embeds (see NegativesConfig)
NEGATIVE_KINDS = ("neighbour", "embedding", "random")  # the order in which they are drawn
OK = "ok"
TOO_FEW_FOR_TEST = "too_few_for_test"  # fewer activating windows than min_test + min_train (reason in `note`)
LATENT_GROUP = 64  # latents sampled together (their embedding queries form one batch)


@dataclass(frozen=True)
class SelectionConfig:
    """Which latents to sample. ``mode``: all | first (the first ``n``) | random (a seeded
    random ``n``) | per_band (``n`` per firing-frequency band, edges in ``bands``) | list
    (``latents``) | matched (match before sampling: the hookpoint's latents in the
    ``{namespace}.matched_latents`` table, the top ``similarity.matched_latents`` co-activation
    matches of every ``similarity.pairs`` entry it is in, plus a seeded random ``n`` of the
    others). Latents with fewer than ``min_activating`` activating windows are skipped
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
            raise ConfigError(
                f"{where}.bands: give at least two increasing frequency edges, e.g. [0, 1e-4, 1e-3, 1e-2, 1]."
            )


@dataclass(frozen=True)
class TrainNegatives:
    """Non-activating *training* windows of each kind (counter-examples for the explainer),
    disjoint from the test ones (no shared token). Drawn after the test negatives."""

    random: int = 0
    neighbour: int = 0
    embedding: int = 0

    def validate(self, where: str) -> None:
        if min(self.random, self.neighbour, self.embedding) < 0:
            raise ConfigError(f"{where}: counts of non-activating training windows must be >= 0.")

    @property
    def total(self) -> int:
        return self.random + self.neighbour + self.embedding


@dataclass(frozen=True)
class NegativesConfig:
    """How many non-activating test windows of each kind (and training ones in ``train``), and
    where they come from."""

    random: int = 50
    neighbour: int = 0
    embedding: int = 0
    neighbour_source: str = "decoder"  # falls back to cooccurrence for neurons (no decoder)
    n_neighbours: int = 10
    embedding_model: str | None = None  # None: the packaged all-MiniLM-L6-v2
    # the query of a latent's embedding negatives, the mean embedding of its training examples,
    # each embedded as: "grid", the grid window holding its marked token (at most one embedding per
    # grid window of the corpus: sampling costs O(tokens), not O(latents x n_train)); "windows",
    # the training window itself (exact, one embedding per latent and training window)
    embedding_query: str = "grid"
    embedding_dtype: str = "auto"  # the embedding model's weights; auto: bfloat16 where native, else float32
    pool_windows: int = 4096  # candidate windows per hookpoint (seeded sample of grid windows)
    embedding_pool: int = 1024  # of which this many are embedded for embedding negatives
    min_non_activating: int = 1  # fewer found: the latent is skipped (fires nearly everywhere)
    train: TrainNegatives = field(default_factory=TrainNegatives)

    def __post_init__(self) -> None:  # resolved here, so fingerprints name the real dtype
        object.__setattr__(self, "embedding_dtype", resolve_dtype(self.embedding_dtype))

    def validate(self, where: str) -> None:
        if self.train is None:
            object.__setattr__(self, "train", TrainNegatives())
        if min(self.random, self.neighbour, self.embedding) < 0:
            raise ConfigError(f"{where}: counts of non-activating windows must be >= 0.")
        if self.neighbour_source not in NEIGHBOUR_SOURCES:
            raise ConfigError(f"{where}.neighbour_source: use one of {', '.join(NEIGHBOUR_SOURCES)}.")
        if self.embedding_dtype not in DTYPES:
            raise ConfigError(
                f"{where}.embedding_dtype: unknown dtype '{self.embedding_dtype}'. Use one of {sorted(DTYPES)}."
            )
        if self.embedding_query not in EMBEDDING_QUERIES:
            raise ConfigError(f"{where}.embedding_query: use one of {', '.join(EMBEDDING_QUERIES)}.")
        if self.pool_windows < 1 or self.embedding_pool < 0 or self.n_neighbours < 1 or self.min_non_activating < 0:
            raise ConfigError(
                f"{where}: pool_windows and n_neighbours must be >= 1, embedding_pool and min_non_activating >= 0."
            )

    @property
    def total(self) -> int:
        return self.random + self.neighbour + self.embedding

    @property
    def uses_neighbours(self) -> bool:
        return bool(self.neighbour or self.train.neighbour)

    @property
    def uses_embeddings(self) -> bool:
        return bool(self.embedding or self.train.embedding)


@dataclass(frozen=True)
class ActiveThreshold:
    """When a token counts as *active* for a latent: its activation is above ``value`` and, with
    ``quantile`` q, above the latent's own q-quantile over every cached token (zeros included),
    so that at most a fraction 1 - q of the corpus is active. The default (``value: 0``, no
    quantile) is "fires when > 0", right for sparse dictionaries; dense latents such as raw
    MLP neurons (``format: neurons, k: null``) need one, e.g. ``{quantile: 0.99}``. For a latent
    firing on fewer than 1 - q of the tokens the quantile is 0 and changes nothing."""

    value: float = 0.0
    quantile: float | None = None

    def validate(self, where: str) -> None:
        if self.value < 0:
            raise ConfigError(f"{where}.value must be >= 0 (activations in the cache are never negative).")
        if self.quantile is not None and not 0 < self.quantile < 1:
            raise ConfigError(f"{where}.quantile must be between 0 and 1 (exclusive), e.g. 0.99.")

    @property
    def trivial(self) -> bool:
        return self.value == 0 and self.quantile is None


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
    min_test: int | None = None  # activating test windows reserved first (None: min(10, n_test))
    min_train: int | None = (
        None  # training windows needed beside them (None: min(10, n_train)); fewer: too_few_for_test
    )
    seed: int = 0
    active_threshold: ActiveThreshold | None = None  # None: active when > 0
    active_thresholds: dict | None = None  # per hookpoint (its key in `hookpoints`): overrides active_threshold
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)

    def __post_init__(self) -> None:
        if self.min_test is None:
            object.__setattr__(self, "min_test", min(10, max(self.n_test, 0)))
        if self.min_train is None:
            object.__setattr__(self, "min_train", min(10, max(self.n_train, 0)))

    def validate(self, where: str) -> None:
        if self.window_len < 1 or self.n_quantiles < 1 or self.n_train < 0 or self.n_test < 0:
            raise ConfigError(f"{where}: window_len and n_quantiles must be >= 1, n_train and n_test >= 0.")
        for name, n in (("min_test", self.n_test), ("min_train", self.n_train)):
            value = getattr(self, name)
            if value is not None and not min(1, n) <= value <= n:
                raise ConfigError(
                    f"{where}.{name}: must be between 1 and {'n_test' if name == 'min_test' else 'n_train'} "
                    f"({n}), got {value}."
                )
        if self.active_thresholds is not None:
            from ..config import parse_config

            if not isinstance(self.active_thresholds, dict):
                raise ConfigError(
                    f"{where}.active_thresholds: expected a mapping hookpoint -> {{value: .., quantile: ..}}."
                )
            parsed = {
                str(h): parse_config(ActiveThreshold, t, f"{where}.active_thresholds.{h}")
                for h, t in self.active_thresholds.items()
            }
            object.__setattr__(self, "active_thresholds", parsed)
        if self.marked_position is not None and not 0 <= self.marked_position < self.window_len:
            raise ConfigError(f"{where}.marked_position must be between 0 and window_len - 1 ({self.window_len - 1}).")
        if self.train_mode not in TRAIN_MODES:
            raise ConfigError(
                f"{where}.train_mode: unknown mode '{self.train_mode}'. Use one of {', '.join(TRAIN_MODES)}."
            )

    def threshold_for(self, hookpoint: str) -> ActiveThreshold:
        """The notion of "active" for one hookpoint (its override, else ``active_threshold``)."""
        own = (self.active_thresholds or {}).get(hookpoint)
        return own or self.active_threshold or ActiveThreshold()

    @property
    def marked(self) -> int:
        return self.window_len * 3 // 4 if self.marked_position is None else self.marked_position
