"""Batched log-probability judgements: several examples per request, P(yes) per example.

Mode ``batched`` of detection and fuzzing. One plain-text request (``continuation_logprobs``,
no chat template) per ``examples_per_prompt`` examples: the instructions and the explanation
once, then every example followed by its answer line::

    <instructions>
    Text 1: <example>
    Fires: Yes
    Text 2: <example>
    Fires: No
    ...

The log-probability of the answer token of each ``Fires:`` line is read from the one forward
pass. The answer written on each line is drawn at random (seeded, independent of the labels),
so the history an answer is conditioned on holds a random mix of Yes and No, never the truth
and never a run of one answer. When the line holds "Yes", P(yes) is that token's
probability; when it holds "No", P(yes) = 1 - P(No) (the instructions fix the answer to those
two words, so the rest of the mass is small). Prediction: P(yes) > 0.5.

Cost: the instructions are sent once per request instead of once per example, and there is no
chat template per example; ``benchmarks/score.py`` prints prompt tokens per latent per mode.
"""

from __future__ import annotations

import math

import numpy as np

ANSWER_MARK = "Fires:"
ANSWERS = (" Yes", " No")


def batched_prompt(header: str, question: str, texts: list[str], answers: list[str]) -> tuple[str, str]:
    """(prefix, continuation) of one request."""
    prefix = f"{header}\n\n{question} For each text below, the line after it answers Yes or No.\n\n"
    body = "".join(f"Text {i + 1}: {t}\n{ANSWER_MARK}{a}\n\n" for i, (t, a) in enumerate(zip(texts, answers)))
    return prefix, body


def answer_positions(tokens: list[str], n: int) -> list[int] | None:
    """Indices of the answer tokens (the token after each ``Fires:``), or None when there are
    not exactly ``n`` of them."""
    out, seen = [], ""
    for i, t in enumerate(tokens):
        if t.strip() in ("Yes", "No") and seen.rstrip().endswith(ANSWER_MARK):
            out.append(i)
        seen = (seen + t)[-32:]
    return out if len(out) == n else None


def batched_judgements(
    client, header: str, texts: list[str], question: str, per_prompt: int, rng: np.random.Generator
) -> list[tuple[int | None, float | None, str | None]]:
    """(prediction, P(yes), failure) per text, ``per_prompt`` texts per request."""
    chunks = [list(range(i, min(i + per_prompt, len(texts)))) for i in range(0, len(texts), per_prompt)]
    placed = [[ANSWERS[int(b)] for b in rng.integers(0, 2, size=len(c))] for c in chunks]
    pairs = [batched_prompt(header, question, [texts[i] for i in c], a) for c, a in zip(chunks, placed)]
    res = client.continuation_logprobs([p for p, _ in pairs], [t for _, t in pairs]) if pairs else []
    out: list[tuple[int | None, float | None, str | None]] = [(None, None, "not judged")] * len(texts)
    for c, a, r in zip(chunks, placed, res):
        err = getattr(r, "error", None)
        pos = None if err else answer_positions(list(r.tokens), len(c))
        for j, i in enumerate(c):
            if err:
                out[i] = (None, None, f"request failed: {err}")
            elif pos is None:
                out[i] = (None, None, "answer positions not found")
            else:
                p = math.exp(float(r[pos[j]]))
                p_yes = min(max(p if a[j] == " Yes" else 1.0 - p, 0.0), 1.0)
                out[i] = (int(p_yes > 0.5), p_yes, None)
    return out
