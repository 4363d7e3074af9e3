"""Cache throughput, memory and disk against the bare model forward, measured side by side.

    python benchmarks/cache_throughput.py [--tokens 65536] [--hookpoint layers.6]

Prints (a) tokens/s of the bare forward stopped at the hookpoint, (b) tokens/s of the full
cache (forward + SAE encode + sparse write), their ratio (target >= 0.9), peak memory at N and
4N tokens in separate processes (target: ratio <= 1.2) and bytes on disk per million tokens
for a 4,608-latent, k=32 SAE (target <= 150 MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from autointerp.caching import CacheConfig, CacheJob
from autointerp.corpus import CorpusConfig, tokenize_corpus
from autointerp.dictionaries import DictionaryConfig, random_topk_coder, save_sparsify
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig, load_model, run_to_capture


def make_sae(folder: Path, hookpoint: str, d=576, n=4608, k=32):
    save_sparsify(random_topk_coder(d, n, k, bias_scale=0.0), folder / hookpoint)


def bare_forward(model, tokens, hookpoint, batch_size):
    t = time.perf_counter()
    for b in range(0, len(tokens), batch_size):
        run_to_capture(model, torch.from_numpy(tokens[b:b + batch_size].astype(np.int64)), [(hookpoint, "output")])
    return tokens.size / (time.perf_counter() - t)


def cache_run(tokens, hookpoint, root: Path, saes: Path):
    job = CacheJob(hookpoint, tokens, ModelConfig(), DictionaryConfig("sparsify", str(saes)),
                   CacheConfig(chunk_contexts=32), progress=False)
    t = time.perf_counter()
    job.run(root)
    return tokens.size / (time.perf_counter() - t)


def child(args):
    """Build a cache of ``args.tokens`` tokens and report peak RSS (run in a fresh process)."""
    model, tok = load_model(ModelConfig())
    tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
    with tempfile.TemporaryDirectory() as d:
        cache_run(tokens, args.hookpoint, Path(d) / "cache", Path(args.saes))
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--hookpoint", default="layers.6")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--saes")
    args = ap.parse_args()
    if args.child:
        return child(args)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_sae(d / "saes", args.hookpoint)
        model, tok = load_model(ModelConfig())
        tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
        bare_forward(model, tokens[:8], args.hookpoint, 8)  # warm-up
        rates = {"bare": [], "cache": []}
        for rep in range(2):  # interleaved, so both see the same machine noise
            rates["bare"].append(bare_forward(model, tokens, args.hookpoint, 8))
            rates["cache"].append(cache_run(tokens, args.hookpoint, d / f"cache{rep}", d / "saes"))
        bare, cached = max(rates["bare"]), max(rates["cache"])
        cache = LatentCache(d / "cache0")
        mb_per_mtok = cache.disk_bytes() / cache.n_tokens
        print(f"tokens: {tokens.size:,} at {args.hookpoint}, SAE 4608 latents k=32, bf16, 1 process")
        print(f"(a) bare forward stopped at {args.hookpoint}: {bare:,.0f} tokens/s")
        print(f"(b) full cache (forward + encode + write):  {cached:,.0f} tokens/s")
        print(f"ratio cache / bare: {cached / bare:.3f}   (target >= 0.9)")
        print(f"disk: {mb_per_mtok:.1f} MB per million tokens per hookpoint   (target <= 150)")
        peaks = []
        for n in (args.tokens // 4, args.tokens):
            out = subprocess.run([sys.executable, __file__, "--child", "--tokens", str(n), "--hookpoint", args.hookpoint,
                                  "--saes", str(d / "saes")], capture_output=True, text=True, check=True)
            peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        print(f"peak memory: {peaks[0]:.0f} MB at {args.tokens // 4:,} tokens, {peaks[1]:.0f} MB at {args.tokens:,} tokens,"
              f" ratio {peaks[1] / peaks[0]:.3f}   (target <= 1.2)")


if __name__ == "__main__":
    main()
