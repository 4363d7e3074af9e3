"""LLM explainers: prompts that show a latent's activating training examples to an LLM.

One class per prompt variant (``explain.explainers`` names them):
- ``default`` (:class:`PromptExplainer`): activating tokens marked ``<<like this>>``;
- ``activations``: the same, plus each marked token's activation on a 1-10 scale;
- ``contrastive``: the same as default, plus non-activating counter-examples of the
  *training* split (the sample stage writes training negatives disjoint from the test ones).
Options shared by all: ``reasoning`` (a few sentences before the final line), ``prefill``
(the answer starts with "Explanation:"), ``few_shot`` (worked examples first), ``hint``
(the statistical explainer's sentence shown as a hint). Token strings are shown through
:func:`autointerp.examples.display_token`: control tokens become placeholders such as ``[im_start]``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..examples import display_text, display_token, display_window
from .config import ExplainConfig
from .parsing import echoed_worked_example, parse_explanation

SYSTEM = (
    "You are a meticulous AI researcher studying one feature of a language model. You see text examples "
    "where the feature is active; the tokens where it is active are marked between << and >>. "
    "Find what the marked tokens and their context have in common, and describe it in a short phrase "
    "(a few words, for example: 'plural nouns', 'the word \"king\"', 'verbs of motion')."
)
ACTIVATIONS_NOTE = " After each example, the marked tokens are listed with their activation strength from 1 to 10."
CONTRASTIVE_NOTE = (
    " You also see counter-examples where the feature is NOT active: your explanation should not describe them."
)
HINT_NOTE = " A line of token statistics, computed from the examples, may help you."
ANSWER_PLAIN = " Reply with one line only:\nExplanation: <short phrase>"
ANSWER_REASONING = (
    " First think in at most three short sentences about what the marked tokens share. "
    "Then end with a final line:\nExplanation: <short phrase>"
)
PREFILL = "Explanation:"
HINT = "Token statistics: "
ECHO_FAILURE = "echoed worked example"


class Worked(NamedTuple):
    """A worked example shown before the real task: its marked examples, its statistics hint,
    its answer, the answer's key (a pattern in an explanation) and the key in marked tokens: an
    answer repeating ``answer`` and naming the key while the real latent's marked tokens do not
    show it is an echo (a counted failure, never an explanation)."""

    examples: str
    hint: str
    answer: str
    key: str
    key_marked: str


# Three kinds of latent, so that a small model learns the answer's form rather than one answer.
WORKED = [
    Worked(
        "Example 1: and the <<king>> said to his son\nExample 2: long live the <<King>>!\n"
        "Example 3: the <<kings>> of France and England",
        'fires on " king", " kings", mostly after " the"',
        'the word "king"',
        r"\bkings?\b",
        r"king",
    ),
    Worked(
        "Example 1: import os<<\\n>>import sys\nExample 2: return x<<\\n>>\nExample 3: def f():<<\\n>>    pass",
        'fires on "\\n"',
        "line breaks in Python code",
        r"line ?breaks?|new ?lines?",
        r"\\n",
    ),
    Worked(
        "Example 1: she was <<running>> home\nExample 2: they kept <<singing>> all night\n"
        "Example 3: stop <<talking>>, please",
        'fires on " running", " singing", " talking"',
        "verbs ending in -ing",
        r"-?ing\b",
        r"ing\b",
    ),
]
_MARKED = re.compile(r"<<(.*?)>>", re.DOTALL)


def mark_example(tokens: list[str], activations: list[float], threshold: float) -> tuple[str, list[int]]:
    """The example's text with runs of active tokens wrapped in <<...>> (leading spaces kept
    outside the markers), and the indices of the marked tokens."""
    acts = np.asarray(activations, dtype=float)
    top = float(acts.max()) if len(acts) else 0.0
    on = (acts > threshold * top) & (acts > 0) if top > 0 else np.zeros(len(acts), bool)
    parts, marked = [], []
    i = 0
    while i < len(tokens):
        if not on[i]:
            parts.append(display_token(tokens[i]))
            i += 1
            continue
        j = i
        while j < len(tokens) and on[j]:
            marked.append(j)
            j += 1
        run = "".join(display_token(t) for t in tokens[i:j])
        stripped = run.lstrip()
        parts.append(run[: len(run) - len(stripped)] + "<<" + stripped + ">>")
        i = j
    return display_text("".join(parts)).strip(), marked


def select_examples(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` rows spread evenly from the strongest to the weakest."""
    df = df.sort_values("max_activation", ascending=False, kind="stable")
    if len(df) <= n:
        return df
    return df.iloc[np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))]


