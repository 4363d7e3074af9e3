"""Fixtures of the similarity tests: small real caches written with the cache's own writer."""

from __future__ import annotations

import numpy as np
import torch

from autointerp.latent_cache import LatentCache, LatentCacheWriter


def write_cache(
    root,
    hookpoint: str,
    values: np.ndarray,
    indices: np.ndarray,
    *,
    ctx_len: int,
    chunk_contexts: int,
    shard_size: int,
    num_latents: int,
) -> LatentCache:
    """A complete cache from per-token sparse latents ``values/indices`` [n_tokens, m]."""
    n_tok = values.shape[0]
    n_ctx = n_tok // ctx_len
    per_chunk = chunk_contexts * ctx_len
    num_chunks = -(-n_ctx // chunk_contexts)
    meta = {
        "hookpoint": hookpoint,
        "num_latents": num_latents,
        "ctx_len": ctx_len,
        "n_contexts": n_ctx,
        "chunk_contexts": chunk_contexts,
        "shard_size": shard_size,
        "fingerprint": "test",
    }
    w = LatentCacheWriter(root, meta=meta, num_chunks=num_chunks)
    for i in range(num_chunks):
        sl = slice(i * per_chunk, min((i + 1) * per_chunk, n_tok))
        w.write_chunk(i, torch.from_numpy(values[sl]), torch.from_numpy(indices[sl]))
    w.finalize()
    return LatentCache(root)


def random_sparse(rng, n_tok: int, num_latents: int, k: int, zipf: float = 1.1):
    """k distinct latents per token, drawn with a heavy-tailed frequency (like a real SAE)."""
    p = 1.0 / np.arange(1, num_latents + 1) ** zipf
    p = p[rng.permutation(num_latents)]
    p /= p.sum()
    idx = np.stack([rng.choice(num_latents, k, replace=False, p=p) for _ in range(n_tok)]).astype(np.int64)
    val = rng.random((n_tok, k)).astype(np.float32) + 0.1
    return val, idx


def twin_caches(
    root,
    n_tokens: int,
    num_latents: int,
    k: int = 32,
    *,
    ctx_len: int = 256,
    chunk_contexts: int = 16,
    shard_size: int = 1024,
    dead: int = 0,
):
    """Two caches of realistic statistics, written by ``benchmarks/similarity.py``'s generator
    (k distinct latents per token, Zipf-distributed frequencies; B = A permuted with 25% of its
    activations redrawn), optionally with ``dead`` latents of A that never fire (moved to B's
    side as extra activations of another latent)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "similarity.py"
    spec = importlib.util.spec_from_file_location("benchmark_similarity", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.synthetic(
        Path(root),
        n_tokens,
        num_latents,
        k,
        ctx_len=ctx_len,
        chunk_contexts=chunk_contexts,
        shard_size=shard_size,
        dead=dead,
    )
    return LatentCache(Path(root) / "a"), LatentCache(Path(root) / "b")
