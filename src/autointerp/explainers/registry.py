"""Every explainer by name (``explain.explainers``): LLM prompt variants and the statistical one."""

from __future__ import annotations

from .prompts import ActivationsExplainer, ContrastiveExplainer, PromptExplainer
from .tokens import TokensExplainer

REGISTRY = {c.name: c for c in (PromptExplainer, ActivationsExplainer, ContrastiveExplainer, TokensExplainer)}
EXPLAINERS = tuple(REGISTRY)


def make_explainer(name: str, cfg):
    return REGISTRY[name](cfg)
