"""Cross-scoring: A's explanation judged by a scorer of the score stage on B's test examples,
beside the same explanation judged on the test examples of a random other latent of B (its
chance level)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import AutointerpError
from ..scoring.base import Scorer, examples_from_frame
from ..scoring.detection import DetectionConfig, DetectionScorer
from ..scoring.metrics import latent_metrics
from ..scoring.runner import scorer_rng, select_examples, selection_rng
from .config import CrossScoringConfig, SimilarityConfig
from .measures import _summary_row, bootstrap_ci

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ cross-scoring

METRICS = ("auroc", "balanced_accuracy", "n", "n_failed")


def cross_columns(suffix: str = "") -> list[str]:
    """The per-pair columns of one explainer (``suffix``: ``""`` or ``".<explainer>"``): per
    direction (``""``: A's explanation on B's examples; ``"_ba"``: the reverse) the matched
    pair's ``cross_score`` (the configured metric), ``cross_auroc``,
    ``cross_balanced_accuracy``, ``cross_n``, ``cross_n_failed``, and its chance pairing:
    ``cross_chance_latent`` (the random other latent whose examples were used) and
    ``cross_chance_score``."""
    cols = []
    for d in ("", "_ba"):
        cols += [f"cross_score{d}", *(f"cross_{m}{d}" for m in METRICS)]
        cols += [f"cross_chance_latent{d}", f"cross_chance_score{d}"]
    return [c + suffix for c in cols]


@dataclass
class CrossScores:
    """Per matched pair (index of the matched table) the columns of :func:`cross_columns`
    (with the explainer's suffix). ``coverage``: counts of the pairs that could be scored and
    why the others could not. ``suffix``: the explainer's column suffix."""

    table: pd.DataFrame
    coverage: dict
    note: str | None = None
    suffix: str = ""


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
    """A's explanations scored on B's test examples (and B's on A's) by one scorer of the score
    stage (``scorer``: a :class:`~autointerp.scoring.base.Scorer`, default detection).

    Scored exactly as the score stage scores a latent on its own examples (same example
    selection, same seeding by the explained latent, same scorer and client), so that a latent's
    explanation scored on the examples of a perfect twin gives the same number as the score
    stage's score of that latent on its own examples. Chance level: every scored explanation is
    also scored on the test examples of a random other latent of the other side (drawn per
    explained latent from ``[seed, latent, 3, direction]``, so the same latent gets the same
    random partner whatever else is scored, for every explainer).
    """

    examples_a: dict[int, pd.DataFrame]
    examples_b: dict[int, pd.DataFrame]
    client: object
    scorer: Scorer | None = None
    n_activating: int | None = 50
    n_non_activating: int | None = 50
    seed: int = 0
    progress: bool = True
    client_factory: Callable[[], object] | None = None  # makes ``client`` on first use (None given)
    scorer_model: str | None = None  # what judges, for the summary (the LLM or the embedding model)
    _scorer: Scorer = field(init=False, repr=False)

    def __post_init__(self):
        self._scorer = self.scorer if self.scorer is not None else DetectionScorer(DetectionConfig())

    @property
    def scorer_name(self) -> str:
        return self._scorer.name

    def score_one(self, explanation: str, examples: pd.DataFrame, latent: int) -> dict:
        """The scorer's metrics of ``explanation`` on ``examples``, seeded like the score stage
        seeds ``latent`` (the explained latent)."""
        if self.client is None and self.client_factory is not None and self._scorer.uses_client:
            self.client = self.client_factory()  # no model is loaded when no pair is eligible
        chosen = select_examples(examples, self.n_activating, self.n_non_activating, selection_rng(self.seed, latent))
        ex = examples_from_frame(chosen)
        rows = self._scorer.score(explanation, ex, self.client, scorer_rng(self.seed, latent, self._scorer.name)).rows
        nq = int(max((e.quantile for e in ex), default=-1)) + 1
        m = latent_metrics(
            [r["label"] for r in rows],
            [r["prediction"] for r in rows],
            [r["score"] for r in rows],
            [r["quantile"] for r in rows],
            [r["failure"] is not None for r in rows],
            nq,
        )
        return {k: m[k] for k in METRICS}

    def chance_latent(self, latent: int, partner: int, direction: str) -> int | None:
        """The random other latent of the other side whose examples give ``latent``'s explanation
        its chance score: any latent there with test examples but ``partner`` (None if none)."""
        pool = sorted(set(self.examples_b if direction == "" else self.examples_a) - {int(partner)})
        if not pool:
            return None
        rng = np.random.default_rng([self.seed, int(latent), 3, int(direction == "_ba")])
        return int(pool[int(rng.integers(len(pool)))])

    def __call__(self, matched: pd.DataFrame, cfg: CrossScoringConfig, suffix: str = "") -> CrossScores:
        """Cross-score the matched pairs with the explanations of columns ``explanation_a{suffix}``
        and ``explanation_b{suffix}`` (``suffix``: ``""`` or ``".<explainer>"``)."""
        a_lat, b_lat = matched["latent_a"].astype(int), matched["latent_b"].astype(int)
        expl_a, expl_b = matched[f"explanation_a{suffix}"], matched[f"explanation_b{suffix}"]
        has_ex_a, has_ex_b = expl_a.notna().to_numpy(), expl_b.notna().to_numpy()
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
                    "Sample the matched latents (similarity.matched_latents with sample.selection.mode: matched, "
                    "or sample.selection.mode: list with their latents, see matched.parquet), lower "
                    "similarity.cross_scoring.min_pairs, or set similarity.cross_scoring.on_few_pairs to report or skip."
                )
            log.warning("cross-scoring: %s", note)
        table = pd.DataFrame(np.nan, index=matched.index, columns=cross_columns(suffix))
        if note is not None and cfg.on_few_pairs == "skip":
            return CrossScores(table, coverage, note + "; skipped (on_few_pairs: skip)", suffix)
        todo = matched[eligible].sort_values("jaccard", ascending=False, kind="stable").head(cfg.max_pairs)
        coverage["scored"] = int(len(todo))
        # (row, direction, explanation, explained latent, its matched partner, the partner side's examples)
        jobs = [(i, "", expl_a[i], int(todo.at[i, "latent_a"]), int(todo.at[i, "latent_b"])) for i in todo.index]
        if cfg.both_ways:
            jobs += [
                (i, "_ba", expl_b[i], int(todo.at[i, "latent_b"]), int(todo.at[i, "latent_a"]))
                for i in todo.index
                if isinstance(expl_b[i], str) and int(todo.at[i, "latent_a"]) in self.examples_a
            ]
        for i, d, explanation, latent, partner in tqdm(
            jobs, desc=f"cross-scoring ({self.scorer_name})", unit="pair", disable=not self.progress
        ):
            other = self.examples_b if d == "" else self.examples_a
            m = self.score_one(explanation, other[partner], latent)
            for k in METRICS:
                table.loc[i, f"cross_{k}{d}{suffix}"] = m[k]
            table.loc[i, f"cross_score{d}{suffix}"] = m[cfg.metric]
            rand = self.chance_latent(latent, partner, d)
            if rand is not None:
                table.loc[i, f"cross_chance_latent{d}{suffix}"] = rand
                table.loc[i, f"cross_chance_score{d}{suffix}"] = self.score_one(explanation, other[rand], latent)[
                    cfg.metric
                ]
        return CrossScores(table, coverage, note, suffix)


