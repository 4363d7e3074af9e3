"""``cache``: corpus tokens, then the sparse latent activations of every configured hookpoint."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
