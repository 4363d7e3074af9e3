"""Detection: given the explanation, does the latent fire on this example at all?

Activating test examples (every quantile) are mixed with non-activating ones. In ``logprob``
mode each example is one short prompt and the score is P(yes) read from the first answer
token (one forward pass, no generation); in ``generation`` mode ``examples_per_prompt``
numbered examples share one prompt (the instructions and the explanation are sent once per
prompt) and the answers ``i: yes/no`` are parsed; an unreadable answer is a failure; in
``batched`` mode ``examples_per_prompt`` examples share one plain-text request and P(yes) of
each is read from the one forward pass (:mod:`.batched`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import MODES, Example, Scorer, ScorerOutput, row, yes_no_judgements


@dataclass(frozen=True)
class DetectionConfig:
    mode: str = "logprob"  # logprob | generation | batched (several examples per request, P(yes) each)
    examples_per_prompt: int = 10  # generation and batched modes

    def validate(self, where: str) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"{where}.mode: unknown mode '{self.mode}'. Use one of {list(MODES)}.")
        if self.examples_per_prompt < 1:
            raise ConfigError(f"{where}.examples_per_prompt must be at least 1.")


def detection_header(explanation: str) -> str:
    return f'A feature of a language model fires on some texts. Its description: "{explanation}".'


class DetectionScorer(Scorer):
    name = "detection"
    cfg: DetectionConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        order = rng.permutation(len(examples))  # activating and non-activating mixed within prompts
        shuffled = [examples[i] for i in order]
        judged = yes_no_judgements(
            client,
            detection_header(explanation or ""),
            [e.text() for e in shuffled],
            "Does the feature fire on this text?",
            self.cfg.mode,
            self.cfg.examples_per_prompt,
            rng=rng,
        )
        return ScorerOutput([row(e, p, s, f) for e, (p, s, f) in zip(shuffled, judged)])
