"""Seconds and peak memory of comparing two SAEs by co-activation (issue 16.2).

    # the research-scale case: two 65,536-latent TopK SAEs (k=32), 1M tokens, sparse method
    python benchmarks/similarity.py --latents 65536 --tokens 1048576 --method sparse --cache-dir /tmp/sim_bench
    # the default size, both methods side by side (they must agree)
    python benchmarks/similarity.py --latents 4608 --tokens 262144 --method both

Uses the default caches ``<data-root>/03_primary/latents/<namespace>`` with ``--default-caches``;
otherwise SYNTHETIC caches of realistic statistics, written with ``LatentCacheWriter`` (in a
child process, so that the measured process's peak memory is the comparison's alone): k distinct
latents per token drawn from a heavy-tailed (Zipf 0.8) latent frequency, B = A with its latents
permuted and 25% of its activations redrawn at random. Independent draws spread co-firing over
as many pairs as possible: for the co-firing graph this is a pessimistic case (real latents
co-fire in clusters). ``--cache-dir`` keeps the caches for the next run.

Prints the time of each step, the peak traced (numpy) memory and the process's max RSS; the
pass mark of issue 16.2 is a peak under 8 GB at 65,536 latents and 1M tokens.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from autointerp import similarity as sim
from autointerp.latent_cache import LatentCache, LatentCacheWriter
from autointerp.pipelines.common import namespace


def dedupe(rng: np.random.Generator, idx: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Each row's repeated latents drawn again (from ``cdf``) until every row's latents are distinct."""
    while True:
        order = np.argsort(idx, axis=1)
        s = np.take_along_axis(idx, order, axis=1)
        dup_sorted = np.zeros_like(s, dtype=bool)
        dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
        if not dup_sorted.any():
            return idx
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        idx[dup] = np.searchsorted(cdf, rng.random(int(dup.sum())), side="right").clip(max=len(cdf) - 1)


def draw_latents(rng: np.random.Generator, cdf: np.ndarray, t: int, k: int) -> np.ndarray:
    """[t, k] distinct latents per row, each drawn from the distribution with this ``cdf``."""
    idx = np.searchsorted(cdf, rng.random((t, k)), side="right").clip(max=len(cdf) - 1)
    return dedupe(rng, idx, cdf)


