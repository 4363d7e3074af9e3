"""``similarity``: how alike are two dictionaries (co-activation matching, explanation agreement, baselines)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
