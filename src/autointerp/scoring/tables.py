"""Read side of a scoring folder: the per-example ``scores`` and per-unit ``metrics`` tables.

A unit is (latent, explainer, control). Its metric row carries a ``status``: ``ok``, or why it
has no metric (NaN in every rate, and left out of every mean and bootstrap interval):

- ``no_activating_test`` / ``no_non_activating_test``: the selected test examples lack a class
  (decided before any model call, the unit is not scored);
- ``no_positive_scored`` / ``no_negative_scored``: after failures and left-out examples (fuzzing
  leaves out examples without a silent visible token) the scored items lack a class;
- ``all_failed``: every request of the unit failed.

Tables written before explainers were a column (old runs) read as explainer ``default``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AutointerpError
from ..jobs import read_jsonl, read_meta
from .metrics import latent_metrics

OK = "ok"
NO_EXPLAINER = "none"  # the explainer column of scorers that judge the latent itself (intruder)
DEFAULT_EXPLAINER = "default"  # old tables without an explainer column

SCORE_COLUMNS = [
    "hookpoint",
    "latent",
    "explainer",
    "scorer",
    "control",
    "example_id",
    "kind",
    "quantile",
    "label",
    "prediction",
    "score",
    "failure",
]
METRIC_COLUMNS = [
    "hookpoint",
    "latent",
    "explainer",
    "scorer",
    "control",
    "status",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "auroc",
    "n",
    "n_failed",
    "prompt_tokens",
    "completion_tokens",
    "seconds",
]
RATES = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc")


def with_explainer(df: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` with an ``explainer`` column (``default`` where missing: tables of old runs)."""
    df = pd.DataFrame() if df is None else df
    if "explainer" not in df.columns:
        return df.assign(explainer=DEFAULT_EXPLAINER)
    return df.assign(explainer=df["explainer"].fillna(DEFAULT_EXPLAINER).astype(str))


def with_status(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with a ``status`` column (``ok`` where missing: tables of old runs)."""
    if "status" not in metrics.columns:
        return metrics.assign(status=OK)
    return metrics.assign(status=metrics["status"].fillna(OK).astype(str))


def selection_status(labels) -> str:
    """``ok`` when the labels hold both classes, else what is missing."""
    labels = set(int(v) for v in labels)
    if 1 not in labels:
        return "no_activating_test"
    if 0 not in labels:
        return "no_non_activating_test"
    return OK


def rows_status(rows: list[dict], two_class: bool) -> str:
    """Status of a scored unit from its example rows."""
    scored = [r for r in rows if r.get("failure") is None]
    if rows and not scored:
        return "all_failed"
    if not two_class:
        return OK if scored else "all_failed"
    labels = {int(r["label"]) for r in scored}
    if 1 not in labels:
        return "no_positive_scored"
    if 0 not in labels:
        return "no_negative_scored"
    return OK


def _extra(name: str, value, status: str) -> float:
    """A scorer's extra column: counts (``n_*``) always, metrics only for ``ok`` units."""
    if value is None or (status != OK and not name.startswith("n_")):
        return np.nan
    return value


class ScoreRun:
    """A scoring folder's records, per-example scores and per-unit metrics."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = read_meta(self.root)
        if meta is None:
            raise AutointerpError(f"'{self.root}' holds no scores yet: run the score pipeline first.")
        self.meta = meta

    def records(self) -> list[dict]:
        recs = []
        for name in self.meta.get("scorers", []):
            for rec in read_jsonl(self.root / f"{name}.jsonl"):
                rec.setdefault("explainer", DEFAULT_EXPLAINER)
                recs.append({"scorer": name, **rec})
        return recs

    def scores(self) -> pd.DataFrame:
        rows = []
        hp = self.meta["hookpoint"]
        for rec in self.records():
            for r in rec["rows"]:
                rows.append(
                    {
                        "hookpoint": hp,
                        "latent": rec["latent"],
                        "explainer": rec["explainer"],
                        "scorer": rec["scorer"],
                        "control": rec["control"],
                        **{k: r.get(k) for k in SCORE_COLUMNS[5:]},
                    }
                )
        return pd.DataFrame(rows, columns=SCORE_COLUMNS)

    def metrics(self) -> pd.DataFrame:
        from .runner import SCORERS

        nq = int(self.meta.get("n_quantiles", 0))
        out = []
        for rec in self.records():
            rs = rec["rows"]
            m = latent_metrics(
                [r["label"] for r in rs],
                [r["prediction"] for r in rs],
                [r["score"] for r in rs],
                [r["quantile"] for r in rs],
                [r["failure"] is not None for r in rs],
                nq,
            )
            status = rec.get("status") or OK
            if status == OK:
                status = rows_status(rs, getattr(SCORERS.get(rec["scorer"]), "two_class", True))
            if status != OK:  # no number for a unit that cannot be judged
                m = {k: (v if k in ("n", "n_failed") else np.nan) for k, v in m.items()}
            out.append(
                {
                    "hookpoint": self.meta["hookpoint"],
                    "latent": rec["latent"],
                    "explainer": rec["explainer"],
                    "scorer": rec["scorer"],
                    "control": rec["control"],
                    "status": status,
                    **m,
                    "prompt_tokens": rec.get("prompt_tokens", 0),
                    "completion_tokens": rec.get("completion_tokens", 0),
                    "seconds": rec.get("seconds", 0.0),
                    **{k: _extra(k, v, status) for k, v in rec.get("extra", {}).items()},
                }
            )
        cols = METRIC_COLUMNS + [f"recall_q{i}" for i in range(nq)]
        df = pd.DataFrame(out)
        for c in cols:
            if c not in df:
                df[c] = np.nan
        return df[cols + [c for c in df.columns if c not in cols]]
