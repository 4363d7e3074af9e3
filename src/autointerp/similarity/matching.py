"""One-to-one matching of latents, and the decoder-direction baseline."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment


def match(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment maximising total similarity; ``min(na, nb)`` pairs, sorted by A's latent."""
    rows, cols = linear_sum_assignment(sim, maximize=True)
    order = np.argsort(rows)
    return rows[order], cols[order]


def pair_values(mat, rows, cols) -> np.ndarray:
    """``mat[rows[i], cols[i]]`` of a dense array or a scipy sparse matrix (absent pairs: 0)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if sp.issparse(mat):
        return np.asarray(sp.csr_matrix(mat)[rows, cols]).ravel() if len(rows) else np.zeros(0, dtype=mat.dtype)
    return np.asarray(mat)[rows, cols]


def decoder_cosine(W_a: np.ndarray, W_b: np.ndarray) -> np.ndarray:
    """Cosine of every pair of decoder directions (``W_dec`` rows, [n, d])."""
    a = np.asarray(W_a, dtype=np.float32)
    b = np.asarray(W_b, dtype=np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def decoder_cosine_pairs(W_a: np.ndarray, W_b: np.ndarray, rows, cols) -> np.ndarray:
    """Cosine of the decoder directions of the given pairs only (no ``[na, nb]`` matrix)."""
    a = np.asarray(W_a, dtype=np.float32)[np.asarray(rows, dtype=np.int64)]
    b = np.asarray(W_b, dtype=np.float32)[np.asarray(cols, dtype=np.int64)]
    den = np.maximum(np.linalg.norm(a, axis=1), 1e-12) * np.maximum(np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(1) / den


def stream_kind(hookpoint: str) -> str:
    """``mlp`` for MLP outputs, ``residual`` otherwise (sparsify names)."""
    return "mlp" if hookpoint.endswith(".mlp") else "residual"


def pair_kind(a: str, b: str) -> str:
    ka, kb = stream_kind(a), stream_kind(b)
    return ka if ka == kb else "mixed"


def shares_decoder_space(W_a, W_b, a: str, b: str, mode: str) -> bool:
    if mode == "never" or W_a is None or W_b is None or W_a.shape[1] != W_b.shape[1]:
        return False
    return mode == "always" or stream_kind(a) == stream_kind(b)
