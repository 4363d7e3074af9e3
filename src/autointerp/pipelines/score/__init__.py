"""``score``: detection, fuzzing, surprisal, embedding (simulation, intruder) with a shuffled control."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
