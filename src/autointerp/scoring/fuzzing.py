"""Fuzzing: are the marked tokens the ones the explanation predicts?

Every activating test example appears once, either with its truly activating tokens marked
``<<like this>>`` (label 1) or with the same number of wrongly marked tokens, drawn among its
non-activating tokens (label 0); half and half, chosen at random. Non-activating examples
appear with as many random marks as a correct example of the latent has (label 0).
Wrong marks land only on visible tokens where the latent is silent (activation <= 0): an
example with no such token cannot be fuzzed honestly, so it is left out and counted
(``n_skipped`` in the metrics table), never marked on firing tokens and labelled wrong.
Every example draws its own marks from the one generator passed in (never reseeded per
example, unlike the reference implementation, whose "random" marks repeat); the runner
passes the same generator for real and shuffled explanations, so both see the same marks.
Modes as in detection: P(yes) per example (``logprob``), parsed batches (``generation``), or
P(yes) per example from batched requests (``batched``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import MODES, Example, Scorer, ScorerOutput, row, yes_no_judgements


@dataclass(frozen=True)
class FuzzingConfig:
    mode: str = "logprob"  # logprob | generation | batched (several examples per request, P(yes) each)
    examples_per_prompt: int = 10  # generation and batched modes
    mark_threshold: float = 0.0  # a token is truly activating when activation > threshold * example max
    max_marks: int = 5  # at most this many (strongest) tokens are marked

    def validate(self, where: str) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"{where}.mode: unknown mode '{self.mode}'. Use one of {list(MODES)}.")
        if self.examples_per_prompt < 1 or self.max_marks < 1:
            raise ConfigError(f"{where}: examples_per_prompt and max_marks must be at least 1.")
        if not 0 <= self.mark_threshold < 1:
            raise ConfigError(f"{where}.mark_threshold must be in [0, 1), got {self.mark_threshold}.")


def true_marks(ex: Example, threshold: float, max_marks: int) -> np.ndarray:
    """Positions of the strongest activating (visible) tokens."""
    a = np.asarray(ex.activations, dtype=float)
    vis = np.asarray(ex.visible)
    if a.size == 0 or a.max() <= 0:
        return np.zeros(0, dtype=int)
    pos = np.flatnonzero((a > threshold * a.max()) & (a > 0) & vis)
    return np.sort(pos[np.argsort(-a[pos], kind="stable")][:max_marks])


def silent_positions(ex: Example) -> np.ndarray:
    """Visible positions where the latent does not fire (the only places for wrong marks)."""
    a = np.asarray(ex.activations, dtype=float)
    return np.flatnonzero((a <= 0) & np.asarray(ex.visible, dtype=bool))


def fuzzable(ex: Example) -> bool:
    return len(silent_positions(ex)) > 0


def wrong_marks(ex: Example, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` visible positions where the latent does not fire, drawn without replacement."""
    free = silent_positions(ex)
    if len(free) == 0:
        raise ValueError(f"example {ex.example_id} has no visible token where the latent is silent")
    n = max(1, min(n, len(free)))
    return np.sort(rng.choice(free, size=n, replace=False))


def fuzzed_examples(
    examples: list[Example], cfg: FuzzingConfig, rng: np.random.Generator
) -> list[tuple[Example, np.ndarray, int]]:
    """(example, marks, label) for every fuzzable example (:func:`fuzzable`): the fuzzing task
    before any model sees it. Examples without a silent visible token are left out."""
    examples = [e for e in examples if fuzzable(e)]
    activating = [e for e in examples if e.label == 1]
    others = [e for e in examples if e.label == 0]
    correct = np.zeros(len(activating), dtype=bool)
    correct[rng.permutation(len(activating))[: (len(activating) + 1) // 2]] = True
    counts = [max(1, len(true_marks(e, cfg.mark_threshold, cfg.max_marks))) for e in activating] or [1]
    out = []
    for e, ok in zip(activating, correct):
        marks = true_marks(e, cfg.mark_threshold, cfg.max_marks)
        out.append((e, marks, 1) if ok and len(marks) else (e, wrong_marks(e, max(1, len(marks)), rng), 0))
    for e in others:
        out.append((e, wrong_marks(e, int(rng.choice(counts)), rng), 0))
    return [out[i] for i in rng.permutation(len(out))]


HEADER = (
    'A feature of a language model fires on some tokens. Its description: "{explanation}". '
    "In the text below, some tokens are marked between << and >>."
)
QUESTION = "Do the marked tokens match the description, that is, would the feature fire on exactly those tokens?"


class FuzzingScorer(Scorer):
    name = "fuzzing"
    cfg: FuzzingConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        items = fuzzed_examples(examples, self.cfg, rng)
        skipped = len(examples) - len(items)
        if not items:
            return ScorerOutput([], {"n_skipped": skipped})
        judged = yes_no_judgements(
            client,
            HEADER.format(explanation=explanation or ""),
            [e.text(m) for e, m, _ in items],
            QUESTION,
            self.cfg.mode,
            self.cfg.examples_per_prompt,
            rng=rng,
        )
        rows = []
        for (e, marks, label), (p, s, f) in zip(items, judged):
            r = row(e, p, s, f, marks=[int(m) for m in marks])
            r["label"] = label  # the question is whether the marks are right
            rows.append(r)
        return ScorerOutput(rows, {"n_skipped": skipped})
