"""Surprisal: how much does the explanation lower a base model's loss on the example?

For each example, the mean per-token log-probability of the example's text is read twice with
``continuation_logprobs``: after a prefix that states the explanation and after the same prefix
with an uninformative description. The score is the gain (explanation minus uninformative, in
nats per token); activating examples should gain more. Prediction: gain > ``threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Example, Scorer, ScorerOutput, row

PREFIX = (
    "The following is a text excerpt. A feature of a language model fires on it; the feature's "
    "description: {explanation}\nExcerpt:"
)


@dataclass(frozen=True)
class SurprisalConfig:
    uninformative: str = "various unrelated texts"
    threshold: float = 0.0  # nats per token


class SurprisalScorer(Scorer):
    name = "surprisal"
    cfg: SurprisalConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        texts = [e.text() for e in examples]
        texts = [t if t.startswith((" ", "\n")) else " " + t for t in texts]
        pre_e = PREFIX.format(explanation=explanation or "")
        pre_u = PREFIX.format(explanation=self.cfg.uninformative)
        res = client.continuation_logprobs([pre_e] * len(texts) + [pre_u] * len(texts), texts + texts)
        rows = []
        for i, e in enumerate(examples):
            a, b = res[i], res[len(texts) + i]
            err = getattr(a, "error", None) or getattr(b, "error", None)
            if err or len(a) == 0 or len(a) != len(b):
                rows.append(row(e, None, None, f"request failed: {err}" if err else "no log-probabilities"))
                continue
            gain = float(np.mean(a) - np.mean(b))
            rows.append(row(e, int(gain > self.cfg.threshold), gain))
        return ScorerOutput(rows)
