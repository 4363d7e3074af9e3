"""Cache throughput, memory and disk against the bare model forward, measured side by side.

    python benchmarks/cache_throughput.py [--tokens 65536] [--reps 3] [--no-memory]

Two settings, each against the bare forward stopped at the deepest hookpoint it caches:
one hookpoint (``--single``, default ``layers.6``; target ratio >= 0.9) and six hookpoints
from one forward (``--multi``, default layers 4-6 and their MLPs; target >= 0.8). The bare
forward and both caches run interleaved ``--reps`` times in one process and the medians are
compared, so all see the same machine noise; each ratio is printed beside its arithmetic ceiling
(forward FLOPs / (forward + encoder FLOPs)). Then where a cache's time goes (forward, encoder
matmul, top-k, sparse packing and file writes), bytes on disk per million tokens for a
4,608-latent, k=32 SAE (target <= 150 MB) and peak memory at N/4 and N tokens in separate
processes (target: ratio <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from autointerp.caching import CacheConfig, CacheJob, HookpointCaches, encode_chunk
from autointerp.corpus import CorpusConfig, tokenize_corpus
from autointerp.dictionaries import DictionaryConfig, load_dictionary, random_topk_coder, save_sparsify, topk_blocks
from autointerp.latent_cache import LatentCache, LatentCacheWriter
from autointerp.models import ModelConfig, load_model, run_to_capture

SIX = "layers.4,layers.5,layers.6,layers.4.mlp,layers.5.mlp,layers.6.mlp"
CHUNK = 32


def make_saes(folder: Path, hookpoints: list[str], d=576, n=4608, k=32):
    for i, h in enumerate(hookpoints):
        save_sparsify(random_topk_coder(d, n, k, seed=i, bias_scale=0.0), folder / h)


def jobs(tokens, hookpoints, saes: Path) -> dict[str, CacheJob]:
    return {
        h: CacheJob(
            h,
            tokens,
            ModelConfig(),
            DictionaryConfig("sparsify", str(saes)),
            CacheConfig(chunk_contexts=CHUNK),
            progress=False,
        )
        for h in hookpoints
    }


def layer_index(hookpoint: str) -> int:
    return int(hookpoint.split(".")[1])


def flop_ceiling(model, hookpoints: list[str], ctx_len: int, n_latents=4608) -> tuple[float, float, float]:
    """(forward, encoders, forward / (forward + encoders)): multiply-add FLOPs per token of the
    forward through the deepest layer cached (matmul weights of those blocks plus causal attention
    scores) and of the dense TopK encoders. The cache/bare ratio cannot beat the last number
    where both run at the same FLOP rate: it is the arithmetic ceiling of the target."""
    layers = model.model.layers[: max(layer_index(h) for h in hookpoints) + 1]
    weights = sum(p.numel() for layer in layers for n, p in layer.named_parameters() if p.dim() == 2)
    d = model.config.hidden_size
    forward = 2 * weights + len(layers) * 2 * 2 * (ctx_len / 2) * d  # QK^T and AV over half the context
    encoders = len(hookpoints) * 2 * d * n_latents
    return forward, encoders, forward / (forward + encoders)


def bare_forward(model, tokens, points, batch_size=8):
    t = time.perf_counter()
    for b in range(0, len(tokens), batch_size):
        run_to_capture(model, torch.from_numpy(tokens[b : b + batch_size].astype(np.int64)), points)
    return tokens.size / (time.perf_counter() - t)


def cache_run(tokens, hookpoints, root: Path, saes: Path):
    t = time.perf_counter()
    HookpointCaches(jobs(tokens, hookpoints, saes)).run(root)
    return tokens.size / (time.perf_counter() - t)


def breakdown(model, tokenizer, tokens, hookpoints, saes: Path, root: Path) -> dict[str, float]:
    """Seconds per million tokens of each part of a cache of ``hookpoints`` (one chunk at a time)."""
    dicts = [load_dictionary(DictionaryConfig("sparsify", str(saes)), h, model) for h in hookpoints]
    points = list(dict.fromkeys(d.reads for d in dicts))
    parts = dict.fromkeys(("forward", "encoder matmul", "top-k", "encode total", "packing + writes"), 0.0)
    writers = [
        LatentCacheWriter(
            root / h,
            meta={"num_latents": d.num_latents, "shard_size": 2048, "fingerprint": "bench"},
            num_chunks=len(tokens),
        )
        for h, d in zip(hookpoints, dicts, strict=True)
    ]
    for i, c in enumerate(range(0, len(tokens), CHUNK)):
        chunk = torch.from_numpy(tokens[c : c + CHUNK].astype(np.int64))
        t0 = time.perf_counter()
        batches = [run_to_capture(model, chunk[b : b + 8], points) for b in range(0, len(chunk), 8)]
        t1 = time.perf_counter()
        # every batch's encoders, as encode_chunk runs them (until 2026-12-04 only the last batch
        # of each chunk was timed here: a quarter of the matmuls, read as "unattributed" time)
        for acts in batches:
            for d in dicts:
                x = acts[d.reads].reshape(-1, acts[d.reads].shape[-1])
                W, bias = d._low_precision_encoder(x.dtype)
                ta = time.perf_counter()
                pre = torch.addmm(bias, x, W)
                tb = time.perf_counter()
                topk_blocks(pre, d.k)
                parts["encoder matmul"] += tb - ta
                parts["top-k"] += time.perf_counter() - tb
        del batches
        t2 = time.perf_counter()
        encoded = encode_chunk(model, chunk, dicts, 8, tokenizer.bos_token_id)
        t3 = time.perf_counter()
        for w, (v, ix) in zip(writers, encoded, strict=True):
            w.write_chunk(i, v, ix)
        t4 = time.perf_counter()
        parts["forward"] += t1 - t0
        parts["encode total"] += (t3 - t2) - (t1 - t0)  # encode_chunk also runs the forward
        parts["packing + writes"] += t4 - t3
    return {k: v / tokens.size * 1e6 for k, v in parts.items()}


def child(args):
    """Build a cache of ``args.tokens`` tokens and report peak RSS (run in a fresh process)."""
    model, tok = load_model(ModelConfig())
    tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
    with tempfile.TemporaryDirectory() as d:
        cache_run(tokens, [args.single], Path(d) / "cache", Path(args.saes))
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--single", default="layers.6")
    ap.add_argument("--multi", default=SIX, help="comma-separated hookpoints cached from one forward")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--saes")
    args = ap.parse_args()
    if args.child:
        return child(args)
    multi = args.multi.split(",")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_saes(d / "saes", sorted(set(multi) | {args.single}))
        model, tok = load_model(ModelConfig())
        tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
        deepest = {"single": [(args.single, "output")], "multi": [(h, "output") for h in multi]}
        bare_forward(model, tokens[:8], deepest["multi"])  # warm-up
        rates = {k: [] for k in ("bare single", "cache single", "bare multi", "cache multi")}
        for rep in range(args.reps):  # interleaved, so all see the same machine noise
            rates["bare single"].append(bare_forward(model, tokens, deepest["single"]))
            rates["cache single"].append(cache_run(tokens, [args.single], d / f"single{rep}", d / "saes"))
            rates["bare multi"].append(bare_forward(model, tokens, deepest["multi"]))
            rates["cache multi"].append(cache_run(tokens, multi, d / f"multi{rep}", d / "saes"))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(
            f"tokens: {tokens.size:,}, SAEs 4608 latents k=32, bf16, 1 process, medians of {args.reps} "
            f"interleaved repetitions (tokens/s)"
        )
        print(f"(a) bare forward stopped at {args.single}: {med['bare single']:,.0f}")
        print(f"(b) cache of {args.single}: {med['cache single']:,.0f}")
        print(f"    ratio single / bare: {med['cache single'] / med['bare single']:.3f}   (target >= 0.9)")
        print(f"(c) bare forward stopped at the deepest of {len(multi)} hookpoints: {med['bare multi']:,.0f}")
        print(f"(d) cache of {len(multi)} hookpoints from one forward: {med['cache multi']:,.0f}")
        print(
            f"    ratio {len(multi)} hookpoints / bare: {med['cache multi'] / med['bare multi']:.3f}   (target >= 0.8)"
        )
        for name, hps in (("single", [args.single]), (f"{len(multi)} hookpoints", multi)):
            fwd, enc, ceiling = flop_ceiling(model, hps, tokens.shape[1])
            print(
                f"    FLOPs per token, {name}: forward {fwd / 1e6:.1f}M, encoders {enc / 1e6:.1f}M:"
                f" arithmetic ceiling of the ratio {ceiling:.3f}"
            )
        print(
            f"    per-repetition ratios single: {[round(c / b, 3) for c, b in zip(rates['cache single'], rates['bare single'])]}"
            f", {len(multi)}: {[round(c / b, 3) for c, b in zip(rates['cache multi'], rates['bare multi'])]}"
        )
        for name, hps in (("single", [args.single]), (f"{len(multi)} hookpoints", multi)):
            parts = breakdown(model, tok, tokens[: 4 * CHUNK], hps, d / "saes", d / f"parts_{len(hps)}")
            print(
                f"where the time goes, {name} (s per million tokens): "
                + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
            )
        cache = LatentCache(d / "single0" / args.single)
        print(f"disk: {cache.disk_bytes() / cache.n_tokens:.1f} MB per million tokens per hookpoint   (target <= 150)")
        if args.no_memory:
            return
        peaks = []
        for n in (args.tokens // 4, args.tokens):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--tokens",
                    str(n),
                    "--single",
                    args.single,
                    "--saes",
                    str(d / "saes"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        print(
            f"peak memory: {peaks[0]:.0f} MB at {args.tokens // 4:,} tokens, {peaks[1]:.0f} MB at {args.tokens:,} tokens,"
            f" ratio {peaks[1] / peaks[0]:.3f}   (target <= 1.2)"
        )


if __name__ == "__main__":
    main()
