"""Explain benchmarks with the local backend (SmolLM2 by default), no response cache.

python benchmarks/explain.py speed [--latents 8] [--batch 8] [--max-tokens 48]
    explanations per minute and tokens per explanation, batch 1 vs --batch (and the
    statistical explainer's latents per second);
python benchmarks/explain.py hint [--latents 8]
    the LLM explainer with and without the statistical hint (explain.hint), on known-answer
    latents built from real text: each fires exactly on one frequent word of a Shakespeare
    play (seeded choice, no stop words, no worked-example word). Prints per setting: the
    hit rate (the explanation names the word), echoed worked examples, other failures,
    prompt tokens, and the statistical explainer's own hit rate. Deterministic (greedy).
python benchmarks/explain.py real --examples data/04_feature/examples/layers_6 \
        --corpus data/02_intermediate/corpus_tokens.npy [--latents 8]
    the same on a run's own sampled latents (no ground truth): echoed worked examples, other
    failures, and how often the LLM names one of the tokens the statistical explainer found.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STOP = set(
    "the and of to a in that is it you he his her i my me for with not be this but your as have so "
    "what all will do thou him by shall we no are our thy if or on they was at from thee lord king".split()
)


def play_ids(tokenizer, chars: int = 300_000) -> np.ndarray:
    from autointerp.corpus import shakespeare_documents

    text = " ".join(shakespeare_documents()[0].split())[:chars]
    return np.asarray(tokenizer.encode(text, add_special_tokens=False))


def windows(tokenizer, ids: np.ndarray, positions, latent: int, n: int, rng, kind="activating", split="train"):
    from autointerp.examples import TokenStrings

    strings = TokenStrings(tokenizer)
    rows = []
    for p in positions[:n]:
        lo = int(np.clip(p - 24, 0, len(ids) - 32))
        w = ids[lo : lo + 32].tolist()
        acts = [float(rng.uniform(2, 10)) if (kind == "activating" and i == ids[p]) else 0.0 for i in w]
        rows.append(
            dict(
                hookpoint="bench",
                latent=latent,
                split=split,
                kind=kind,
                quantile=0,
                context=int(p),
                start=lo,
                token_ids=w,
                tokens=strings.window(w),
                activations=acts,
                max_activation=max(acts),
                marked=0,
                example_id=f"{latent}-{p}",
            )
        )
    return rows


def known_answer_examples(tokenizer, n_latents: int, n_train: int = 20, seed: int = 0):
    """(examples, {latent: word}): latents that fire on exactly one frequent word's token."""
    ids = play_ids(tokenizer)
    counts = np.bincount(ids)
    cands = []
    for t in np.argsort(-counts)[:600]:
        s = tokenizer.decode([int(t)])
        if (
            s.startswith(" ")
            and re.fullmatch(r"[a-z]{3,}", s.strip())
            and s.strip() not in STOP
            and counts[t] >= n_train + 5
        ):
            cands.append(int(t))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(cands, size=min(n_latents, len(cands)), replace=False).tolist())
    rows, words = [], {}
    for lat, t in enumerate(chosen):
        pos = rng.permutation(np.flatnonzero(ids == t))
        rows += windows(tokenizer, ids, pos, lat, n_train, rng)
        words[lat] = tokenizer.decode([t]).strip()
    return pd.DataFrame(rows), words, ids


def speed(a) -> None:
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.llm import LLMConfig, make_client
    from autointerp.models import ModelConfig, load_model

    _, tok = load_model(ModelConfig())
    ex, _, ids = known_answer_examples(tok, a.latents)
    results = {}
    for batch in (1, a.batch):
        llm = LLMConfig(batch_size=batch)
        cfg = ExplainConfig(
            explainers=["default"], n_examples=20, max_tokens=a.max_tokens, batch_latents=batch, progress=False
        )
        client = make_client(llm)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            ExplainJob("bench", ex, llm, cfg, client=client).run(d)
            dt = time.perf_counter() - t0
            df = read_explanations(d)
        u = client.usage
        results[batch] = per_min = len(df) / dt * 60
        print(
            f"batch {batch:>2}: {per_min:6.1f} explanations/min, "
            f"{(u.prompt_tokens + u.completion_tokens) / len(df):6.0f} tokens/explanation "
            f"({u.prompt_tokens / len(df):.0f} prompt + {u.completion_tokens / len(df):.0f} completion), "
            f"{df.failure.notna().mean():.0%} failures"
        )
    print(f"batching speed-up: {results[a.batch] / results[1]:.2f}x")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ExplainJob(
            "bench", ex, LLMConfig(), ExplainConfig(explainers=["tokens"], progress=False), corpus_tokens=ids
        ).run(d)
        print(f"statistical explainer: {a.latents / (time.perf_counter() - t0):.0f} latents/s (job incl. I/O)")


