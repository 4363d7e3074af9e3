"""The training job: its fingerprint per SAE, what is up to date in a folder (a saved SAE must
be whole and of the configured shapes), and the folder's files (sparsify layout + report)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from ..config import as_dict
from ..dictionaries import SparseCoder, save_sparsify
from ..jobs import array_digest, atomic_write_json, digest
from ..models import ModelConfig
from .config import TrainConfig

log = logging.getLogger(__name__)

REPORT = "train_report.json"


def hookpoint_seed(seed: int, hookpoint: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{hookpoint}".encode()).digest()[:6], "little")


@dataclass
class TrainJob:
    """Everything needed to (re)train the SAEs; run by the catalog's dataset (``run(root)``)."""

    tokens: np.ndarray
    model: ModelConfig
    train: TrainConfig
    progress: bool = True

    def fingerprint(self, hookpoint: str) -> str:
        """Identity of one SAE: what it was trained on and how (not which others trained along)."""
        train = as_dict(self.train.for_hookpoint(hookpoint))  # only this SAE's own overrides count
        for key in ("hookpoints", "log_every", "overrides"):
            train.pop(key)
        return digest(
            {
                "hookpoint": hookpoint,
                "train": train,
                "tokens": array_digest(self.tokens),
                "model": as_dict(self.model) | {"batch_size": 0},
            }
        )

    def pending(self, root: str | Path) -> list[str]:
        """Hookpoints whose saved SAE is missing, broken or was trained with another configuration."""
        out = []
        for h in self.train.hookpoints:
            report = read_report(Path(root) / h)
            if report is None or report.get("fingerprint") != self.fingerprint(h):
                out.append(h)
            elif (problem := saved_sae_problem(Path(root) / h, report, self.train.for_hookpoint(h))) is not None:
                log.warning("SAE %s: %s; re-training it", h, problem)
                out.append(h)
        return out

    def run(self, root: str | Path) -> dict[str, dict]:
        from .fit import train_saes  # fit.py builds on this module

        return train_saes(root, self)


def read_report(folder: str | Path) -> dict | None:
    p = Path(folder) / REPORT
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def saved_sae_problem(folder: Path, report: dict, cfg: TrainConfig) -> str | None:
    """Why the SAE saved in ``folder`` cannot be used (None: its files are whole and of the
    configured shapes). Reads only the safetensors header, which also checks the file's size."""
    path = folder / "sae.safetensors"
    if not path.is_file():
        return f"{path} is missing"
    try:
        with safe_open(str(path), "pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        return f"{path} is truncated or malformed ({e})"
    d_in = int(report.get("d_in") or 0)
    n = cfg.latents_for(d_in)
    want = {"encoder.weight": (n, d_in), "encoder.bias": (n,), "W_dec": (n, d_in), "b_dec": (d_in,)}
    for name, shape in want.items():
        if shapes.get(name) != shape:
            return f"{path}: {name} has shape {shapes.get(name)}, expected {shape}"
    try:
        k = json.loads((folder / "cfg.json").read_text()).get("k")
    except (OSError, ValueError, AttributeError) as e:
        return f"{folder / 'cfg.json'} is missing or malformed ({e})"
    if k != cfg.k:
        return f"{folder / 'cfg.json'}: k is {k}, expected {cfg.k}"
    return None


def read_reports(root: str | Path) -> dict[str, dict]:
    """Training reports of every SAE under ``root`` (hookpoint -> report); {} when none."""
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for p in sorted(root.rglob(REPORT)):
        report = read_report(p.parent)
        if report is not None:
            out[report.get("hookpoint", p.parent.name)] = report
    return out


def save_trained(folder: Path, coder: SparseCoder, report: dict) -> None:
    """Write one SAE in sparsify's layout; its report goes last and marks it complete."""
    old = folder / REPORT
    if old.exists():
        old.unlink()
    save_sparsify(coder, folder, {"hookpoint": report["hookpoint"], "trained_by": "autointerp"})
    atomic_write_json(folder / REPORT, report, indent=1)
