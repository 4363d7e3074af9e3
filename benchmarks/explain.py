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
python benchmarks/explain.py echoes [--data data]
    the configured LLM explainer on a complete run's sampled latents (every hookpoint, the
    first explain.max_latents each): first-try and final echoes of worked examples, other
    failures, requests, and the rows that echoed;
python benchmarks/explain.py tokens-variants [--data data] [--save f.csv | --load f.csv] [--show]
    variants of the statistical explainer's sentence on a complete default run's latents
    (training examples, corpus token counts, the sample stage's test examples and latents
    tables under --data): each variant's sentences are scored by the real embedding scorer
    through the score stage's own job (ScoreJob: example selection, shuffled control by the
    seeded derangement, per-latent AUROC), and per hookpoint the mean real-minus-control AUROC
    over latents is printed with its bootstrap 95% interval (scoring.metrics.bootstrap_ci).
    The variant is chosen on one part and reported on the other, for two splits: the MLP
    hookpoints vs the residual ones, and latents of even vs odd rank in every hookpoint.
    --save writes the per-latent table (CSV), --load reports one again without scoring.
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


# Sentence variants of the statistical explainer (``explain.tokens`` keys over the default). "old" is
# the default before phrases (issue 14): quoted tokens, share of the activation mass, no phrases.
VARIANTS: dict[str, dict] = {
    "old": {"share": True, "quote": True, "phrases": 0},
    "no_share": {"quote": True, "phrases": 0},
    "plain": {"phrases": 0},
    "default": {},
    "no_after": {"context": False},
    "phrases_3": {"phrases": 3},
    "phrases_8": {"phrases": 8},
    "before_2": {"phrase_before": 2},
    "before_3": {"phrase_before": 3},
}


def run_hookpoints(data: Path) -> list[str]:
    """The namespaces of a run's sampled hookpoints (folders with a latents table)."""
    return sorted(p.name for p in (data / "04_feature" / "examples").iterdir() if (p / "latents.parquet").exists())


def tokens_sentences(ex: pd.DataFrame, ok: set[int], counts, variants: dict[str, dict]) -> pd.DataFrame:
    """One row per (variant, latent): the statistical explainer's sentence with that variant's
    ``explain.tokens`` settings, from the latent's activating training examples."""
    from dataclasses import replace

    from autointerp.explainers import ExplainConfig, TokensExplainer

    base = ExplainConfig()
    act = ex[(ex["split"] == "train") & (ex["kind"] == "activating")]
    rows = []
    for name, kw in variants.items():
        explainer = TokensExplainer(replace(base, tokens=replace(base.tokens, **kw)))
        for lat, g in act.groupby("latent"):
            if int(lat) in ok:
                exp, failure, _ = explainer.explain(g, counts)
                rows.append({"latent": int(lat), "explainer": name, "explanation": exp, "failure": failure})
    return pd.DataFrame(rows)


def embedding_deltas(hookpoint: str, ex: pd.DataFrame, latents: pd.DataFrame, expl: pd.DataFrame) -> pd.DataFrame:
    """Per (explainer, latent): embedding-scorer AUROC with the real and the shuffled explanation
    and their difference, from the score stage's own job on the run's test examples."""
    import yaml

    from autointerp.config import parse_config
    from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun

    conf = yaml.safe_load(Path("conf/base/parameters_score.yml").read_text())["score"]
    cfg = parse_config(ScoreConfig, {**conf, "scorers": ["embedding"]}, "parameters: score")
    with tempfile.TemporaryDirectory() as d:
        ScoreJob(hookpoint, ex, expl.assign(hookpoint=hookpoint), cfg, latents=latents, progress=False).run(d)
        m = ScoreRun(d).metrics()
    m = m[m["status"] == "ok"]
    t = m.pivot_table(index=["explainer", "latent"], columns="control", values="auroc")
    t = t.rename(columns={False: "real", True: "control"}).reset_index()
    return t.assign(delta=t["real"] - t["control"])


def _ci(values) -> str:
    from autointerp.scoring.metrics import bootstrap_ci

    v, lo, hi = bootstrap_ci(list(values))
    return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def report_variants(res: pd.DataFrame, variants: list[str]) -> None:
    """Per variant: mean real-minus-control AUROC [bootstrap 95%] on the selection part and the
    held-out part of both splits (the MLP hookpoints vs the residual ones; latents of even vs odd
    rank in every hookpoint), and per hookpoint; the best variant on each selection part."""
    mlp = res["hookpoint"].str.endswith("_mlp")
    rank = res.groupby(["hookpoint", "explainer"])["latent"].rank(method="first").astype(int)
    splits = {"mlp": mlp, "half": rank % 2 == 0}
    hooks = sorted(res["hookpoint"].unique(), key=lambda h: (h.endswith("_mlp"), h))
    width = max(len(k) for k in variants)
    print("\nembedding AUROC, real minus shuffled control, mean over latents [bootstrap 95%]")
    head = ["mlp: select", "residual: held-out", "half: select", "half: held-out", *hooks]
    print(f"{'variant':{width}}  " + "  ".join(f"{h:>24}" for h in head))
    for name in variants:
        r = res["explainer"] == name
        cells = [_ci(res[r & p]["delta"]) for s in splits.values() for p in (s, ~s)]
        cells += [_ci(res[r & (res["hookpoint"] == h)]["delta"]) for h in hooks]
        print(f"{name:{width}}  " + "  ".join(f"{c:>24}" for c in cells))
    for split, part in splits.items():
        best = max(variants, key=lambda k: res[(res["explainer"] == k) & part]["delta"].mean())
        print(f"best on the selection part of split '{split}': {best}")