def named(explanation: str | None, word: str) -> bool:
    return bool(explanation) and re.search(rf"\b{re.escape(word)}\b", explanation, re.IGNORECASE) is not None


def hint(a) -> None:
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.llm import LLMConfig, make_client
    from autointerp.models import ModelConfig, load_model

    _, tok = load_model(ModelConfig())
    ex, words, ids = known_answer_examples(tok, a.latents)
    llm = LLMConfig(batch_size=a.batch)
    print(f"{a.latents} known-answer latents (words: {', '.join(words.values())}); explainer {llm.model}")
    for use_hint in (False, True):
        cfg = ExplainConfig(
            explainers=["default", "tokens"],
            hint=use_hint,
            n_examples=20,
            max_tokens=a.max_tokens,
            batch_latents=a.batch,
            progress=False,
        )
        client = make_client(llm)
        with tempfile.TemporaryDirectory() as d:
            ExplainJob("bench", ex, llm, cfg, client=client, corpus_tokens=ids).run(d)
            df = read_explanations(d)
        llm_rows = df[df.explainer == "default"]
        hits = sum(named(r.explanation, words[r.latent]) for r in llm_rows.itertuples())
        echoes = int(llm_rows.failure.fillna("").str.startswith("echoed").sum())
        other = int(llm_rows.failure.notna().sum()) - echoes
        stat = df[df.explainer == "tokens"]
        stat_hits = sum(named(r.explanation, words[r.latent]) for r in stat.itertuples())
        print(
            f"hint={str(use_hint):5}: LLM names the word {hits}/{len(llm_rows)}, echoed worked example {echoes}, "
            f"other failures {other}, prompt tokens/latent {llm_rows.prompt_tokens.mean():.0f}; "
            f"statistical explainer names it {stat_hits}/{len(stat)}"
        )
        for r in llm_rows.itertuples():
            print(f"    {words[r.latent]:>10}: {r.explanation or '(' + str(r.failure) + ')'}")


def real(a) -> None:
    """Hint vs no hint on a run's own sampled latents (``--examples`` folder of the sample stage,
    ``--corpus`` its corpus_tokens.npy): echoes, failures, and how often the LLM's explanation
    names one of the tokens the statistical explainer found (no ground truth on real latents)."""
    import json

    from autointerp.examples import read_examples
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.llm import LLMConfig, make_client

    ex = read_examples(Path(a.examples) / "examples" if (Path(a.examples) / "examples").is_dir() else a.examples)
    ids = np.load(a.corpus, allow_pickle=False) if a.corpus else None
    llm = LLMConfig(batch_size=a.batch)
    for use_hint in (False, True):
        cfg = ExplainConfig(
            explainers=["default", "tokens"],
            hint=use_hint,
            max_latents=a.latents,
            max_tokens=a.max_tokens,
            batch_latents=a.batch,
            progress=False,
        )
        with tempfile.TemporaryDirectory() as d:
            ExplainJob("real", ex, llm, cfg, client=make_client(llm), corpus_tokens=ids).run(d)
            df = read_explanations(d)
        stat = {r.latent: json.loads(r.raw) for r in df[df.explainer == "tokens"].itertuples()}
        rows = df[df.explainer == "default"]
        echoes = int(rows.failure.fillna("").str.startswith("echoed").sum())
        agree = sum(
            any(
                t["token"].strip().lower() in (r.explanation or "").lower()
                for t in stat[r.latent]["named"]
                if t["token"].strip()
            )
            for r in rows.itertuples()
        )
        print(
            f"hint={str(use_hint):5}: {len(rows)} latents, echoed worked example {echoes}, "
            f"other failures {int(rows.failure.notna().sum()) - echoes}, names a top token {agree}/{len(rows)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="speed", choices=["speed", "hint", "real"])
    ap.add_argument("--examples", help="real: a sample stage output folder, e.g. data/04_feature/examples/layers_6")
    ap.add_argument("--corpus", help="real: corpus_tokens.npy (token frequencies for the statistical explainer)")
    ap.add_argument("--latents", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    a = ap.parse_args()
    {"speed": speed, "hint": hint, "real": real}[a.what](a)


if __name__ == "__main__":
    main()