class PromptExplainer:
    """``default``: the LLM sees the activating examples with their active tokens marked."""

    name = "default"
    uses_llm = True
    note = ""

    def __init__(self, cfg: ExplainConfig):
        self.cfg = cfg

    # ------------------------------------------------------------ the prompt

    def example_lines(self, activating: pd.DataFrame) -> list[str]:
        acts = select_examples(activating, self.cfg.n_examples)
        lines = []
        for k, row in enumerate(acts.itertuples(index=False), 1):
            text, _ = mark_example(list(row.tokens), list(row.activations), self.cfg.highlight_threshold)
            lines.append(f"Example {k}: {text}")
        return lines

    def extra(self, negatives: pd.DataFrame | None) -> str:
        """Text after the examples (counter-examples)."""
        return ""

    def messages(
        self,
        activating: pd.DataFrame,
        negatives: pd.DataFrame | None = None,
        hint: str | None = None,
        worked: list[Worked] | None = None,
    ) -> list[dict]:
        """The chat messages asking for one latent's explanation; ``worked``: the worked examples
        shown first (default: all of :data:`WORKED` with ``few_shot``, none without)."""
        cfg = self.cfg
        hint = hint if cfg.hint else None
        system = SYSTEM + self.note + (HINT_NOTE if hint else "")
        system += ANSWER_REASONING if cfg.reasoning else ANSWER_PLAIN
        user = "\n".join(self.example_lines(activating)) + self.extra(negatives)
        if hint:
            user += f"\n{HINT}{hint}"
        messages = [{"role": "system", "content": system}]
        if worked is None:
            worked = WORKED if cfg.few_shot and not cfg.reasoning else []
        for w in worked:
            messages.append({"role": "user", "content": w.examples + (f"\n{HINT}{w.hint}" if hint else "")})
            messages.append({"role": "assistant", "content": f"{PREFILL} {w.answer}"})
        messages.append({"role": "user", "content": user})
        if cfg.uses_prefill:
            messages.append({"role": "assistant", "content": PREFILL})
        return messages

    def retry_messages(
        self,
        activating: pd.DataFrame,
        negatives: pd.DataFrame | None,
        hint: str | None,
        echoed: list[str],
        last: bool,
    ) -> list[dict]:
        """The messages asking again after answers that echoed the worked examples ``echoed``
        (their answers): the worked examples not echoed yet, the last one of them moved first
        (the most recent is the most echoed); none at all on the ``last`` try."""
        keep = [] if last else [w for w in WORKED if w.answer not in echoed]
        return self.messages(activating, negatives, hint, worked=keep[-1:] + keep[:-1])

    # ------------------------------------------------------------ the answer

    def answer_text(self, generated: str) -> str:
        """The whole answer: the prefilled start (if any) and what the model generated after it."""
        return (PREFILL + generated) if self.cfg.uses_prefill else generated

    def parse(self, answer: str, messages: list[dict]) -> tuple[str | None, str | None]:
        """(explanation, None) or (None, failure): parsing rules, then echo detection. With
        ``few_shot`` every worked example counts, also on a retry that shows none of them: an
        answer repeating one without the latent's marked tokens showing its key is no explanation."""
        exp, failure = parse_explanation(answer, self.cfg.reasoning, self.cfg.max_chars)
        if exp is None or not (self.cfg.few_shot and not self.cfg.reasoning):
            return exp, failure
        marked = _MARKED.findall(messages[-2 if self.cfg.uses_prefill else -1]["content"])
        echoed = echoed_worked_example(exp, [(w.answer, w.key, w.key_marked) for w in WORKED], marked)
        return (None, f"{ECHO_FAILURE}: {echoed}") if echoed else (exp, None)


def echoed_answer(failure: str | None) -> str | None:
    """The worked answer an ``echoed worked example`` failure names, else None."""
    if failure and failure.startswith(ECHO_FAILURE + ": "):
        return failure[len(ECHO_FAILURE) + 2 :]
    return None


class ActivationsExplainer(PromptExplainer):
    """``activations``: also each marked token's activation, 1-10."""

    name = "activations"
    note = ACTIVATIONS_NOTE

    def example_lines(self, activating: pd.DataFrame) -> list[str]:
        acts = select_examples(activating, self.cfg.n_examples)
        scale = max(float(acts["max_activation"].max()), 1e-9) if len(acts) else 1.0
        lines = []
        for k, row in enumerate(acts.itertuples(index=False), 1):
            text, marked = mark_example(list(row.tokens), list(row.activations), self.cfg.highlight_threshold)
            lines.append(f"Example {k}: {text}")
            if marked:
                vals = ", ".join(
                    f"{display_token(row.tokens[m]).strip() or repr(row.tokens[m])} "
                    f"({max(1, round(10 * float(row.activations[m]) / scale))})"
                    for m in marked
                )
                lines.append(f"Activations: {vals}")
        return lines


class ContrastiveExplainer(PromptExplainer):
    """``contrastive``: also counter-examples from the training split."""

    name = "contrastive"
    note = CONTRASTIVE_NOTE

    def extra(self, negatives: pd.DataFrame | None) -> str:
        neg = negatives.head(self.cfg.n_negatives) if negatives is not None else None
        if neg is None or not len(neg):
            return ""
        return "\n\nCounter-examples (feature not active):\n" + "\n".join(
            f"Counter-example {k}: {display_window(row.tokens).strip()}"
            for k, row in enumerate(neg.itertuples(index=False), 1)
        )
