"""How SAEs are trained: ``parameters: train_sae`` (see :mod:`autointerp.training`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import as_dict, parse_config
from ..errors import ConfigError

DEFAULT_HOOKPOINTS = ["layers.4", "layers.5", "layers.6", "layers.4.mlp", "layers.5.mlp", "layers.6.mlp"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train the SAEs (``parameters: train_sae``).

    ``n_tokens`` is the training budget; the training contexts are cycled (re-shuffled each
    epoch) until it is spent. ``holdout_contexts`` contexts of the corpus are never trained on
    and give the reported FVU. ``batch_contexts`` contexts go through the model together;
    the SAEs then take optimizer steps of ``sae_batch_tokens`` tokens each. ``lr`` None picks
    sparsify's default ``2e-4 / sqrt(num_latents / 2**14)`` (too low for
    the short runs this project can afford on a CPU). A latent is dead when it has not
    fired for ``dead_tokens`` training tokens; AuxK (weight ``auxk_alpha``) revives those.
    ``overrides`` maps a hookpoint to its own values of the per-SAE keys (``PER_SAE_KEYS``,
    e.g. ``{layers.4.mlp: {k: 64}}``): MLP outputs are less sparse than the residual stream.
    """

    hookpoints: list[str] = field(default_factory=lambda: list(DEFAULT_HOOKPOINTS))
    expansion_factor: int = 4
    num_latents: int | None = None
    k: int = 32
    n_tokens: int = 262144
    batch_contexts: int = 8
    sae_batch_tokens: int = 1024
    holdout_contexts: int = 32
    lr: float | None = 0.002
    lr_warmup_fraction: float = 0.05
    lr_decay_fraction: float = 0.2
    auxk_alpha: float = 1 / 32
    dead_tokens: int = 65536
    b_dec_init: str = "mean"
    normalize: bool = True
    exclude_bos: bool = True
    autocast: bool | str = "auto"  # bf16 autocast; auto: where the CPU computes bf16 natively
    seed: int = 0
    log_every: int = 10
    overrides: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.autocast == "auto":  # resolved when built, so the fingerprint says what ran
            from ..models import native_bf16

            object.__setattr__(self, "autocast", native_bf16("cpu"))

    def validate(self, where: str) -> None:
        if not isinstance(self.autocast, bool):
            raise ConfigError(f"{where}.autocast: use true, false or auto, got {self.autocast!r}.")
        if not self.hookpoints:
            raise ConfigError(f"{where}.hookpoints is empty: name at least one hookpoint to train an SAE on.")
        if len(set(self.hookpoints)) != len(self.hookpoints):
            raise ConfigError(f"{where}.hookpoints lists a hookpoint twice: {self.hookpoints}.")
        for name in (
            "expansion_factor",
            "k",
            "n_tokens",
            "batch_contexts",
            "sae_batch_tokens",
            "dead_tokens",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_latents is not None and self.num_latents < 1:
            raise ConfigError(f"{where}.num_latents must be at least 1 (or null to use expansion_factor).")
        if self.num_latents is not None and self.k > self.num_latents:
            raise ConfigError(
                f"{where}.k ({self.k}) is larger than num_latents ({self.num_latents}). Lower k or raise num_latents."
            )
        if self.holdout_contexts < 1:
            raise ConfigError(f"{where}.holdout_contexts must be at least 1: the FVU is measured on held-out contexts.")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"{where}.lr must be positive (or null for sparsify's default).")
        if not (
            0 <= self.lr_warmup_fraction <= 1
            and 0 <= self.lr_decay_fraction <= 1
            and self.lr_warmup_fraction + self.lr_decay_fraction <= 1
        ):
            raise ConfigError(
                f"{where}: lr_warmup_fraction and lr_decay_fraction must be in [0, 1] and sum to at most 1."
            )
        if self.auxk_alpha < 0:
            raise ConfigError(f"{where}.auxk_alpha must be >= 0.")
        if self.b_dec_init not in ("mean", "geometric_median", "zeros"):
            raise ConfigError(f"{where}.b_dec_init: use mean, geometric_median or zeros, got '{self.b_dec_init}'.")
        if not isinstance(self.overrides, dict):
            raise ConfigError(
                f"{where}.overrides: expected a mapping hookpoint -> {{key: value}}, got {self.overrides!r}."
            )
        for h, over in self.overrides.items():
            if h not in self.hookpoints:
                raise ConfigError(
                    f"{where}.overrides: '{h}' is not one of the hookpoints {self.hookpoints}. "
                    "Add it to hookpoints or remove its override."
                )
            if not isinstance(over, dict):
                raise ConfigError(f"{where}.overrides.{h}: expected a mapping of keys, got {over!r}.")
            bad = [k for k in over if k not in PER_SAE_KEYS]
            if bad:
                raise ConfigError(
                    f"{where}.overrides.{h}: '{bad[0]}' cannot differ per hookpoint. "
                    f"Keys allowed there: {', '.join(PER_SAE_KEYS)}."
                )
            # the merged config checks the values' types and ranges
            parse_config(TrainConfig, as_dict(self) | {"overrides": {}} | over, f"{where}.overrides.{h}")

    def for_hookpoint(self, hookpoint: str) -> TrainConfig:
        """This config with ``hookpoint``'s overrides applied (and no overrides left)."""
        return replace(self, **self.overrides.get(hookpoint, {}), overrides={})

    def latents_for(self, d_in: int) -> int:
        return self.num_latents or self.expansion_factor * d_in


PER_SAE_KEYS = ("k", "expansion_factor", "num_latents", "lr", "auxk_alpha", "dead_tokens", "b_dec_init")
