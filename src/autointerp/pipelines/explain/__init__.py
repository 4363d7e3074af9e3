"""``explain``: one explanation per sampled latent of every configured hookpoint."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
