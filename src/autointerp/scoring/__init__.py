"""Scoring explanations of latents (no Kedro imports): one plain module per scorer.

``detection``, ``fuzzing``, ``surprisal``, ``embedding``, ``simulation``, ``intruder``; each a
:class:`~autointerp.scoring.base.Scorer` with ``score(explanation, examples, client, rng)``.
:class:`ScoreJob` runs the configured scorers over a hookpoint, with the shuffled-explanation
control, persisting and resuming; :class:`ScoreRun` reads the tables back;
:mod:`.metrics` holds the metrics, :mod:`.report` the aggregates and plots.
"""

from .base import Example, Scorer, ScorerOutput, examples_from_frame
from .runner import METRIC_COLUMNS, SCORE_COLUMNS, SCORERS, ScoreConfig, ScoreJob, ScoreRun, as_frame, select_examples

__all__ = ["Example", "METRIC_COLUMNS", "SCORERS", "SCORE_COLUMNS", "ScoreConfig", "ScoreJob", "ScoreRun", "Scorer",
           "ScorerOutput", "as_frame", "examples_from_frame", "select_examples"]
