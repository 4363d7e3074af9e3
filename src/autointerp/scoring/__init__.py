"""Scoring explanations of latents (no Kedro imports): one plain module per scorer.

``detection``, ``fuzzing``, ``surprisal``, ``embedding``, ``simulation``, ``intruder``; each a
:class:`~autointerp.scoring.base.Scorer` with ``score(explanation, examples, client, rng)``.
:class:`ScoreJob` runs the configured scorers over a hookpoint, per (latent, explainer, control)
unit with the shuffled-explanation control, persisting and resuming; :class:`ScoreRun`
(:mod:`.tables`) reads the tables back;
:mod:`.metrics` holds the metrics, :mod:`.report` the aggregates and plots.
"""

from .base import Example, Scorer, ScorerOutput, examples_from_frame
from .runner import SCORERS, ScoreConfig, ScoreJob, as_frame, select_examples
from .tables import METRIC_COLUMNS, SCORE_COLUMNS, ScoreRun, with_explainer, with_status

__all__ = [
    "Example",
    "METRIC_COLUMNS",
    "SCORERS",
    "SCORE_COLUMNS",
    "ScoreConfig",
    "ScoreJob",
    "ScoreRun",
    "Scorer",
    "ScorerOutput",
    "as_frame",
    "examples_from_frame",
    "select_examples",
    "with_explainer",
    "with_status",
]
