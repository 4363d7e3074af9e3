"""The ``calibrate`` pipeline: known-answer latents through sample, explain and score."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
