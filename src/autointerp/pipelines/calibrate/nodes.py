"""Nodes of the ``calibrate`` pipeline: the library's own cache, sample, explain and score jobs
over known-answer latents (:mod:`autointerp.calibration`), then the verdict tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from autointerp.caching import CacheConfig, CacheJob
from autointerp.calibration import (
    CALIBRATION_HOOKPOINT,
    CalibrateConfig,
    KnownAnswerDictionary,
    exactness,
    hit_table,
    mlflow_metrics,
    scorer_summary,
    true_explanations,
    verdicts,
)
from autointerp.calibration.detectors import KnownAnswerJob
from autointerp.config import parse_config
from autointerp.dictionaries import DictionaryConfig
from autointerp.errors import AutointerpError
from autointerp.explainers import ExplainConfig, ExplainJob
from autointerp.hooks import run_context
from autointerp.models import ModelConfig
from autointerp.sampling import SampleConfig, SampleJob
from autointerp.scoring import ScoreConfig, ScoreJob, as_frame

WHERE = "parameters_calibrate.yml: calibrate"


def calibrate_config(calibrate: dict | None) -> CalibrateConfig:
    return parse_config(CalibrateConfig, calibrate, WHERE)


def _sample_config(sample: dict | None) -> SampleConfig:
    return parse_config(SampleConfig, sample, "parameters: sample")


def known_answer_dictionary(tokens: np.ndarray, model: dict, calibrate: dict, sample: dict) -> KnownAnswerJob:
    """The lazy job choosing the words and writing their detectors (a SAELens folder)."""
    return KnownAnswerJob(
        tokens=tokens,
        model=parse_config(ModelConfig, model, "parameters: model"),
        config=calibrate_config(calibrate),
        window_len=_sample_config(sample).window_len,
    )


def _dictionary(d: KnownAnswerDictionary) -> DictionaryConfig:
    return DictionaryConfig(format="saelens", path=str(d.path))


def calibration_cache(tokens: np.ndarray, dictionary: KnownAnswerDictionary, model: dict, cache: dict) -> CacheJob:
    """The cache stage's job over the known-answer dictionary, read back by the normal loader."""
    return CacheJob(
        hookpoint=CALIBRATION_HOOKPOINT,
        tokens=tokens,
        model=parse_config(ModelConfig, model, "parameters: model"),
        dictionary=_dictionary(dictionary),
        cache=parse_config(CacheConfig, cache, "parameters: cache"),
    )


def calibration_words(dictionary: KnownAnswerDictionary, cache, tokens: np.ndarray) -> pd.DataFrame:
    """The words table with the exactness check on the corpus (status ``ok`` only if the cached
    latent fires on exactly the positions holding its token)."""
    return exactness(dictionary.words, cache, tokens)


def calibration_sample(
    tokens: np.ndarray,
    cache,
    words: pd.DataFrame,
    dictionary: KnownAnswerDictionary,
    model: dict,
    sample: dict,
    calibrate: dict,
) -> tuple[SampleJob, SampleJob]:
    """The sample stage's job over the exact detectors: the run's sample settings with the
    calibration's example counts, random non-activating windows only."""
    cfg, run = calibrate_config(calibrate), _sample_config(sample)
    exact = [int(x) for x in words.loc[words["status"] == "ok", "latent"]]
    if len(exact) < 2:
        raise AutointerpError(
            f"calibrate: {len(exact)} known-answer latents are exact (words: "
            f"{', '.join(words['word'])}); at least 2 are needed. See the calibration words table."
        )
    sel = dataclasses.replace(
        run.selection,
        mode="list",
        latents=exact,
        min_activating=min(run.selection.min_activating, cfg.n_train + cfg.n_test),
    )
    neg = dataclasses.replace(run.negatives, random=cfg.n_non_activating, neighbour=0, embedding=0)
    config = dataclasses.replace(run, n_train=cfg.n_train, n_test=cfg.n_test, selection=sel, negatives=neg)
    job = SampleJob(
        hookpoint=CALIBRATION_HOOKPOINT,
        tokens=tokens,
        cache=cache,
        model=parse_config(ModelConfig, model, "parameters: model"),
        dictionary=_dictionary(dictionary),
        config=config,
    )
    return job, job


def calibration_explain(
    examples, latents: pd.DataFrame, tokens, llm: dict, explain: dict, calibrate: dict
) -> ExplainJob:
    """The explain stage's job with the run's explainers (or ``calibrate.explainers``), over
    every known-answer latent."""
    from autointerp.pipelines.explain.nodes import llm_config

    cfg = calibrate_config(calibrate)
    exp = parse_config(ExplainConfig, explain, "parameters: explain")
    exp = dataclasses.replace(exp, max_latents=None, explainers=list(cfg.explainers or exp.explainers))
    exp.validate(f"{WHERE}.explainers")
    return ExplainJob(
        hookpoint=CALIBRATION_HOOKPOINT,
        examples=examples,
        llm=llm_config(llm),
        explain=exp,
        credentials=run_context().llm_credentials(),
        corpus_tokens=tokens,
        latents=latents,
    )


def calibration_score(
    examples,
    explanations: pd.DataFrame,
    words: pd.DataFrame,
    latents: pd.DataFrame,
    score: dict,
    llm: dict,
    calibrate: dict,
) -> ScoreJob:
    """The score stage's job with the run's scorers (or ``calibrate.scorers``) over every
    known-answer latent: the explainers' own explanations and the true ones, each with its
    shuffled control."""
    from autointerp.pipelines.score.nodes import llm_config

    cfg = calibrate_config(calibrate)
    sc = parse_config(ScoreConfig, score, "parameters: score")
    sc = dataclasses.replace(
        sc,
        scorers=list(cfg.scorers or sc.scorers),
        n_activating=None,
        n_non_activating=None,
        max_latents=None,
        max_llm_latents=None,
        control=True,
    )
    sc.validate(f"{WHERE}.scorers")
    ok = words[words["status"] == "ok"]
    expl = pd.concat([as_frame(explanations, "explanations"), true_explanations(ok)], ignore_index=True)
    return ScoreJob(
        hookpoint=CALIBRATION_HOOKPOINT,
        examples=as_frame(examples, "examples"),
        explanations=expl,
        config=sc,
        llm=llm_config(llm, score),
        credentials=run_context().llm_credentials(),
        latents=latents,
    )


def calibration_tables(run, explanations: pd.DataFrame, words: pd.DataFrame, calibrate: dict):
    """Per-latent metrics, explanations with their hit, the summary per scorer and explanation,
    the verdict per scorer, and the MLflow metrics."""
    cfg = calibrate_config(calibrate)
    metrics = run.metrics()
    hits = hit_table(as_frame(explanations, "explanations"), words)
    summary = scorer_summary(metrics, n_boot=cfg.n_bootstrap, seed=cfg.seed)
    table = verdicts(metrics, cfg.min_delta, n_boot=cfg.n_bootstrap, seed=cfg.seed)
    return metrics, hits, summary, table, mlflow_metrics(words, hits, summary, table)
