"""Embedding: the explanation as a query, the examples as documents.

Cosine similarity between sentence embeddings (``autointerp.embeddings.embed``, MiniLM by
default) is the score; prediction: similarity > ``threshold``. No LLM involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embeddings import embed
from .base import Example, Scorer, ScorerOutput, row


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str | None = None  # null: all-MiniLM-L6-v2 from the offline package
    threshold: float = 0.2
    query_prefix: str = ""  # e.g. "query: " for E5-style models


class EmbeddingScorer(Scorer):
    name = "embedding"
    uses_client = False
    cfg: EmbeddingConfig

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        vecs = embed([self.cfg.query_prefix + (explanation or "")] + [e.text() for e in examples], self.cfg.model)
        sims = vecs[1:] @ vecs[0]
        return ScorerOutput([row(e, int(s > self.cfg.threshold), float(s)) for e, s in zip(examples, sims)])
