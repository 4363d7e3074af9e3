"""The ``calibrate:`` parameters (conf/base/parameters_calibrate.yml)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

CALIBRATION_HOOKPOINT = "embed_tokens"  # the embedding output: a token's activation there is its embedding row
TRUE_EXPLAINER = "true"  # the explainer name of the true explanations (`the word "X"`)


@dataclass(frozen=True)
class CalibrateConfig:
    """How many known-answer latents, and how many examples each.

    ``n_words`` words are drawn (seeded by ``seed``) among the ``candidates`` most frequent
    eligible word tokens of the corpus: a leading-space word of at least ``min_chars`` letters,
    no stop word, no word of the explainer's worked examples, and enough non-overlapping
    windows for ``n_train`` training and ``n_test`` test examples. ``explainers`` and
    ``scorers`` default (null) to the run's ``explain.explainers`` and ``score.scorers``.
    A scorer is **informative** when the true-minus-shuffled AUROC is at least
    ``min_delta`` with a bootstrap 95% interval that excludes 0."""

    enabled: bool = True
    n_words: int = 8
    seed: int = 0
    candidates: int = 64
    min_chars: int = 3
    n_train: int = 10
    n_test: int = 8
    n_non_activating: int = 8
    explainers: list[str] | None = None
    scorers: list[str] | None = None
    min_delta: float = 0.2
    n_bootstrap: int = 1000

    def validate(self, where: str) -> None:
        if self.n_words < 2:
            raise ConfigError(
                f"{where}.n_words must be at least 2 (the shuffled control needs two latents), got {self.n_words}."
            )
        for name in ("candidates", "min_chars", "n_train", "n_test", "n_non_activating", "n_bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.candidates < self.n_words:
            raise ConfigError(f"{where}.candidates ({self.candidates}) must be at least n_words ({self.n_words}).")
        if not 0 < self.min_delta <= 1:
            raise ConfigError(f"{where}.min_delta must be in (0, 1], got {self.min_delta}.")
        for name in ("explainers", "scorers"):
            v = getattr(self, name)
            if v is not None and not v:
                raise ConfigError(f"{where}.{name}: give at least one name, or null for the run's own.")
