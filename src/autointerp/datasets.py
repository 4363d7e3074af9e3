"""Kedro datasets of this project (the only place, with nodes, that knows about Kedro's I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset

from .errors import AutointerpError
from .jobs import atomic_path, is_complete
from .latent_cache import LatentCache


class ArrayDataset(AbstractDataset):
    """A numpy array in a ``.npy`` file (never unpickled)."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> np.ndarray:
        if not self._path.exists():
            raise AutointerpError(f"'{self._path}' does not exist yet: run the pipeline that writes it first.")
        return np.load(self._path, allow_pickle=False)

    def save(self, data: np.ndarray) -> None:
        with atomic_path(self._path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(data), allow_pickle=False)

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class JobDataset(AbstractDataset):
    """A folder written by a lazy job: ``save(job)`` calls ``job.run(path)``, which itself skips
    work that is done and up to date, so re-runs and resumed runs only compute what is missing.
    ``load`` returns the reader class given by ``reader`` (a dotted path) over the folder."""

    reader: Any = None

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self):
        return self.reader(self._path)

    def save(self, job) -> None:
        job.run(self._path)

    def _exists(self) -> bool:
        return is_complete(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class LatentCacheDataset(JobDataset):
    """The sparse latent cache of one hookpoint (see :mod:`autointerp.latent_cache`)."""

    reader = LatentCache


def _complete_caches(path) -> dict[str, LatentCache]:
    folders = sorted(p for p in Path(path).glob("*") if is_complete(p)) if Path(path).is_dir() else []
    return {p.name: LatentCache(p) for p in folders}


class LatentCachesDataset(JobDataset):
    """The folder holding one latent cache per hookpoint (``<path>/<namespace>``, the folders of
    the ``{namespace}.latent_cache`` entries): ``save(job)`` caches every hookpoint of a
    :class:`autointerp.caching.HookpointCaches` from one forward pass per batch; ``load`` gives
    the complete caches by folder name (possibly none)."""

    reader = staticmethod(_complete_caches)

    def _exists(self) -> bool:
        return bool(_complete_caches(self._path))


def _read_sampled_examples(path):
    from .sampling import read_sampled_examples

    return read_sampled_examples(path)


def _read_latents(path):
    from .sampling import read_latents

    return read_latents(path)


class ExamplesDataset(JobDataset):
    """Example windows of one hookpoint (see :mod:`autointerp.sampling`): ``save(job)`` samples
    what is missing; ``load`` gives one DataFrame. In a notebook:
    ``pd.read_parquet("<path>/examples")``."""

    reader = staticmethod(_read_sampled_examples)


class LatentTableDataset(JobDataset):
    """The latents table written with the examples (same folder): one row per latent considered."""

    reader = staticmethod(_read_latents)


def _read_explanations(path):
    from .explainers import read_explanations

    return read_explanations(path)


class ExplanationsDataset(JobDataset):
    """Explanations of one hookpoint (see :mod:`autointerp.explainers`): ``save(job)`` explains
    the latents not yet done, one JSON line each as it goes; ``load`` gives one DataFrame.
    In a notebook: ``pd.read_json("<path>/explanations.jsonl", lines=True)``."""

    reader = staticmethod(_read_explanations)


class TrainedSaesDataset(JobDataset):
    """The folder of SAEs trained by the ``train_sae`` stage (one sparsify folder per hookpoint).

    ``save(job)`` runs the training job (a :class:`autointerp.training.TrainJob`), which skips
    every SAE already trained with the same configuration and tokens. ``load`` returns the
    folder's path, whether or not anything has been trained there yet."""

    reader = staticmethod(str)

    def _exists(self) -> bool:
        return self._path.is_dir() and any(self._path.rglob("train_report.json"))


class ScoreRunDataset(JobDataset):
    """The scoring folder of one hookpoint: ``save(job)`` runs or resumes it, ``load`` reads it."""

    @staticmethod
    def reader(path):
        from .scoring.runner import ScoreRun

        return ScoreRun(path)
