"""Cross-scoring: A's explanation judged by the score stage's detection scorer on B's test examples."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import AutointerpError
from ..scoring.base import examples_from_frame
from ..scoring.detection import DetectionConfig, DetectionScorer
from ..scoring.metrics import latent_metrics
from ..scoring.runner import scorer_rng, select_examples, selection_rng
from .config import CrossScoringConfig, SimilarityConfig
from .measures import _summary_row

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ cross-scoring


@dataclass
class CrossScores:
    """Per matched pair (index of the matched table): ``cross_score`` (A's explanation on B's
    examples, the configured metric), ``cross_auroc``, ``cross_balanced_accuracy``, ``cross_n``,
    ``cross_n_failed`` and, both ways, the same with ``_ba`` (B's explanation on A's examples).
    ``coverage``: counts of the pairs that could be scored and why the others could not."""

    table: pd.DataFrame
    coverage: dict
    note: str | None = None


def test_examples(examples: pd.DataFrame | None, hookpoint: str) -> dict[int, pd.DataFrame]:
    """latent -> its test examples (``split == "test"``), for latents with both activating and
    non-activating ones (the detection scorer needs both classes)."""
    if examples is None or len(examples) == 0:
        return {}
    need = {"latent", "split", "kind", "quantile", "context", "start", "tokens", "activations"}
    if not need <= set(examples.columns):
        raise AutointerpError(
            f"the examples of '{hookpoint}' lack the columns {sorted(need - set(examples.columns))} "
            "(docs/formats.md). Re-run `kedro run --pipelines sample`."
        )
    df = examples[examples["split"] == "test"]
    if "hookpoint" in df.columns and (df["hookpoint"] == hookpoint).any():
        df = df[df["hookpoint"] == hookpoint]
    out = {}
    for lat, g in df.groupby("latent"):
        act = g["kind"] == "activating"
        if act.any() and (~act).any():
            out[int(lat)] = g
    return out


@dataclass
class CrossScorer:
    """A's explanations scored by the detection scorer on B's test examples (and B's on A's).

    Scored exactly as the score stage scores a latent on its own examples (same example
    selection, same seeding by the explained latent, same scorer and client), so that a latent's
    explanation scored on the examples of a perfect twin gives the same number as the score
    stage's detection score of that latent on its own examples.
    """

    examples_a: dict[int, pd.DataFrame]
    examples_b: dict[int, pd.DataFrame]
    client: object
    detection: object = None  # a scoring.detection.DetectionConfig
    n_activating: int | None = 50
    n_non_activating: int | None = 50
    seed: int = 0
    progress: bool = True
    client_factory: Callable[[], object] | None = None  # makes ``client`` on first use (None given)

    def score_one(self, explanation: str, examples: pd.DataFrame, latent: int) -> dict:
        """Detection metrics of ``explanation`` on ``examples``, seeded like the score stage
        seeds ``latent`` (the explained latent)."""
        if self.client is None and self.client_factory is not None:
            self.client = self.client_factory()  # no model is loaded when no pair is eligible
        scorer = DetectionScorer(self.detection or DetectionConfig())
        chosen = select_examples(examples, self.n_activating, self.n_non_activating, selection_rng(self.seed, latent))
        ex = examples_from_frame(chosen)
        rows = scorer.score(explanation, ex, self.client, scorer_rng(self.seed, latent, scorer.name)).rows
        nq = int(max((e.quantile for e in ex), default=-1)) + 1
        m = latent_metrics(
            [r["label"] for r in rows],
            [r["prediction"] for r in rows],
            [r["score"] for r in rows],
            [r["quantile"] for r in rows],
            [r["failure"] is not None for r in rows],
            nq,
        )
        return {k: m[k] for k in ("auroc", "balanced_accuracy", "n", "n_failed")}

    def __call__(self, matched: pd.DataFrame, cfg: CrossScoringConfig) -> CrossScores:
        a_lat, b_lat = matched["latent_a"].astype(int), matched["latent_b"].astype(int)
        has_ex_a = matched["explanation_a"].notna().to_numpy()
        has_ex_b = matched["explanation_b"].notna().to_numpy()
        has_test_b = b_lat.isin(list(self.examples_b)).to_numpy()
        has_test_a = a_lat.isin(list(self.examples_a)).to_numpy()
        eligible = has_ex_a & has_test_b
        coverage = {
            "matched": int(len(matched)),
            "explained_a": int(has_ex_a.sum()),
            "examples_b": int(has_test_b.sum()),
            "eligible": int(eligible.sum()),
            "eligible_ba": int((has_ex_b & has_test_a).sum()),
        }
        note = None
        if coverage["eligible"] < cfg.min_pairs:
            note = (
                f"only {coverage['eligible']} of {coverage['matched']} matched pairs have A's explanation and "
                f"B's test examples ({coverage['explained_a']} matched A latents are explained, "
                f"{coverage['examples_b']} matched B latents have examples): the sample stage draws latents "
                f"per hookpoint independently, so the mean of so few pairs is not representative"
            )
            if cfg.on_few_pairs == "error":
                raise AutointerpError(
                    f"cross-scoring {matched['hookpoint_a'].iloc[0]} vs {matched['hookpoint_b'].iloc[0]}: {note}. "
                    "Sample the matched latents (sample.selection.mode: list with their latents, see "
                    "matched.parquet), lower similarity.cross_scoring.min_pairs, or set "
                    "similarity.cross_scoring.on_few_pairs to report or skip."
                )
            log.warning("cross-scoring: %s", note)
        cols = [
            "cross_score",
            "cross_auroc",
            "cross_balanced_accuracy",
            "cross_n",
            "cross_n_failed",
            "cross_score_ba",
            "cross_auroc_ba",
            "cross_balanced_accuracy_ba",
            "cross_n_ba",
            "cross_n_failed_ba",
        ]
        table = pd.DataFrame(np.nan, index=matched.index, columns=cols)
        if note is not None and cfg.on_few_pairs == "skip":
            return CrossScores(table, coverage, note + "; skipped (on_few_pairs: skip)")
        todo = matched[eligible].sort_values("jaccard", ascending=False, kind="stable").head(cfg.max_pairs)
        coverage["scored"] = int(len(todo))
        jobs = [
            (i, "", r.explanation_a, self.examples_b[int(r.latent_b)], int(r.latent_a))
            for i, r in zip(todo.index, todo.itertuples())
        ]
        if cfg.both_ways:
            jobs += [
                (i, "_ba", r.explanation_b, self.examples_a[int(r.latent_a)], int(r.latent_b))
                for i, r in zip(todo.index, todo.itertuples())
                if isinstance(r.explanation_b, str) and int(r.latent_a) in self.examples_a
            ]
        for i, suffix, explanation, examples, latent in tqdm(
            jobs, desc="cross-scoring", unit="pair", disable=not self.progress
        ):
            m = self.score_one(explanation, examples, latent)
            table.loc[i, f"cross_auroc{suffix}"] = m["auroc"]
            table.loc[i, f"cross_balanced_accuracy{suffix}"] = m["balanced_accuracy"]
            table.loc[i, f"cross_n{suffix}"] = m["n"]
            table.loc[i, f"cross_n_failed{suffix}"] = m["n_failed"]
            table.loc[i, f"cross_score{suffix}"] = m[cfg.metric]
        return CrossScores(table, coverage, note)


def _cross_summary(matched: pd.DataFrame, cross: CrossScores, cfg: SimilarityConfig) -> list[dict]:
    """Adds the cross-scoring columns to ``matched``; summary rows for both directions, each
    with its coverage counts and note (chance level 0.5 for AUROC and balanced accuracy)."""
    for c in cross.table.columns:
        matched[c] = cross.table[c]
    rows = []
    cov = {f"cross_{k}": v for k, v in cross.coverage.items()}
    for measure, col in (("cross_score", "cross_score"), ("cross_score_ba", "cross_score_ba")):
        if measure == "cross_score_ba" and (not cfg.cross_scoring.both_ways or matched[col].isna().all()):
            continue
        rows.append(
            _summary_row(
                "coactivation",
                measure,
                matched[col].to_numpy(),
                cfg.thresholds.cross_score,
                0.5,
                cfg.seed,
                cfg.bootstrap,
                cross_metric=cfg.cross_scoring.metric,
                note=cross.note,
                **cov,
            )
        )
    return rows
