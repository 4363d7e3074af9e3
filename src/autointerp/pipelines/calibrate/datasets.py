"""The Kedro dataset of the known-answer dictionary folder (the other calibration folders use
the stages' own datasets: latent cache, examples, explanations, score run)."""

from __future__ import annotations

from autointerp.calibration import read_known_answers
from autointerp.datasets import JobDataset


class KnownAnswerDictionaryDataset(JobDataset):
    """``save(job)`` writes the detectors and their words (skipped when up to date); ``load``
    gives a :class:`autointerp.calibration.KnownAnswerDictionary`."""

    reader = staticmethod(read_known_answers)
