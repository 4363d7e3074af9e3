"""Every latent of one hookpoint: cache, sample (``selection.mode: all``), the statistical
explainer (``tokens``) and the embedding scorer, with latents/s per stage and peak memory.

    python benchmarks/all_latents.py [--tokens 32768] [--num-latents 2304] [--hookpoint layers.6] [--reps 1]
                                     [--embedding N] [--profile sample|explain|score] [--no-memory]

A random TopK SAE (576 -> ``--num-latents``, k=32; the default SAEs are 4 x 576 = 2304
latents) at ``--hookpoint`` of the real SmolLM2 over the default corpus (``--tokens`` tokens).
Sampling uses conf/base/parameters_sample.yml (``selection`` becomes ``mode: all``;
``--embedding`` overrides the embedding negatives, 0 leaves out the sentence-embedding model).

1. Side by side in one process, ``--reps`` times interleaved: the cache of the hookpoint
   (fresh folder each time) and the sampling of all its latents; medians and the ratio
   sample time / cache time (target <= 1).
2. Peak memory of the sampling (tracemalloc: Python and numpy allocations, after the models
   are loaded) for 1x (the first quarter of the latents, ``mode: first``) and 4x (all of them);
   the ratio 4x / 1x (target <= 1.2: sampling streams shard by shard).
3. The statistical explainer and the embedding scorer (real and shuffled explanations) over
   every ``ok`` latent: latents/s and peak memory at 1x and 4x.

``--profile STAGE`` prints the 25 costliest functions (cProfile, cumulative) of one stage.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]


def measured(func, memory: bool, profile: bool = False):
    """(result, seconds, peak traced bytes or None) of ``func()``."""
    prof = cProfile.Profile() if profile else None
    if memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    out = func()
    if prof:
        prof.disable()
    seconds = time.perf_counter() - t0
    peak = None
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return out, seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--num-latents", type=int, default=2304)
    ap.add_argument("--hookpoint", default="layers.6")
    ap.add_argument("--reps", type=int, default=1, help="interleaved cache/sample repetitions (medians)")
    ap.add_argument("--embedding", type=int, default=None, help="override negatives.embedding (and train.embedding)")
    ap.add_argument("--profile", choices=("sample", "explain", "score"), default=None)
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs (1x / 4x)")
    ap.add_argument("--folder", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    args = ap.parse_args()

    from autointerp.caching import CacheConfig, CacheJob
    from autointerp.config import parse_config
    from autointerp.corpus import CorpusConfig, tokenize_corpus
    from autointerp.dictionaries import DictionaryConfig, random_topk_coder, save_sparsify
    from autointerp.embeddings import embed
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.latent_cache import LatentCache
    from autointerp.models import ModelConfig, load_model
    from autointerp.sampling import SampleConfig, SampleJob, read_latents, read_sampled_examples
    from autointerp.scoring.runner import ScoreConfig, ScoreJob

    folder = args.folder or Path(tempfile.mkdtemp(prefix="autointerp_all_latents_"))
    h, n_lat = args.hookpoint, args.num_latents
    model, tok = load_model(ModelConfig())
    tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
    save_sparsify(random_topk_coder(576, n_lat, k=32, seed=0), folder / "saes" / h)
    dictionary = DictionaryConfig("sparsify", str(folder / "saes"))
    params = yaml.safe_load((ROOT / "conf" / "base" / "parameters_sample.yml").read_text())["sample"]
    if args.embedding is not None:
        params["negatives"]["embedding"] = args.embedding
        params["negatives"]["train"] = dict(params["negatives"].get("train") or {}, embedding=args.embedding)
    uses_embedding = bool(
        params["negatives"].get("embedding") or (params["negatives"].get("train") or {}).get("embedding")
    )
    embed(["warm up"])

    def sample_config(mode: str, n: int = 0) -> SampleConfig:
        sel = dict(params["selection"], mode=mode, n=n, eligible_only=False)
        return parse_config(SampleConfig, dict(params, selection=sel), "parameters: sample")

    def cache(root: Path) -> LatentCache:
        CacheJob(h, tokens, ModelConfig(), dictionary, CacheConfig(), progress=False).run(root)
        return LatentCache(root)

    def sample(cache_: LatentCache, cfg: SampleConfig, root: Path) -> dict:
        shutil.rmtree(root, ignore_errors=True)
        return SampleJob(h, tokens, cache_, ModelConfig(), dictionary, cfg, progress=False).run(root)

    print(f"{h}: random TopK SAE 576 -> {n_lat} (k=32), {tokens.size:,} tokens, sample negatives {params['negatives']}")
    cache(folder / "cache_warm")  # warm-up (model forward, dictionary load)
    t_cache, t_sample = [], []
    for rep in range(args.reps):  # interleaved: both see the same machine noise
        lc, s, _ = measured(lambda rep=rep: cache(folder / f"cache{rep}"), False)
        t_cache.append(s)
        meta, s, _ = measured(
            lambda lc=lc: sample(lc, sample_config("all"), folder / "sample_all"),
            False,
            args.profile == "sample" and rep == 0,
        )
        t_sample.append(s)
        print(
            f"  rep {rep}: cache {t_cache[-1]:.1f} s, sample {t_sample[-1]:.1f} s ({meta['n_ok']} ok of {meta['n_latents']})"
        )
    mc, ms = statistics.median(t_cache), statistics.median(t_sample)
    print(
        f"cache   {h}: {mc:.1f} s = {tokens.size / mc:,.0f} tokens/s = {n_lat / mc:.1f} latents/s (median of {args.reps})"
    )
    print(f"sample  all {n_lat} latents: {ms:.1f} s = {n_lat / ms:.1f} latents/s")
    print(f"        ratio sample / cache: {ms / mc:.2f}   (target <= 1)")
    lc = LatentCache(folder / "cache0")
    latents = read_latents(folder / "sample_all")
    print(
        "        statuses: " + ", ".join(f"{k.split(':')[0]} {v}" for k, v in latents["status"].value_counts().items())
    )

    def explain(root: Path, examples, table) -> dict:
        shutil.rmtree(root, ignore_errors=True)
        cfg = ExplainConfig(explainers=["tokens"], progress=False)
        return ExplainJob(h, examples, None, cfg, corpus_tokens=tokens, latents=table).run(root)

    def score(root: Path, examples, explanations, table) -> dict:
        shutil.rmtree(root, ignore_errors=True)
        cfg = ScoreConfig(scorers=["embedding"], n_bootstrap=0)
        return ScoreJob(h, examples, explanations, cfg, progress=False, latents=table).run(root)

    runs = [(4, "all", 0)] if args.no_memory else [(1, "first", n_lat // 4), (4, "all", 0)]
    peaks = {}
    for mult, mode, n in runs:
        root = folder / f"sample_{mult}x"
        memory = not args.no_memory
        if memory:
            _, s, peak = measured(lambda m=mode, k=n, r=root: sample(lc, sample_config(m, k), r), True)
            peaks["sample", mult] = peak
            print(f"sample  {mult}x: peak traced memory {peak / 2**20:.1f} MiB (run under tracemalloc: {s:.1f} s)")
        else:
            root = folder / "sample_all"
        ex, table = read_sampled_examples(root), read_latents(root)
        n_ok = int((table["status"] == "ok").sum())
        _, s, peak = measured(
            lambda r=folder / f"explain_{mult}x", e=ex, t=table: explain(r, e, t),
            memory,
            args.profile == "explain" and mult == 4,
        )
        peaks["explain", mult] = peak
        print(
            f"explain {mult}x (tokens): {n_ok} ok latents in {s:.1f} s = {n_ok / s:.1f} latents/s"
            + (f", peak traced memory {peak / 2**20:.1f} MiB" if peak else "")
        )
        expl = read_explanations(folder / f"explain_{mult}x")
        _, s, peak = measured(
            lambda r=folder / f"score_{mult}x", e=ex, x=expl, t=table: score(r, e, x, t),
            memory,
            args.profile == "score" and mult == 4,
        )
        peaks["score", mult] = peak
        print(
            f"score   {mult}x (embedding, real + shuffled): {n_ok} latents in {s:.1f} s = {n_ok / s:.1f} latents/s"
            + (f", peak traced memory {peak / 2**20:.1f} MiB" if peak else "")
        )
        print(f"        {len(ex):,} example rows ({len(ex) / max(n_ok, 1):.1f} per ok latent)")
    if not args.no_memory:
        for stage in ("sample", "explain", "score"):
            print(
                f"peak memory ratio 4x/1x {stage}: {peaks[stage, 4] / peaks[stage, 1]:.2f}"
                + ("   (target <= 1.2)" if stage == "sample" else "")
            )
    print(
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (includes the models)"
        f"; embedding model used in sampling: {uses_embedding}"
    )
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
