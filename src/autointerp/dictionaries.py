"""Dictionaries: one interface that turns model activations into latent activations.

Supported sources, all read without unpickling anything:

* ``sparsify``: EleutherAI sparsify layout, a folder per hookpoint with ``cfg.json`` and
  ``sae.safetensors`` (``encoder.weight``, ``encoder.bias``, ``W_dec``, ``b_dec`` and, for
  skip transcoders, ``W_skip``); TopK activation.
* ``saelens``: ``cfg.json`` + ``sae_weights.safetensors`` (``W_enc``, ``W_dec``, ``b_enc``,
  ``b_dec``, ``threshold``...); architectures standard (ReLU), topk, jumprelu and gated.
* ``gemmascope``: ``params.npz`` (JumpReLU), loaded with ``allow_pickle=False``.
* ``neurons``: the MLP's own neurons (the input of ``down_proj``) as latents, optionally
  top-k sparsified per token; the paper's baseline.

The encoders themselves (``SparseCoder``, ``NeuronDictionary``, ``topk_blocks``) live in
:mod:`autointerp.encoders` and stay importable from here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import parse_config
from .encoders import ACTIVATIONS, NeuronDictionary, SparseCoder, topk_blocks
from .errors import AutointerpError, ConfigError
from .jobs import atomic_path, atomic_write_json
from .models import hidden_size, resolve_module

__all__ = [
    "ACTIVATIONS",
    "FORMATS",
    "DictionaryConfig",
    "NeuronDictionary",
    "SparseCoder",
    "check_width",
    "dictionary_config",
    "load_dictionary",
    "load_gemmascope",
    "load_saelens",
    "load_sparsify",
    "random_topk_coder",
    "save_sparsify",
    "sparsify_folder",
    "topk_blocks",
]

log = logging.getLogger(__name__)

FORMATS = ("sparsify", "saelens", "gemmascope", "neurons")


@dataclass(frozen=True)
class DictionaryConfig:
    """How to get the latents of one hookpoint.

    ``path`` is the SAE's folder (sparsify: the hookpoint's folder, or the run folder that
    holds one folder per hookpoint), SAELens folder, or Gemma Scope ``params.npz``.
    ``k`` sparsifies neurons per token (None keeps every positive neuron).
    ``hookpoint`` is where in the model the dictionary reads, when the entry's key is only a
    label (so that an SAE and the neurons of the same layer can be interpreted side by side).
    """

    format: str = "sparsify"
    path: str | None = None
    k: int | None = None
    hookpoint: str | None = None

    def validate(self, where: str) -> None:
        if self.format not in FORMATS:
            raise ConfigError(
                f"{where}.format: unknown dictionary format '{self.format}'. Use one of {', '.join(FORMATS)}."
            )
        if self.format != "neurons" and not self.path:
            raise ConfigError(f"{where}.path: a {self.format} dictionary needs a path to its files.")
        if self.k is not None and self.k < 1:
            raise ConfigError(f"{where}.k must be at least 1, got {self.k}.")


def dictionary_config(hookpoints: dict, hookpoint: str) -> DictionaryConfig:
    """The parsed ``hookpoints.<hookpoint>`` entry of the parameters (ConfigError when there is none)."""
    if hookpoint not in (hookpoints or {}):
        raise ConfigError(f"parameters: hookpoints has no entry '{hookpoint}'.")
    return parse_config(DictionaryConfig, hookpoints[hookpoint], f"parameters: hookpoints.{hookpoint}")


# ---------------------------------------------------------------- loading


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AutointerpError(f"dictionary config '{path}' does not exist. Check the dictionary path.") from None
    except json.JSONDecodeError as e:
        raise AutointerpError(f"dictionary config '{path}' is not valid JSON ({e}). Replace the file.") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AutointerpError(f"dictionary weights '{path}' do not exist. Check the dictionary path.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise AutointerpError(
            f"dictionary weights '{path}' are truncated or malformed ({e}). Re-download or re-train them."
        ) from None


def _need(tensors: dict, keys: list[str], path: Path) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise AutointerpError(
            f"dictionary weights '{path}' lack tensors {missing} (has {sorted(tensors)}). Is the format right?"
        )


def sparsify_folder(path: str | Path, hookpoint: str) -> Path:
    """A sparsify hookpoint folder: ``path`` itself, or ``path/<hookpoint>``."""
    p = Path(path)
    if (p / "cfg.json").exists() or (p / "sae.safetensors").exists():
        return p
    if (p / hookpoint).is_dir():
        return p / hookpoint
    if not p.exists():
        raise AutointerpError(
            f"dictionary path '{p}' does not exist. Train SAEs with `kedro run --pipelines train_sae` or fix the path."
        )
    raise AutointerpError(f"dictionary path '{p}' holds neither cfg.json nor a folder '{hookpoint}'.")


def load_sparsify(path, hookpoint: str) -> SparseCoder:
    folder = sparsify_folder(path, hookpoint)
    cfg = _read_json(folder / "cfg.json")
    w = _read_safetensors(folder / "sae.safetensors")
    _need(w, ["encoder.weight", "encoder.bias", "W_dec", "b_dec"], folder / "sae.safetensors")
    transcode = bool(cfg.get("transcode", False)) or "W_skip" in w
    mlp = hookpoint if hookpoint.endswith(".mlp") else hookpoint
    reads = (mlp, "input") if transcode else (hookpoint, "output")
    return SparseCoder(
        w["encoder.weight"].T,
        w["encoder.bias"],
        w["W_dec"],
        w["b_dec"],
        activation="topk",
        k=cfg.get("k"),
        W_skip=w.get("W_skip"),
        subtract_b_dec=not transcode,
        hookpoint=hookpoint,
        reads=reads,
        writes=(hookpoint, "output"),
        source=str(folder),
    )


def random_topk_coder(d_in: int, num_latents: int, k: int, seed: int = 0, bias_scale: float = 0.05) -> SparseCoder:
    """A random TopK SAE (unit-norm tied directions, small random biases): the control
    dictionary of comparisons, and a dictionary for tests and benchmarks."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(num_latents, d_in, generator=g)
    W /= W.norm(dim=1, keepdim=True)
    b = torch.randn(num_latents, generator=g) * bias_scale
    return SparseCoder(W.T.clone(), b, W.clone(), torch.zeros(d_in), k=k)


