"""Settings of the similarity stage (``similarity:`` in ``conf/base/parameters_similarity.yml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

MEASURES = ("jaccard", "explanation_cosine", "decoder_cosine", "cross_score")
DECODER_BASELINE = ("auto", "always", "never")
MATCHING = ("auto", "dense", "sparse")


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Thresholds:
    """A matched pair 'agrees' under a measure when its similarity is at least the threshold."""

    jaccard: float = 0.5
    explanation_cosine: float = 0.7
    decoder_cosine: float = 0.7
    cross_score: float = 0.7


CROSS_METRICS = ("auroc", "balanced_accuracy")
FEW_PAIRS = ("report", "skip", "error")


def cross_scorers() -> list[str]:
    """The scorers of the scoring package that can cross-score: they judge an explanation on
    labelled examples (activating and not) and return a score per example."""
    from ..scoring import SCORERS

    return sorted(n for n, c in SCORERS.items() if c.uses_explanation and c.two_class)


@dataclass(frozen=True)
class CrossScoringConfig:
    """Cross-scoring: A's explanation judged by one of the score stage's scorers on B's test examples.

    Explanations and examples exist only for the *sampled* latents, and the sample stage draws
    them independently per hookpoint, so few matched pairs have both A's explanation and B's
    examples (the *eligible* pairs; the summary always reports how many). ``max_pairs``: at most
    this many eligible pairs are scored, highest co-activation first. ``both_ways``: also score
    B's explanation on A's examples where that exists. ``metric``: which per-pair number is the
    pair's ``cross_score`` (``auroc`` of P(yes), or ``balanced_accuracy``). ``min_pairs`` and
    ``on_few_pairs``: with fewer eligible pairs than ``min_pairs``, ``report`` scores them and
    flags the summary row (``note``) and the log, ``skip`` scores none and says so, ``error``
    stops with how to sample the matched latents.
    ``scorer``: which scorer of the score stage judges (its ``score.<scorer>`` settings):
    ``embedding`` (MiniLM, no LLM) or an LLM scorer such as ``detection``. Its chance level is
    measured: each scored explanation is also scored on the test examples of a random other
    latent of the other side (seeded), and the summary's ``chance`` is the mean of those scores.
    Off by default: with an LLM scorer, one prompt per example (``score.n_activating +
    n_non_activating`` per pair and direction, twice with the random pairs).
    """

    enabled: bool = False
    max_pairs: int = 50
    both_ways: bool = True
    metric: str = "auroc"
    min_pairs: int = 10
    on_few_pairs: str = "report"
    scorer: str = "embedding"

    def validate(self, where: str) -> None:
        if self.scorer not in cross_scorers():
            raise ConfigError(
                f"{where}.scorer: '{self.scorer}' cannot cross-score (it must judge an explanation on activating "
                f"and non-activating examples). Use one of {', '.join(cross_scorers())}."
            )
        if self.max_pairs < 1:
            raise ConfigError(f"{where}.max_pairs must be at least 1.")
        if self.metric not in CROSS_METRICS:
            raise ConfigError(f"{where}.metric: '{self.metric}' is not one of {', '.join(CROSS_METRICS)}.")
        if self.on_few_pairs not in FEW_PAIRS:
            raise ConfigError(f"{where}.on_few_pairs: '{self.on_few_pairs}' is not one of {', '.join(FEW_PAIRS)}.")


@dataclass(frozen=True)
class SimilarityConfig:
    """``pairs``: list of ``[hookpoint_a, hookpoint_b]`` to compare.

    ``decoder_baseline``: ``auto`` runs decoder-cosine matching when both dictionaries have
    decoders of the same width writing to the same kind of stream (both residual or both MLP
    outputs); ``always`` whenever the widths agree; ``never`` skips it.
    ``heatmap_latents``: how many matched latents (the most frequent) the heatmaps show.
    ``explanations``: read each hookpoint's explanations (the explain stage) for the
    explanation measures; false compares co-activation and decoders only.
    ``explainer``: whose explanations give the plain ``explanation_cosine`` and ``cross_score``
    rows (null: the first LLM explainer present, the paper's measure); ``explainers``: the
    others measured the same way, as ``<measure>.<explainer>`` rows (null: every explainer
    present, e.g. the statistical ``tokens`` baseline; ``[]``: none). Every explanation row
    names its explainer (column ``explainer``).
    ``score_comparison``: also compare the score distributions of the configured hookpoints
    (the latents-vs-neurons experiment; needs the ``score`` stage).
    ``matching``: ``dense`` counts co-activation into a dense ``[na, nb]`` array and runs the
    Hungarian algorithm; ``sparse`` keeps only the pairs that co-fire (``candidates`` partners
    per latent and side, ``None`` all of them) and matches on that graph
    (:mod:`autointerp.similarity.sparse`); ``auto`` is dense up to ``dense_max_latents`` latents
    on both sides, sparse above.
    ``matched_latents``: with N > 0, the top N matched pairs of every configured pair are
    written per hookpoint (``{namespace}.matched_latents``) for ``sample.selection.mode: matched``
    (match before sampling, :mod:`autointerp.similarity.matched_latents`); 0 writes none.
    Only pairs that co-fire on at least ``matched_min_coactivations`` tokens count (a pair of
    latents that fire once, together, has Jaccard 1 but no examples to explain or score), and
    whose latents both fire on at most ``matched_max_frequency`` of the tokens (two latents that
    fire nearly everywhere match almost perfectly but have no non-activating test window; null:
    no limit).
    """

    pairs: list[list[str]] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)
    decoder_baseline: str = "auto"
    explanations: bool = True
    explainer: str | None = None  # whose explanations are compared; null: the first LLM explainer present
    explainers: list[str] | None = None  # also measured (``<measure>.<explainer>``); null: every one present
    embedding_model: str = "all-MiniLM-L6-v2"
    cross_scoring: CrossScoringConfig = field(default_factory=CrossScoringConfig)
    heatmap_latents: int = 128
    seed: int = 0
    score_comparison: bool = False
    score_metric: str = "balanced_accuracy"
    bootstrap: int = 1000
    matching: str = "auto"
    dense_max_latents: int = 8192
    candidates: int | None = 32
    matched_latents: int = 0
    matched_min_coactivations: int = 10
    matched_max_frequency: float | None = 0.1

    def validate(self, where: str) -> None:
        for i, p in enumerate(self.pairs or []):
            if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(h, str) for h in p):
                raise ConfigError(f"{where}.pairs[{i}]: expected [hookpoint_a, hookpoint_b], got {p!r}.")
            if p[0] == p[1]:
                raise ConfigError(f"{where}.pairs[{i}]: compares '{p[0]}' with itself; name two hookpoints.")
        if self.decoder_baseline not in DECODER_BASELINE:
            raise ConfigError(
                f"{where}.decoder_baseline: '{self.decoder_baseline}' is not one of {', '.join(DECODER_BASELINE)}."
            )
        if self.matching not in MATCHING:
            raise ConfigError(f"{where}.matching: '{self.matching}' is not one of {', '.join(MATCHING)}.")
        if self.candidates is not None and self.candidates < 1:
            raise ConfigError(f"{where}.candidates must be at least 1, or null for every co-firing pair.")
        if self.matched_latents < 0:
            raise ConfigError(f"{where}.matched_latents must be 0 (off) or a number of matched pairs per pair.")
        if self.matched_min_coactivations < 1:
            raise ConfigError(f"{where}.matched_min_coactivations must be at least 1 (co-firing tokens of a top pair).")
        if self.matched_max_frequency is not None and not 0 < self.matched_max_frequency <= 1:
            raise ConfigError(
                f"{where}.matched_max_frequency must be in (0, 1] (a fraction of the tokens), or null for no limit."
            )
        if self.heatmap_latents < 2:
            raise ConfigError(f"{where}.heatmap_latents must be at least 2.")
        if self.explainers is not None and not all(isinstance(e, str) and e for e in self.explainers):
            raise ConfigError(
                f"{where}.explainers: expected a list of explainer names (or null for all), got {self.explainers!r}."
            )
        self.cross_scoring.validate(f"{where}.cross_scoring")

    def sparse_for(self, na: int, nb: int) -> bool:
        """Whether dictionaries of ``na`` and ``nb`` latents are compared by the sparse method."""
        return self.matching == "sparse" or (self.matching == "auto" and max(na, nb) > self.dense_max_latents)

    def check_hookpoints(self, hookpoints: dict, where: str) -> None:
        for i, (a, b) in enumerate(self.pairs or []):
            for h in (a, b):
                if h not in (hookpoints or {}):
                    raise ConfigError(
                        f"{where}.pairs[{i}]: hookpoint '{h}' is not in parameters: hookpoints "
                        f"({', '.join(hookpoints or {}) or 'none'}). Add it there or fix the pair."
                    )
