"""The ``explain:`` parameters (conf/base/parameters_explain.yml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class TokensConfig:
    """The statistical explainer (``tokens``): what its sentence names."""

    top: int = 3  # at most this many tokens named
    min_share: float = 0.05  # a token after the first is named only with this share of the activation mass
    context: bool = True  # also name the tokens that most often precede them
    min_context_share: float = 0.25  # ... when they precede at least this share of the named tokens' mass
    share: bool = False  # also say which share of the activation mass the named tokens cover
    quote: bool = False  # tokens JSON-quoted (" king", "\n"); false: plain words (king)
    phrases: int = 5  # the strongest token of this many strongest examples, with the tokens before it ("as in ...")
    phrase_before: int = 4  # ... this many tokens before it

    def validate(self, where: str) -> None:
        if self.top < 1:
            raise ConfigError(f"{where}.top must be at least 1, got {self.top}.")
        for name in ("phrases", "phrase_before"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be 0 or more, got {getattr(self, name)}.")
        for name in ("min_share", "min_context_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{where}.{name} must be in [0, 1], got {getattr(self, name)}.")


@dataclass(frozen=True)
class ExplainConfig:
    """How latents are explained; ``explainers`` lists every explainer of the run by name
    (see :data:`autointerp.explainers.REGISTRY`)."""

    explainers: list[str] = field(default_factory=lambda: ["default", "tokens"])
    reasoning: bool = False  # LLM: think in a few sentences before the final "Explanation:" line
    prefill: bool = True  # LLM: start the answer with "Explanation:" (ignored with reasoning); weak models need it
    few_shot: bool = True  # LLM: show worked examples of the task first (as delphi's default prompt does)
    hint: bool = (
        True  # LLM: show the statistical explainer's sentence as a hint (measured better: benchmarks/explain.py hint)
    )
    n_examples: int = 20  # activating training examples shown per latent (spread over their strengths)
    n_negatives: int = 10  # counter-examples (training split) shown by the contrastive explainer
    highlight_threshold: float = 0.3  # mark tokens above this fraction of the example's max activation
    max_tokens: int = 64  # answer budget (reasoning needs more: max_tokens_reasoning)
    max_tokens_reasoning: int = 256
    max_chars: int = 200  # explanations are cut at a word boundary beyond this
    batch_latents: int = 8  # latents sent to the client together (a local batch, or concurrent requests)
    retry_failed: bool = True  # a resumed run redoes latents whose LLM explanation failed
    echo_retries: int = (
        2  # LLM: ask again this often after an answer echoing a worked example (the last time without any)
    )
    max_latents: int | None = None  # LLM explainers explain only the first N latents; statistical ones all
    tokens: TokensConfig = field(default_factory=TokensConfig)
    progress: bool = True

    def validate(self, where: str) -> None:
        from .registry import REGISTRY

        if not self.explainers:
            raise ConfigError(f"{where}.explainers: list at least one explainer, e.g. [default, tokens].")
        for name in self.explainers:
            if name not in REGISTRY:
                raise ConfigError(f"{where}.explainers: unknown explainer '{name}'. Use some of {list(REGISTRY)}.")
        if len(set(self.explainers)) != len(self.explainers):
            raise ConfigError(f"{where}.explainers lists an explainer twice: {self.explainers}.")
        for name in ("n_examples", "max_tokens", "max_tokens_reasoning", "max_chars", "batch_latents"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("n_negatives", "echo_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be 0 or more, got {getattr(self, name)}.")
        if self.max_latents is not None and self.max_latents < 0:
            raise ConfigError(f"{where}.max_latents must be 0 or more (or null for all).")
        if not 0 <= self.highlight_threshold < 1:
            raise ConfigError(f"{where}.highlight_threshold must be in [0, 1), got {self.highlight_threshold}.")

    @property
    def answer_tokens(self) -> int:
        return self.max_tokens_reasoning if self.reasoning else self.max_tokens

    @property
    def uses_prefill(self) -> bool:
        return self.prefill and not self.reasoning