def save_sparsify(coder: SparseCoder, folder: str | Path, extra_cfg: dict | None = None) -> Path:
    """Write a TopK coder in sparsify's layout (``cfg.json`` + ``sae.safetensors``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "encoder.weight": coder.W_enc.detach().T.contiguous().float(),
        "encoder.bias": coder.b_enc.detach().contiguous().float(),
        "W_dec": coder.W_dec.detach().contiguous().float(),
        "b_dec": coder.b_dec.detach().contiguous().float(),
    }
    if coder.W_skip is not None:
        tensors["W_skip"] = coder.W_skip.detach().contiguous().float()
    cfg = {
        "activation": "topk",
        "num_latents": coder.num_latents,
        "k": coder.k,
        "d_in": coder.d_in,
        "expansion_factor": coder.num_latents // coder.d_in,
        "normalize_decoder": True,
        "multi_topk": False,
        "skip_connection": coder.W_skip is not None,
        "transcode": coder.is_transcoder,
    }
    cfg.update(extra_cfg or {})
    with atomic_path(folder / "sae.safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / "cfg.json", cfg)
    return folder


def load_saelens(path, hookpoint: str) -> SparseCoder:
    folder = Path(path)
    if not folder.exists():
        raise AutointerpError(f"dictionary path '{folder}' does not exist. Fix the SAELens folder path.")
    cfg = _read_json(folder / "cfg.json")
    w = _read_safetensors(folder / "sae_weights.safetensors")
    _need(w, ["W_enc", "W_dec", "b_dec"], folder / "sae_weights.safetensors")
    arch = cfg.get("architecture") or (
        "topk" if cfg.get("activation_fn_str", cfg.get("activation_fn")) == "topk" else "standard"
    )
    activation = {"standard": "relu", "relu": "relu", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}.get(
        arch
    )
    if activation is None:
        raise AutointerpError(
            f"{folder / 'cfg.json'}: SAELens architecture '{arch}' is not supported (standard, topk, jumprelu, gated)."
        )
    k = (cfg.get("activation_fn_kwargs") or {}).get("k", cfg.get("k"))
    n = w["W_enc"].shape[1]
    if activation == "jumprelu":
        _need(w, ["threshold"], folder / "sae_weights.safetensors")
    if activation == "gated":
        _need(w, ["b_gate", "r_mag", "b_mag"], folder / "sae_weights.safetensors")
    b_enc = w.get("b_enc", w.get("b_gate", torch.zeros(n)))
    return SparseCoder(
        w["W_enc"],
        b_enc,
        w["W_dec"],
        w["b_dec"],
        activation=activation,
        k=k,
        threshold=w.get("threshold"),
        b_gate=w.get("b_gate"),
        r_mag=w.get("r_mag"),
        b_mag=w.get("b_mag"),
        subtract_b_dec=bool(cfg.get("apply_b_dec_to_input", activation != "jumprelu")),
        hookpoint=hookpoint,
        reads=(hookpoint, "output"),
        writes=(hookpoint, "output"),
        source=str(folder),
    )


def load_gemmascope(path, hookpoint: str) -> SparseCoder:
    p = Path(path)
    if p.is_dir():
        p = p / "params.npz"
    if not p.is_file():
        raise AutointerpError(
            f"Gemma Scope params '{p}' do not exist. Point dictionary.path at params.npz or its folder."
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            w = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float32)) for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise AutointerpError(f"Gemma Scope params '{p}' are truncated or malformed ({e}).") from None
    _need(w, ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"], p)
    return SparseCoder(
        w["W_enc"],
        w["b_enc"],
        w["W_dec"],
        w["b_dec"],
        activation="jumprelu",
        threshold=w["threshold"],
        subtract_b_dec=False,
        hookpoint=hookpoint,
        reads=(hookpoint, "output"),
        writes=(hookpoint, "output"),
        source=str(p),
    )


def load_dictionary(cfg: DictionaryConfig, hookpoint: str, model=None):
    """Load the dictionary of ``hookpoint`` (or of ``cfg.hookpoint``, when the key is a label);
    with ``model`` given, the hookpoint and the width are checked."""
    hookpoint = cfg.hookpoint or hookpoint
    if model is not None:
        resolve_module(model, hookpoint)  # an unknown hookpoint is named as the user wrote it
    if cfg.format == "neurons":
        if model is None:
            raise AutointerpError("a neuron dictionary needs the model.")
        mlp = hookpoint if hookpoint.endswith(".mlp") else f"{hookpoint}.mlp"
        down = resolve_module(model, mlp)
        proj = getattr(down, "down_proj", None) or getattr(down, "c_proj", None) or getattr(down, "fc2", None)
        if proj is None:
            raise AutointerpError(f"cannot find the MLP's output projection under '{mlp}' for the neuron baseline.")
        name = next(n for n, m in down.named_modules() if m is proj)
        return NeuronDictionary(hookpoint, f"{mlp}.{name}", proj.in_features, cfg.k)
    loader = {"sparsify": load_sparsify, "saelens": load_saelens, "gemmascope": load_gemmascope}[cfg.format]
    coder = loader(cfg.path, hookpoint)
    if model is not None:
        check_width(coder, model)
    return coder


def check_width(coder: SparseCoder, model) -> None:
    module, side = coder.reads
    width = hidden_size(model, module, side)
    if coder.d_in != width:
        raise AutointerpError(
            f"dictionary '{coder.source}' expects activations of width {coder.d_in}, but the model's "
            f"'{module}' {side} has width {width}. Is this SAE for another model or hookpoint?"
        )
