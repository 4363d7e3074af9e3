"""Simulation (Bills et al. 2023): the model predicts, for every token, an activation 0..9.

Read from log-probabilities, never generated: one prompt per (example, token) shows the
example with that token marked, and the prediction is the expected value over the options
"0".."9" of their renormalised probabilities (``option_logprobs``). The scale is 0..9, not the
paper's 0..10, so that every option is one digit, a single token in every common tokenizer,
and no option is a prefix of another: with "10" an option, P(first token "1") would already
contain P("10") and the expected value would count it twice. True activations are scaled to
the same 0..9 (9 = the largest activation among the scored examples).
That is ``len(window)`` short prompts per example: the expensive, older scorer, kept for
comparison (off by default; ``max_examples`` bounds it).
Score per latent: Pearson correlation between predicted and true activations over all tokens
of the scored examples (``correlation``); per example: the maximum predicted activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Example, Scorer, ScorerOutput, normalised_probs, row, user
from .metrics import pearson

OPTIONS = [str(i) for i in range(10)]  # one digit each: no option is a prefix of another
TOP = len(OPTIONS) - 1


@dataclass(frozen=True)
class SimulationConfig:
    max_examples: int = 6  # activating and non-activating examples scored (half each), per latent
    threshold: float = 3.0  # example predicted activating when its max predicted activation > threshold


class SimulationScorer(Scorer):
    name = "simulation"
    cfg: SimulationConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        act = [e for e in examples if e.label == 1]
        non = [e for e in examples if e.label == 0]
        half = max(1, self.cfg.max_examples // 2)
        chosen = [act[i] for i in sorted(rng.permutation(len(act))[:half])] + [
            non[i] for i in sorted(rng.permutation(len(non))[:half])
        ]
        prompts, where = [], []
        for k, e in enumerate(chosen):
            for pos, vis in enumerate(e.visible):
                if not vis:
                    continue
                prompts.append(
                    user(
                        f'A feature of a language model fires on some tokens. Its description: "{explanation or ""}".\n\n'
                        f"Text: {e.text([pos])}\n\nHow strongly does the feature fire on the token marked between << and >>, "
                        f"from 0 (not at all) to {TOP} (as strongly as it ever does)? Answer with one digit."
                    )
                )
                where.append((k, pos))
        res = client.option_logprobs(prompts, options=OPTIONS) if prompts else []  # AutointerpError: stop
        preds = [dict() for _ in chosen]
        fails = [None] * len(chosen)
        for (k, pos), lp in zip(where, res):
            p = None if getattr(lp, "error", None) else normalised_probs(lp, OPTIONS)
            if p is None:
                fails[k] = f"request failed: {lp.error}" if getattr(lp, "error", None) else "no log-probabilities"
            else:
                preds[k][pos] = float(p @ np.arange(len(OPTIONS)))
        vmax = max([max(e.activations) for e in chosen] + [1e-9])
        xs, ys, rows = [], [], []
        for e, pr, f in zip(chosen, preds, fails):
            if f is not None or not pr:
                rows.append(row(e, None, None, f or "no tokens"))
                continue
            for pos, v in pr.items():
                xs.append(v)
                ys.append(TOP * max(e.activations[pos], 0.0) / vmax)
            m = max(pr.values())
            rows.append(row(e, int(m > self.cfg.threshold), m))
        return ScorerOutput(rows, {"correlation": pearson(xs, ys)})
