"""Seconds and peak memory of comparing two 4,608-latent SAEs (co-activation matching + decoder baseline).

    python benchmarks/similarity.py [--data-root data] [--a layers.4] [--b layers.5] [--tokens 262144]

Uses the default caches ``<data-root>/03_primary/latents/<namespace>`` when both are built;
otherwise writes a synthetic cache of realistic size (4,608 latents, k=32, heavy-tailed latent
frequencies, B = A with permuted latents and 25% of its activations redrawn) with
``LatentCacheWriter`` into a temporary folder, and says so.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from autointerp import similarity as sim
from autointerp.latent_cache import LatentCache, LatentCacheWriter
from autointerp.pipelines.namespaces import namespace


def synthetic(root: Path, n_tokens: int, n: int = 4608, k: int = 32, ctx_len: int = 256, chunk_contexts: int = 64):
    g = torch.Generator().manual_seed(0)
    p = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 0.8
    p = (p[torch.randperm(n, generator=g)] / p.sum()).float()
    perm = torch.randperm(n, generator=g)
    n_ctx = n_tokens // ctx_len
    chunks = -(-n_ctx // chunk_contexts)
    meta = dict(num_latents=n, ctx_len=ctx_len, n_contexts=n_ctx, chunk_contexts=chunk_contexts, shard_size=1024,
                fingerprint="synthetic")
    wa = LatentCacheWriter(root / "a", meta=dict(meta, hookpoint="A"), num_chunks=chunks)
    wb = LatentCacheWriter(root / "b", meta=dict(meta, hookpoint="B"), num_chunks=chunks)
    for i in range(chunks):
        t = min(chunk_contexts, n_ctx - i * chunk_contexts) * ctx_len
        idx = torch.multinomial(p.expand(t, n), k, replacement=False, generator=g)
        val = torch.rand(t, k, generator=g) + 0.1
        idx_b = perm[idx]
        redraw = torch.rand(t, k, generator=g) < 0.25
        idx_b = torch.where(redraw, torch.randint(0, n, (t, k), generator=g), idx_b)
        wa.write_chunk(i, val, idx)
        wb.write_chunk(i, val, idx_b)
    wa.finalize(), wb.finalize()
    return LatentCache(root / "a"), LatentCache(root / "b")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--a", default="layers.4")
    ap.add_argument("--b", default="layers.5")
    ap.add_argument("--tokens", type=int, default=262144)
    args = ap.parse_args()
    roots = [Path(args.data_root) / "03_primary" / "latents" / namespace(h) for h in (args.a, args.b)]
    tmp = None
    try:
        a, b = (LatentCache(r) for r in roots)
        print(f"default caches: {args.a} and {args.b}, {a.n_tokens:,} tokens, {a.num_latents} x {b.num_latents} latents")
        rng = np.random.default_rng(0)
        W_a = W_b = None
    except Exception as e:  # noqa: BLE001
        print(f"default caches not built ({str(e).splitlines()[0]}): using a SYNTHETIC cache of {args.tokens:,} tokens, "
              "4,608 latents, k=32")
        tmp = tempfile.TemporaryDirectory()
        t0 = time.perf_counter()
        a, b = synthetic(Path(tmp.name), args.tokens)
        print(f"  (writing it took {time.perf_counter() - t0:.1f} s; not counted)")
        rng = np.random.default_rng(0)
        W_a = rng.normal(size=(4608, 576)).astype(np.float32)
        W_b = rng.normal(size=(4608, 576)).astype(np.float32)
    tracemalloc.start()
    t0 = time.perf_counter()
    co = sim.coactivation(a, b, progress=False)
    t_co = time.perf_counter() - t0
    jac = co.jaccard()
    t1 = time.perf_counter()
    rows, cols = sim.match(jac)
    t_match = time.perf_counter() - t1
    t2 = time.perf_counter()
    res = sim.compare(a, b, cfg=sim.SimilarityConfig(decoder_baseline="always"), W_dec_a=W_a, W_dec_b=W_b, progress=False)
    t_all = time.perf_counter() - t2
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"co-activation matrix: {t_co:.1f} s ({a.n_tokens / t_co:,.0f} tokens/s)")
    print(f"Hungarian matching on Jaccard ({jac.shape[0]}x{jac.shape[1]}): {t_match:.1f} s")
    print(f"full compare() (co-activation, matching, decoder baseline, summaries): {t_all:.1f} s")
    print(f"peak traced Python/numpy memory: {peak / 2**20:.0f} MiB; process max RSS: {rss:.0f} MiB")
    s = res.summary.set_index(["matching", "measure"])
    print(s[["n", "mean", "frac_above", "chance"]].to_string())
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