def synthetic(
    root: Path,
    n_tokens: int,
    n: int = 4608,
    k: int = 32,
    ctx_len: int = 256,
    chunk_contexts: int = 64,
    shard_size: int = 1024,
    dead: int = 0,
):
    """Two caches ``root/a`` and ``root/b`` (see the module docstring); the last ``dead`` latents
    (in frequency order) of A never fire."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** 0.8
    if dead:
        p[n - dead :] = 0.0
    cdf = np.cumsum(p[rng.permutation(n)] / p.sum())
    perm = rng.permutation(n)
    cdf_b = np.cumsum(np.diff(np.r_[0.0, cdf])[np.argsort(perm)])  # B's latent perm[i] is A's latent i
    n_ctx = n_tokens // ctx_len
    chunks = -(-n_ctx // chunk_contexts)
    meta = dict(
        num_latents=n,
        ctx_len=ctx_len,
        n_contexts=n_ctx,
        chunk_contexts=chunk_contexts,
        shard_size=shard_size,
        fingerprint=f"synthetic-{n}-{k}-{n_tokens}",
    )
    import torch

    wa = LatentCacheWriter(root / "a", meta=dict(meta, hookpoint="A"), num_chunks=chunks)
    wb = LatentCacheWriter(root / "b", meta=dict(meta, hookpoint="B"), num_chunks=chunks)
    for i in range(chunks):
        t = min(chunk_contexts, n_ctx - i * chunk_contexts) * ctx_len
        idx = draw_latents(rng, cdf, t, k)
        val = (rng.random((t, k)) + 0.1).astype(np.float32)
        idx_b = perm[idx]
        redraw = rng.random((t, k)) < 0.25
        idx_b[redraw] = draw_latents(rng, cdf_b, t, k)[redraw]
        idx_b = dedupe(rng, idx_b, cdf_b)
        wa.write_chunk(i, torch.from_numpy(val), torch.from_numpy(idx))
        wb.write_chunk(i, torch.from_numpy(val), torch.from_numpy(idx_b))
    wa.finalize(), wb.finalize()


def caches(folder: Path, n_tokens: int, n: int, k: int) -> tuple[LatentCache, LatentCache]:
    try:
        a, b = LatentCache(folder / "a"), LatentCache(folder / "b")
        if (a.num_latents, a.n_tokens) == (n, n_tokens - n_tokens % a.ctx_len):
            print(f"synthetic caches reused from {folder}")
            return a, b
    except Exception:  # noqa: BLE001 - not there yet
        pass
    t0 = time.perf_counter()
    proc = mp.get_context("spawn").Process(
        target=synthetic, args=(folder, n_tokens, n, k), kwargs={"shard_size": max(1024, n // 16)}
    )
    proc.start(), proc.join()
    if proc.exitcode:
        raise SystemExit(f"writing the synthetic caches failed (exit {proc.exitcode})")
    print(f"synthetic caches written to {folder} in {time.perf_counter() - t0:.1f} s (not counted)")
    return LatentCache(folder / "a"), LatentCache(folder / "b")


def run(a: LatentCache, b: LatentCache, method: str, candidates: int | None) -> tuple[np.ndarray, np.ndarray, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "dense":
        co = sim.coactivation(a, b, progress=False)
    else:
        co = sim.sparse_coactivation(a, b, candidates=candidates, progress=False)
    jac = co.jaccard()
    t1, c1 = time.perf_counter(), time.process_time()
    rows, cols = sim.match(jac) if method == "dense" else sim.match_sparse(jac)
    t2, c2 = time.perf_counter(), time.process_time()
    vals = sim.pair_values(jac, rows, cols)
    live = vals > 0
    graph = f", {jac.nnz:,} candidate pairs" if method != "dense" else ""
    print(
        f"[{method}] co-activation{graph}: {t1 - t0:.1f} s wall, {c1 - c0:.1f} s CPU "
        f"({a.n_tokens / max(t1 - t0, 1e-9):,.0f} tokens/s)"
    )
    print(
        f"[{method}] matching: {t2 - t1:.1f} s wall, {c2 - c1:.1f} s CPU; {int(live.sum()):,} pairs with "
        f"Jaccard > 0, total Jaccard {vals.sum():.4f}, mean over them {vals[live].mean():.4f}"
    )
    return rows[live], cols[live], vals[live]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", type=int, default=4608)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=262144)
    ap.add_argument("--method", choices=["sparse", "dense", "both"], default="both")
    ap.add_argument("--candidates", type=int, default=32, help="per latent and side; 0: every co-firing pair")
    ap.add_argument("--cache-dir", default=None, help="keep the synthetic caches here (reused when they fit)")
    ap.add_argument("--default-caches", action="store_true", help="use <data-root>/03_primary/latents instead")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--a", default="layers.4")
    ap.add_argument("--b", default="layers.5")
    args = ap.parse_args()
    tmp = None
    if args.default_caches:
        a, b = (LatentCache(Path(args.data_root) / "03_primary" / "latents" / namespace(h)) for h in (args.a, args.b))
        print(f"default caches: {args.a} and {args.b}")
    else:
        folder = Path(args.cache_dir) if args.cache_dir else Path((tmp := tempfile.TemporaryDirectory()).name)
        a, b = caches(folder, args.tokens, args.latents, args.k)
    print(f"{a.n_tokens:,} tokens, {a.num_latents:,} x {b.num_latents:,} latents")
    candidates = args.candidates or None
    tracemalloc.start()
    results = {m: run(a, b, m, candidates) for m in (["sparse", "dense"] if args.method == "both" else [args.method])}
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak traced memory: {peak / 2**30:.2f} GiB; process max RSS: {rss:.2f} GiB (pass mark: 8 GB)")
    if len(results) == 2:
        (rs, cs, vs), (rd, cd, vd) = results["sparse"], results["dense"]
        same = dict(zip(rd.tolist(), cd.tolist()))
        agree = np.mean([same.get(x) == y for x, y in zip(rs.tolist(), cs.tolist())]) if len(rs) else 1.0
        print(
            f"sparse vs dense: total Jaccard {vs.sum():.4f} vs {vd.sum():.4f} "
            f"(gap {(vd.sum() - vs.sum()) / max(vd.sum(), 1e-12):.2e} of the optimum); {agree:.4f} of the sparse "
            "pairs are the dense matching's"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
