"""``train_sae``: TopK SAEs trained on the configured hookpoints, in sparsify's layout."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
