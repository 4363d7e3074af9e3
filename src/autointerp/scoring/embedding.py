"""Embedding: the explanation as a query, the examples as documents.

Cosine similarity between sentence embeddings (``autointerp.embeddings.embed``, MiniLM by
default) is the score; prediction: similarity > ``threshold``. No LLM involved.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..embeddings import embed
from .base import Example, Scorer, ScorerOutput, row


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str | None = None  # null: all-MiniLM-L6-v2 from the offline package
    threshold: float = 0.2
    query_prefix: str = ""  # e.g. "query: " for E5-style models
    dtype: str = "auto"  # the embedding model's weights; auto: bfloat16 where native, else float32

    def __post_init__(self) -> None:  # resolved here, so fingerprints name the real dtype
        from ..models import resolve_dtype

        object.__setattr__(self, "dtype", resolve_dtype(self.dtype))


class EmbeddingScorer(Scorer):
    name = "embedding"
    uses_client = False
    cfg: EmbeddingConfig
    CACHE_TEXTS = 16384  # example embeddings kept (384 floats each: about 25 MB)

    def __init__(self, cfg: EmbeddingConfig):
        super().__init__(cfg)
        # The same test examples come back for every explainer and for the control: embed each
        # example text once (a bounded cache, oldest first out), only the explanation per unit.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _embed_examples(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for t, v in zip(todo, embed(todo, self.cfg.model, dtype=self.cfg.dtype) if todo else []):
            self._cache[t] = v
        out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
        while len(self._cache) > self.CACHE_TEXTS:
            self._cache.popitem(last=False)
        return out

    def score(self, explanation: str | None, examples: list[Example], client, rng: np.random.Generator) -> ScorerOutput:
        query = embed([self.cfg.query_prefix + (explanation or "")], self.cfg.model, dtype=self.cfg.dtype)[0]
        docs = self._embed_examples([e.text() for e in examples])
        sims = docs @ query if len(examples) else np.zeros(0, np.float32)
        return ScorerOutput([row(e, int(s > self.cfg.threshold), float(s)) for e, s in zip(examples, sims)])
