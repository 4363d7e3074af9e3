"""``report``: a static HTML latent browser and run-level plots over every hookpoint."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
