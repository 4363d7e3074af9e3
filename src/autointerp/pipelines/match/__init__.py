"""``match``: match before sampling (co-activation matching of every configured pair, top N per hookpoint)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