def _cross_summary(
    matched: pd.DataFrame, cross: CrossScores, cfg: SimilarityConfig, explainer: str | None = None, scorer=None
) -> list[dict]:
    """Adds the cross-scoring columns to ``matched``; summary rows for both directions, each
    with its coverage counts, note, scorer and chance level: the mean score of the same
    explanations on the examples of random other latents (``chance_n`` of them, with its 95%
    CI). The lift's CI is the bootstrap of the per-pair differences (matched minus random pair:
    the same explanation judged on both)."""
    sfx = cross.suffix
    for c in cross.table.columns:
        matched[c] = cross.table[c]
    rows = []
    cov = {f"cross_{k}": v for k, v in cross.coverage.items()}
    label = {
        "cross_scorer": getattr(scorer, "scorer_name", None),
        "cross_scorer_model": getattr(scorer, "scorer_model", None),
    }
    for d in ("", "_ba"):
        col = f"cross_score{d}{sfx}"
        if d == "_ba" and (not cfg.cross_scoring.both_ways or matched[col].isna().all()):
            continue
        values = matched[col].to_numpy(dtype=float)
        rand = matched[f"cross_chance_score{d}{sfx}"].to_numpy(dtype=float)
        ok = np.isfinite(rand)
        chance = float(rand[ok].mean()) if ok.any() else None
        row = _summary_row(
            "coactivation",
            col,
            values,
            cfg.thresholds.cross_score,
            chance,
            cfg.seed,
            cfg.bootstrap,
            explainer=explainer,
            cross_metric=cfg.cross_scoring.metric,
            note=cross.note,
            **label,
            **cov,
        )
        lo, hi = bootstrap_ci(rand, seed=cfg.seed, n=cfg.bootstrap)
        diff = values - rand
        dlo, dhi = bootstrap_ci(diff, seed=cfg.seed, n=cfg.bootstrap)
        row.update(
            chance_n=int(ok.sum()), chance_ci_low=lo, chance_ci_high=hi, lift_diff_ci_low=dlo, lift_diff_ci_high=dhi
        )
        rows.append(row)
    return rows
