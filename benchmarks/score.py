"""Cost of the score stage: tokens and seconds per latent for each scorer, the ratio between
detection in log-probability mode and in generation mode, and the prompt tokens per latent of
explanation + detection + fuzzing at the paper's example counts, for each mode (``logprob``:
one prompt per example; ``generation``: parsed answers, 10 examples per prompt; ``batched``:
10 examples per plain-text request, P(yes) of each from one forward pass).

    python benchmarks/score.py [--latents 2] [--act 10] [--non 10]

Part 1 counts prompt tokens exactly (the real chat template and tokenizer; prompts are built
by the real scorers, answered by a counting stand-in) at the paper's counts: 40 training
examples for the explainer, 50 activating test examples over 10 quantiles and 50
non-activating, 32-token windows. Part 2 runs the real local model (SmolLM2-135M) on
ground-truth latents (tests/score/conftest.py) and measures tokens and seconds per latent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "score"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from autointerp.llm import LLMConfig, make_client  # noqa: E402
from autointerp.llm.base import Generation, OptionLogprobs, TokenLogprobs, Usage  # noqa: E402
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun, examples_from_frame  # noqa: E402
from autointerp.scoring.detection import DetectionConfig, DetectionScorer  # noqa: E402
from autointerp.scoring.fuzzing import FuzzingConfig, FuzzingScorer  # noqa: E402


class CountingClient:
    """Counts prompt tokens with the local client's real chat template; answers trivially."""

    def __init__(self, local):
        self.local = local
        self.usage = Usage()

    def _count(self, messages):
        for m in messages:
            self.usage.requests += 1
            self.usage.prompt_tokens += len(self.local.chat_ids(m))

    def option_logprobs(self, messages, options):
        self._count(messages)
        return [OptionLogprobs({o: -1.0 for o in options}) for _ in messages]

    def generate(self, messages, max_tokens=None, temperature=None):
        self._count(messages)
        return [Generation("1: yes") for _ in messages]

    def continuation_logprobs(self, prefixes, texts):
        """Plain text, as the local backend sends it (BOS + prefix + text), real token strings."""
        _, tok = self.local._load()
        out = []
        for p, t in zip(prefixes, texts):
            ids = tok.encode(t, add_special_tokens=False)
            self.usage.requests += 1
            self.usage.prompt_tokens += 1 + len(tok.encode(p, add_special_tokens=False)) + len(ids)
            out.append(TokenLogprobs([-0.7] * len(ids), [tok.decode([i]) for i in ids]))
        return out


