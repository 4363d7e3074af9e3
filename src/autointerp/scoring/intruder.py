"""Intruder: which of these examples does not belong? (No explanation: a score of the latent.)

Each trial shows ``n_activating`` activating examples of the latent and one non-activating
example, in random order, numbered; the answer is read as the most likely number among the
options ("logprob", ``option_logprobs``) or parsed from a short answer ("generation").
Per trial row: label 1, prediction 1 when the intruder was found, score = P(intruder).
Per latent, ``accuracy`` is the intruder detection rate (chance: 1 / (n_activating + 1)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import MODES, Example, Scorer, ScorerOutput, normalised_probs, row, user


@dataclass(frozen=True)
class IntruderConfig:
    mode: str = "logprob"
    n_activating: int = 4
    n_trials: int = 5

    def validate(self, where: str) -> None:
        if self.mode not in MODES[:2]:
            raise ConfigError(f"{where}.mode: unknown mode '{self.mode}'. Use one of {list(MODES[:2])}.")
        if not 2 <= self.n_activating <= 8:
            raise ConfigError(f"{where}.n_activating must be between 2 and 8.")


class IntruderScorer(Scorer):
    name = "intruder"
    uses_explanation = False
    two_class = False  # every trial row is label 1: accuracy is the intruder detection rate
    cfg: IntruderConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        act = [e for e in examples if e.label == 1]
        non = [e for e in examples if e.label == 0]
        k = self.cfg.n_activating
        if len(act) < k or not non:
            return ScorerOutput([])
        trials = []
        for _ in range(self.cfg.n_trials):
            shown = [act[i] for i in rng.choice(len(act), size=k, replace=False)]
            intruder = non[int(rng.integers(len(non)))]
            at = int(rng.integers(k + 1))
            shown.insert(at, intruder)
            listing = "\n".join(f"{i + 1}. {e.text()}" for i, e in enumerate(shown))
            trials.append(
                (
                    intruder,
                    at,
                    user(
                        f"Here are {k + 1} numbered texts. All but one share a common pattern; one text, the intruder, "
                        f"does not fit.\n\n{listing}\n\nWhich text is the intruder? Answer with its number only."
                    ),
                )
            )
        options = [str(i + 1) for i in range(k + 1)]
        rows = []
        if self.cfg.mode == "logprob":
            res = client.option_logprobs([t[2] for t in trials], options=options)
            for (intr, at, _), lp in zip(trials, res):
                p = None if getattr(lp, "error", None) else normalised_probs(lp, options)
                if p is None:
                    rows.append(
                        row(intr, None, None, f"request failed: {lp.error}" if lp.error else "no log-probabilities")
                    )
                else:
                    rows.append(row(intr, int(np.argmax(p) == at), float(p[at])))
        else:
            gens = client.generate([t[2] for t in trials], max_tokens=4, temperature=0.0)
            for (intr, at, _), g in zip(trials, gens):
                m = re.search(r"\d+", g.text or "")
                if g.error or not m or not 1 <= int(m.group()) <= k + 1:
                    rows.append(
                        row(intr, None, None, f"request failed: {g.error}" if g.error else "unparseable answer")
                    )
                else:
                    rows.append(row(intr, int(int(m.group()) - 1 == at), None))
        for i, r in enumerate(rows):
            r["label"] = 1
            r["example_id"] = f"{r['example_id']}/trial{i}"
        return ScorerOutput(rows)