def tokens_variants(a) -> None:
    """The statistical explainer's sentence variants scored by the embedding scorer on a run."""
    from autointerp.examples import read_examples
    from autointerp.explainers import corpus_counts

    if a.load:
        res = pd.read_csv(a.load)
        return report_variants(res, list(dict.fromkeys(res["explainer"])))
    data = Path(a.data)
    counts = corpus_counts(np.load(data / "02_intermediate" / "corpus_tokens.npy", allow_pickle=False))
    variants = {k: VARIANTS[k] for k in (a.variants.split(",") if a.variants else VARIANTS)}
    parts, sentences = [], {}
    for ns in run_hookpoints(data):
        folder = data / "04_feature" / "examples" / ns
        ex = read_examples(folder / "examples")
        latents = pd.read_parquet(folder / "latents.parquet")
        ok = set(int(x) for x in latents.loc[latents["status"] == "ok", "latent"])
        expl = tokens_sentences(ex, ok, counts, variants)
        sentences[ns] = expl
        t0 = time.perf_counter()
        d = embedding_deltas(ns, ex, latents, expl)
        parts.append(d.assign(hookpoint=ns))
        print(
            f"{ns}: {len(ok)} latents, {len(variants)} variants scored in {time.perf_counter() - t0:.1f}s", flush=True
        )
    res = pd.concat(parts, ignore_index=True)
    if a.save:
        res.to_csv(a.save, index=False)
    report_variants(res, list(variants))
    if a.show:
        for ns, expl in sentences.items():
            print(f"\n{ns}")
            for lat, g in expl.groupby("latent"):
                print(f"  {lat:>6}: " + " | ".join(f"{r.explainer}: {r.explanation}" for r in g.itertuples()))


def echoes(a) -> None:
    """The run's LLM explainer (conf/base explain settings, greedy) on a complete run's sampled
    latents, every hookpoint: first-try and final echoes of worked examples, other failures,
    requests per explanation, and every row that echoed (no response cache)."""
    import yaml

    from autointerp.config import parse_config
    from autointerp.examples import read_examples
    from autointerp.explainers import ExplainConfig, ExplainJob, read_explanations
    from autointerp.llm import LLMConfig, make_client

    data = Path(a.data)
    ids = np.load(data / "02_intermediate" / "corpus_tokens.npy", allow_pickle=False)
    conf = yaml.safe_load(Path("conf/base/parameters_explain.yml").read_text())["explain"]
    cfg = parse_config(ExplainConfig, {**conf, "progress": False}, "parameters: explain")
    llm = LLMConfig(batch_size=a.batch)
    client = make_client(llm)
    total = {"latents": 0, "first": 0, "final": 0, "other": 0, "requests": 0}
    t0 = time.perf_counter()
    for ns in run_hookpoints(data):
        folder = data / "04_feature" / "examples" / ns
        latents = pd.read_parquet(folder / "latents.parquet")
        with tempfile.TemporaryDirectory() as d:
            ExplainJob(
                ns, read_examples(folder / "examples"), llm, cfg, client=client, corpus_tokens=ids, latents=latents
            ).run(d)
            df = read_explanations(d)
        rows = df[df.explainer != "tokens"]
        first = int(rows.echoed_first.sum())
        final = int(rows.failure.fillna("").str.startswith("echoed worked example").sum())
        other = int(rows.failure.notna().sum()) - final
        print(
            f"{ns}: {len(rows)} latents, first-try echoes {first}, final echoes {final}, other failures {other}, "
            f"requests {int(rows.attempts.sum())}"
        )
        for r in rows.itertuples():
            if r.echoes or r.failure:
                print(f"    {r.latent:>6}: echoed {r.echoes} -> {r.explanation or '(' + str(r.failure) + ')'}")
        for k, v in (("latents", len(rows)), ("first", first), ("final", final), ("other", other)):
            total[k] += v
        total["requests"] += int(rows.attempts.sum())
    print(
        f"all: {total['latents']} latents, first-try echoes {total['first']}, final echoes {total['final']}, "
        f"other failures {total['other']}, {total['requests']} requests, {time.perf_counter() - t0:.0f}s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="speed", choices=["speed", "hint", "real", "tokens-variants", "echoes"])
    ap.add_argument("--examples", help="real: a sample stage output folder, e.g. data/04_feature/examples/layers_6")
    ap.add_argument("--corpus", help="real: corpus_tokens.npy (token frequencies for the statistical explainer)")
    ap.add_argument("--latents", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--data", default="data", help="tokens-variants: the data root of a complete default run")
    ap.add_argument("--save", help="tokens-variants: write the per-latent results to this CSV")
    ap.add_argument("--load", help="tokens-variants: report the per-latent results of an earlier --save")
    ap.add_argument("--variants", help="tokens-variants: comma-separated names (default: all)")
    ap.add_argument("--show", action="store_true", help="tokens-variants: print every sentence")
    a = ap.parse_args()
    {"speed": speed, "hint": hint, "real": real, "tokens-variants": tokens_variants, "echoes": echoes}[a.what](a)


if __name__ == "__main__":
    main()
