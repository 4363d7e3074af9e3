"""Calibration: known-answer latents that say how far each explainer and scorer can be trusted.

For the run's subject model, :mod:`.detectors` builds exact single-token detectors at the
embedding output (hookpoint ``embed_tokens``): latent ``j`` is a linear separator of one word
token's embedding from every other row of the embedding matrix, so it fires exactly where the
corpus holds that token. They are written as a real SAELens dictionary and go through the same
cache, sample, explain and score code as real latents; each is scored with the explainer's own
explanation, the true one (``the word "X"``) and shuffled explanations. :mod:`.verdicts` turns
the metrics into the explainer hit rate and a verdict per scorer. No Kedro imports.
"""

from .config import CALIBRATION_HOOKPOINT, TRUE_EXPLAINER, CalibrateConfig
from .detectors import (
    KnownAnswerDictionary,
    build_detectors,
    choose_words,
    embedding_matrix,
    exactness,
    read_known_answers,
    save_known_answers,
    true_explanations,
    worked_example_words,
)
from .verdicts import INFORMATIVE, NOT_INFORMATIVE, hit_table, mlflow_metrics, scorer_summary, verdicts

__all__ = [
    "CALIBRATION_HOOKPOINT",
    "INFORMATIVE",
    "NOT_INFORMATIVE",
    "TRUE_EXPLAINER",
    "CalibrateConfig",
    "KnownAnswerDictionary",
    "build_detectors",
    "choose_words",
    "embedding_matrix",
    "exactness",
    "hit_table",
    "mlflow_metrics",
    "read_known_answers",
    "save_known_answers",
    "scorer_summary",
    "true_explanations",
    "verdicts",
    "worked_example_words",
]
