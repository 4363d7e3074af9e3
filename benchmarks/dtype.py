"""bfloat16 against float32 on this machine: the forward to a hookpoint, side by side.

    python benchmarks/dtype.py [--tokens 4096] [--reps 3] [--hookpoint layers.6]

Loads the default model in both dtypes and runs the forward stopped at ``--hookpoint``
interleaved ``--reps`` times; prints the medians (tokens/s), their ratio and what
``model.dtype: auto`` picks here (bfloat16 only where oneDNN reports native bf16 support).
"""

from __future__ import annotations

import argparse
import statistics

from cache_throughput import bare_forward

from autointerp.corpus import CorpusConfig, tokenize_corpus
from autointerp.models import ModelConfig, load_model, native_bf16, resolve_dtype


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--hookpoint", default="layers.6")
    args = ap.parse_args()
    models = {dt: load_model(ModelConfig(dtype=dt))[0] for dt in ("float32", "bfloat16")}
    _, tok = load_model(ModelConfig(dtype="float32"))
    tokens = tokenize_corpus(CorpusConfig(ctx_len=256, n_tokens=args.tokens), tok)
    points = [(args.hookpoint, "output")]
    for m in models.values():
        bare_forward(m, tokens[:8], points)  # warm-up
    rates = {dt: [] for dt in models}
    for _ in range(args.reps):  # interleaved, so both see the same machine noise
        for dt, m in models.items():
            rates[dt].append(bare_forward(m, tokens, points))
    med = {dt: statistics.median(v) for dt, v in rates.items()}
    print(f"forward to {args.hookpoint}, {tokens.size:,} tokens, medians of {args.reps} interleaved repetitions")
    for dt, r in med.items():
        print(f"  {dt}: {r:,.0f} tokens/s   (each: {[round(x) for x in rates[dt]]})")
    print(f"  bfloat16 / float32: {med['bfloat16'] / med['float32']:.2f}")
    print(f"  native bf16 here: {native_bf16('cpu')}; dtype auto picks {resolve_dtype('auto', 'cpu')}")


if __name__ == "__main__":
    main()
