"""Benchmark of the ``sample`` stage: latents sampled per second, and peak memory for 1x and
4x as many latents (target: the 4x peak at most 1.2x the 1x peak, since sampling streams
shard by shard).

    python benchmarks/sample.py [--latents 32] [--tokens 32768] [--num-latents 4608] [--embedding N] [--cache DIR]
    python benchmarks/sample.py --neurons --active-quantile 0.99   # raw MLP neurons of layers.2 (dense)

Uses the sampling configuration of conf/base/parameters_sample.yml (only ``selection.n``
changes). Without ``--cache`` it builds (once, reused afterwards) a cache of a random TopK SAE
(576 -> num-latents, k=32) at ``layers.2`` of SmolLM2 over the default corpus. Peak memory is
measured with tracemalloc (Python and numpy allocations) around the sampling alone, after the
model and the embedding model are loaded; the process's max RSS is printed too. With
``--neurons`` the cache holds the raw MLP neurons of ``layers.2.mlp`` (``k: null``, dense: about
half of all tokens per neuron) and ``--active-quantile`` sets ``sample.active_threshold``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
HOOKPOINT = {False: "layers.2", True: "layers.2.neurons"}


def build_cache(folder: Path, n_tokens: int, num_latents: int, neurons: bool = False):
    from autointerp.caching import CacheConfig, CacheJob
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus
    from autointerp.dictionaries import DictionaryConfig, random_topk_coder, save_sparsify
    from autointerp.models import ModelConfig, load_model

    _, tok = load_model(ModelConfig())
    tokens = tokenize_corpus(
        CorpusConfig(
            sources=[CorpusSource("shakespeare"), CorpusSource("python_docs")], ctx_len=256, n_tokens=n_tokens
        ),
        tok,
    )
    if neurons:
        dictionary = DictionaryConfig("neurons", hookpoint="layers.2.mlp")
    else:
        sae = folder / "saes" / "layers.2"
        if not (sae / "cfg.json").exists():
            save_sparsify(random_topk_coder(576, num_latents, k=32), sae)
        dictionary = DictionaryConfig("sparsify", str(folder / "saes"))
    CacheJob(
        HOOKPOINT[neurons], tokens, ModelConfig(), dictionary, CacheConfig(chunk_contexts=64, shard_size=1024)
    ).run(folder / "cache")
    return tokens, dictionary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latents", type=int, default=32, help="latents sampled in the 1x run")
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--num-latents", type=int, default=4608)
    ap.add_argument(
        "--embedding",
        type=int,
        default=None,
        help="override negatives.embedding (0 times the sampling without the sentence-embedding model)",
    )
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (built once, reused)")
    ap.add_argument("--neurons", action="store_true", help="raw MLP neurons of layers.2 instead of a random SAE")
    ap.add_argument("--active-quantile", type=float, default=None, help="sample.active_threshold: {quantile: Q}")
    args = ap.parse_args()
    if args.cache is None:
        args.cache = Path(tempfile.gettempdir()) / ("autointerp_bench_sample" + ("_neurons" if args.neurons else ""))

    from autointerp.config import parse_config
    from autointerp.embeddings import embed
    from autointerp.latent_cache import LatentCache
    from autointerp.models import ModelConfig, load_model
    from autointerp.sampling import SampleConfig, SampleJob

    tokens, dictionary = build_cache(args.cache, args.tokens, args.num_latents, args.neurons)
    cache = LatentCache(args.cache / "cache")
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_sample.yml").read_text())["sample"]
    if args.embedding is not None:
        params["negatives"]["embedding"] = args.embedding
        params["negatives"]["train"] = dict(params["negatives"].get("train") or {}, embedding=args.embedding)
    if args.active_quantile is not None:
        params["active_threshold"] = {"quantile": args.active_quantile}
    print(f"negatives: {params['negatives']}")
    load_model(ModelConfig())
    embed(["warm up"])
    print(f"cache: {cache.n_tokens:,} tokens, {cache.num_latents} latents, shards of {cache.shard_size}")
    results = {}
    for mult in (1, 4):
        n = args.latents * mult
        cfg = parse_config(SampleConfig, dict(params, selection=dict(params["selection"], n=n)), "parameters: sample")
        out = args.cache / f"out_{n}"
        shutil.rmtree(out, ignore_errors=True)
        job = SampleJob(HOOKPOINT[args.neurons], tokens, cache, ModelConfig(), dictionary, cfg, progress=False)
        tracemalloc.start()
        t0 = time.perf_counter()
        meta = job.run(out)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results[mult] = (n, seconds, peak, meta)
        print(
            f"{mult}x: {n} latents ({meta['n_ok']} ok) in {seconds:.1f} s = {n / seconds:.2f} latents/s, "
            f"peak traced memory {peak / 2**20:.1f} MiB"
        )
    (n1, s1, p1, _), (n4, s4, p4, _) = results[1], results[4]
    print(f"latents/s: 1x {n1 / s1:.2f}, 4x {n4 / s4:.2f}")
    print(f"peak memory ratio 4x/1x: {p4 / p1:.2f} (target <= 1.2)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS {rss:.0f} MiB (includes the models)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
