"""``sample``: activating and non-activating example windows per latent (disjoint train/test)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
