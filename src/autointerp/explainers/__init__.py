"""Explainers: what a latent does, in one short phrase, from its activating training examples.

``explain.explainers`` lists the explainers of a run by name (all run on the same latents,
one row each per latent in ``{namespace}.explanations``, column ``explainer``):
- LLM prompt variants (:mod:`.prompts`): ``default``, ``activations``, ``contrastive``;
- the statistical explainer ``tokens`` (:mod:`.tokens`): no LLM, the tokens the latent fires
  on relative to their corpus frequency, the share of activation mass they cover, and the
  tokens before them; the baseline every LLM explanation must beat.
Parsing of answers: :mod:`.parsing`. The resumable job over one hookpoint: :mod:`.job`.
"""

from __future__ import annotations

from .config import ExplainConfig, TokensConfig
from .job import (
    COLUMNS,
    EXAMPLE_COLUMNS,
    ExplainJob,
    examples_frame,
    explain_hookpoint,
    read_explanations,
    select_explainer,
)
from .parsing import echoed_worked_example, parse_explanation, repeats
from .prompts import PREFILL, WORKED, PromptExplainer, Worked, echoed_answer, mark_example, select_examples
from .registry import EXPLAINERS, REGISTRY, make_explainer
from .tokens import TokensExplainer, TokenStatistics, corpus_counts


def build_messages(
    cfg: ExplainConfig, activating, negatives=None, explainer: str | None = None, hint: str | None = None
) -> list[dict]:
    """The chat messages of LLM explainer ``explainer`` (default: the first LLM explainer
    configured, else ``default``) for one latent."""
    if explainer is None:
        explainer = next((n for n in cfg.explainers if REGISTRY[n].uses_llm), "default")
    return make_explainer(explainer, cfg).messages(activating, negatives, hint)


__all__ = [
    "COLUMNS",
    "EXAMPLE_COLUMNS",
    "EXPLAINERS",
    "PREFILL",
    "REGISTRY",
    "WORKED",
    "ExplainConfig",
    "ExplainJob",
    "PromptExplainer",
    "TokenStatistics",
    "TokensConfig",
    "TokensExplainer",
    "Worked",
    "build_messages",
    "corpus_counts",
    "echoed_answer",
    "echoed_worked_example",
    "examples_frame",
    "explain_hookpoint",
    "make_explainer",
    "mark_example",
    "parse_explanation",
    "read_explanations",
    "repeats",
    "select_examples",
    "select_explainer",
]