def paper_windows(tokenizer, n: int, rng) -> list[dict]:
    from autointerp.corpus import shakespeare_documents

    ids = tokenizer.encode(shakespeare_documents()[2][10000:200000], add_special_tokens=False)
    starts = rng.choice(len(ids) // 32 - 1, size=n, replace=False) * 32
    out = []
    for s in starts:
        w = ids[s : s + 32]
        acts = [0.0] * 32
        acts[16] = float(rng.uniform(1, 10))
        out.append(
            {
                "tokens": [tokenizer.decode([t]) for t in w],
                "activations": acts,
                "token_ids": w,
                "max_activation": max(acts),
                "context": int(s),
                "start": 0,
            }
        )
    return out


def part1(local) -> None:
    from autointerp.explainers import ExplainConfig, build_messages

    _, tok = local._load()
    rng = np.random.default_rng(0)
    wins = paper_windows(tok, 140, rng)
    train = pd.DataFrame(wins[:40])
    test = pd.DataFrame(wins[40:])
    test["kind"] = ["activating"] * 50 + ["random"] * 50
    test["quantile"] = [i // 5 for i in range(50)] + [-1] * 50
    for i in range(50, 100):
        test.at[i, "activations"] = [0.0] * 32
    examples = examples_from_frame(test)
    expl_tokens = len(local.chat_ids(build_messages(ExplainConfig(n_examples=40), train)))
    explanation = "the word 'lord' when used as a form of address"
    print("Prompt tokens per latent at the paper's counts (40 train, 50+50 test, 32-token windows):")
    print(f"  explanation (40 examples, one prompt): {expl_tokens}")
    totals = {}
    for mode in ("generation", "logprob", "batched"):
        row = {}
        for name, scorer in (
            ("detection", DetectionScorer(DetectionConfig(mode=mode))),
            ("fuzzing", FuzzingScorer(FuzzingConfig(mode=mode))),
        ):
            c = CountingClient(local)
            out = scorer.score(explanation, examples, c, np.random.default_rng(0))
            failed = sum(r["failure"] is not None for r in out.rows)
            if failed and mode == "batched":  # the stand-in's answers are only meant for the batched reader
                print(f"  {mode} {name}: {failed} of {len(out.rows)} examples not read (answer positions)")
            row[name] = (c.usage.prompt_tokens, c.usage.requests)
        total = expl_tokens + sum(v[0] for v in row.values())
        totals[mode] = total
        print(
            f"  {mode:10s}: detection {row['detection'][0]} tokens in {row['detection'][1]} requests, "
            f"fuzzing {row['fuzzing'][0]} tokens in {row['fuzzing'][1]} requests; "
            f"explanation+detection+fuzzing = {total} (target <= 19000; reference ~38000 in 41 requests)"
        )


def part2(local, n_latents: int, n_act: int, n_non: int) -> None:
    from conftest import ground_truth_examples

    _, tok = local._load()
    ex, expl = ground_truth_examples(tok, n_act=n_act, n_non=n_non)
    keep = sorted(ex["latent"].unique())[:n_latents]
    ex, expl = ex[ex["latent"].isin(keep)].reset_index(drop=True), expl[expl["latent"].isin(keep)]
    print(
        f"\nMeasured on {n_latents} ground-truth latents, {n_act}+{n_non} examples each, real local model "
        f"({local.cfg.model}), real and control explanations:"
    )
    runs = {
        "default": ScoreConfig(),
        "detection-generation": ScoreConfig(scorers=["detection"], detection=DetectionConfig(mode="generation")),
    }
    table = []
    for label, cfg in runs.items():
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            ScoreJob("gt", ex, expl, cfg, client=local, progress=False).run(d)
            wall = time.perf_counter() - t0
            m = ScoreRun(d).metrics()
        for s, g in m.groupby("scorer"):
            name = f"{s} ({cfg.detection.mode})" if s == "detection" else s
            if name in [r[0] for r in table]:
                continue
            table.append(
                (
                    name,
                    g["prompt_tokens"].mean(),
                    g["completion_tokens"].mean(),
                    g["seconds"].mean(),
                    g[~g.control]["auroc"].mean(),
                    g[g.control]["auroc"].mean(),
                    g["n_failed"].sum() / g["n"].sum(),
                )
            )
        print(f"  run '{label}': {wall:.1f} s wall")
    print(
        f"  {'scorer':24s} {'prompt tok':>10s} {'compl tok':>10s} {'seconds':>8s} {'AUROC':>6s} {'ctrl':>6s} {'failed':>6s}"
        "   (per latent, per explanation)"
    )
    for r in table:
        print(f"  {r[0]:24s} {r[1]:10.0f} {r[2]:10.0f} {r[3]:8.2f} {r[4]:6.3f} {r[5]:6.3f} {r[6]:6.1%}")
    d = {r[0]: r for r in table}
    lp, gen = d.get("detection (logprob)"), d.get("detection (generation)")
    if lp and gen:
        print(
            f"  detection logprob / generation: seconds {lp[3] / gen[3]:.2f}, "
            f"tokens (prompt+completion) {(lp[1] + lp[2]) / (gen[1] + gen[2]):.2f} (target <= 0.33)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latents", type=int, default=2)
    ap.add_argument("--act", type=int, default=10)
    ap.add_argument("--non", type=int, default=10)
    ap.add_argument("--skip-run", action="store_true", help="only count tokens (part 1)")
    a = ap.parse_args()
    local = make_client(LLMConfig())
    part1(local)
    if not a.skip_run:
        part2(local, a.latents, a.act, a.non)


if __name__ == "__main__":
    main()
