"""What every scorer shares: examples, example text with marks, yes/no judgements, result rows.

A scorer is a small class with ``score(explanation, examples, client, rng) -> ScorerOutput``;
it never raises for a model's bad answer or a failed request (the client returns those as
values with ``error`` set): the example gets ``failure`` set (``prediction`` and ``score``
None) and is counted as failed by the metrics. An
:class:`~autointerp.errors.AutointerpError` raised by the client means the server or model is
unusable (unreachable, wrong model, refused key): scorers never catch it, it stops the stage.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..examples import display_text

log = logging.getLogger(__name__)

ACTIVATING = "activating"

MODES = ("logprob", "generation", "batched")


@dataclass
class Example:
    """One test window of one latent."""

    example_id: str
    kind: str
    quantile: int
    tokens: list[str]
    activations: list[float]

    @property
    def label(self) -> int:
        return int(self.kind == ACTIVATING)

    @cached_property
    def shown(self) -> list[str]:
        """What a prompt shows of each token (control tokens as placeholders such as
        ``[im_start]``, see :func:`autointerp.examples.display_text`), computed once."""
        return [display_text(t) for t in self.tokens]

    @property
    def visible(self) -> list[bool]:
        """Tokens that show something (empty strings are hidden)."""
        return [t != "" for t in self.shown]

    def text(self, marks: list[int] | np.ndarray | None = None) -> str:
        """The window's text; tokens at ``marks`` positions are wrapped in ``<<`` ``>>``
        (consecutive marked tokens share one pair)."""
        marked = set(int(m) for m in (marks if marks is not None else []))
        out, inside = [], False
        for i, tok in enumerate(self.shown):
            if not tok:
                continue
            if i in marked and not inside:
                out.append("<<")
                inside = True
            elif i not in marked and inside:
                out.append(">>")
                inside = False
            out.append(tok)
        if inside:
            out.append(">>")
        return display_text("".join(out))  # also a control token spelled across several tokens


def examples_from_frame(df) -> list[Example]:
    """Examples from rows of the ``{namespace}.examples`` table (one latent, test split)."""
    out = []
    for r in df.itertuples(index=False):
        out.append(
            Example(
                example_id=f"{int(r.context)}:{int(r.start)}",
                kind=str(r.kind),
                quantile=int(r.quantile),
                tokens=[str(t) for t in r.tokens],
                activations=[float(a) for a in r.activations],
            )
        )
    return out


def row(ex: Example, prediction: int | None, score: float | None, failure: str | None = None, **extra) -> dict:
    """One per-example result (the ``{namespace}.scores`` columns a scorer fills)."""
    if failure is not None:
        prediction, score = None, None
    if score is not None and not math.isfinite(score):
        score = None
    return {
        "example_id": ex.example_id,
        "kind": ex.kind,
        "quantile": ex.quantile,
        "label": ex.label,
        "prediction": None if prediction is None else int(prediction),
        "score": score,
        "failure": failure,
        **extra,
    }


@dataclass
class ScorerOutput:
    rows: list[dict]
    extra: dict[str, float] = field(default_factory=dict)  # per-latent metrics beyond the standard ones


class Scorer:
    """Base class. ``uses_explanation``: False for scorers of the latent itself (intruder),
    which therefore have no shuffled-explanation control. ``uses_client``: needs an LLM.
    ``two_class``: False for scorers whose rows are all label 1 (intruder trials)."""

    name = ""
    uses_explanation = True
    uses_client = True
    two_class = True  # rows carry labels 1 and 0 (a unit whose scored rows lack one has no metric)

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        raise NotImplementedError


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def user(content: str) -> list[dict]:
    return [{"role": "user", "content": content}]


def normalised_probs(logprobs: dict[str, float] | None, options: list[str]) -> np.ndarray | None:
    """Probabilities of ``options`` renormalised over the options; None if unusable."""
    if not logprobs:
        return None
    lp = np.array(
        [logprobs.get(o, -math.inf) if logprobs.get(o) is not None else -math.inf for o in options], dtype=float
    )
    if not np.isfinite(lp).any():
        return None
    lp = lp - lp[np.isfinite(lp)].max()
    p = np.exp(lp)
    return p / p.sum()


_ANSWER_LINE = re.compile(r"(\d+)\s*[:.)\-]?\s*\**\s*(yes|no|true|false|1|0)\b", re.IGNORECASE)
_LIST = re.compile(r"\[([^\[\]]*)\]")


def parse_yes_no_list(text: str, n: int) -> list[int | None]:
    """Answers for items 1..n from ``"1: yes\\n2: no"`` lines or a list ``[1, 0, ...]``;
    None where an item has no readable answer."""
    answers: list[int | None] = [None] * n
    for m in _ANSWER_LINE.finditer(text or ""):
        i = int(m.group(1)) - 1
        if 0 <= i < n and answers[i] is None:
            answers[i] = int(m.group(2).lower() in ("yes", "true", "1"))
    if all(a is None for a in answers):
        for m in _LIST.finditer(text or ""):
            items = [s.strip().strip("'\"").lower() for s in m.group(1).split(",") if s.strip()]
            vals = [1 if s in ("1", "yes", "true") else 0 if s in ("0", "no", "false") else None for s in items]
            if len(vals) == n and all(v is not None for v in vals):
                return vals
    return answers


def yes_no_judgements(
    client,
    header: str,
    texts: list[str],
    question: str,
    mode: str,
    per_prompt: int,
    max_tokens_per_item: int = 6,
    rng: np.random.Generator | None = None,
) -> list[tuple[int | None, float | None, str | None]]:
    """Ask, for every text, the yes/no ``question`` about it given ``header`` (the explanation
    and instructions, written once per prompt). Returns (prediction, P(yes) or None, failure).

    ``logprob``: one short prompt per text; P(yes) = P("Yes") / (P("Yes") + P("No")) read from
    the first answer token, prediction = P(yes) > 0.5.
    ``generation``: ``per_prompt`` numbered texts per prompt; the model answers ``i: yes/no``
    per line; unreadable items are failures.
    ``batched``: ``per_prompt`` texts per request, P(yes) per text from one forward pass
    (:mod:`.batched`; ``rng`` draws the answers written in the prompt).
    """
    out: list[tuple[int | None, float | None, str | None]] = []
    if mode == "logprob":
        prompts = [user(f"{header}\n\nText: {t}\n\n{question} Answer Yes or No.") for t in texts]
        results = client.option_logprobs(prompts, options=["Yes", "No"])  # an AutointerpError stops the stage
        for lp in results:
            if getattr(lp, "error", None):
                out.append((None, None, f"request failed: {lp.error}"))
                continue
            p = normalised_probs(lp, ["Yes", "No"])
            out.append((None, None, "no log-probabilities") if p is None else (int(p[0] > 0.5), float(p[0]), None))
        return out
    if mode == "batched":
        from .batched import batched_judgements

        return batched_judgements(
            client, header, texts, question, per_prompt, rng if rng is not None else np.random.default_rng(0)
        )
    if mode != "generation":
        raise ValueError(f"unknown mode {mode!r}")
    chunks = [texts[i : i + per_prompt] for i in range(0, len(texts), per_prompt)]
    prompts = []
    for chunk in chunks:
        listing = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(chunk))
        prompts.append(
            user(
                f"{header}\n\nHere are {len(chunk)} numbered texts.\n\n{listing}\n\n{question} Answer for every "
                f"text, one line each, exactly in the form '1: yes' or '1: no', and nothing else."
            )
        )
    gens = client.generate(prompts, max_tokens=max_tokens_per_item * per_prompt + 4, temperature=0.0)
    for chunk, g in zip(chunks, gens):
        if getattr(g, "error", None):
            out.extend([(None, None, f"request failed: {g.error}")] * len(chunk))
            continue
        for a in parse_yes_no_list(g.text, len(chunk)):
            out.append((None, None, "unparseable answer") if a is None else (a, None, None))
    return out
