"""The runner's units (latent, explainer, control): statuses for one-class test sets, only
``ok`` latents scored, real and control paired on the same examples and marks, the control
within one explainer, LLM scorers on a subset, summaries per explainer (no language model)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from score_toy import HashClient, toy_examples, toy_explanations

from autointerp.pipelines.score import nodes
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun, with_explainer
from autointerp.scoring.detection import DetectionConfig
from autointerp.scoring.fuzzing import FuzzingConfig
from autointerp.scoring.report import summary, summary_table


def _run(tmp_path, examples, explanations, client=None, latents=None, **cfg):
    cfg = ScoreConfig(
        **{"scorers": ["detection", "fuzzing"], "n_activating": 4, "n_non_activating": 4, "n_bootstrap": 50, **cfg}
    )
    client = client or HashClient()
    ScoreJob("h", examples, explanations, cfg, client=client, progress=False, latents=latents).run(tmp_path)
    return ScoreRun(tmp_path), client


def test_one_class_test_sets_get_a_status_and_no_number(tmp_path):
    # 12.1: latent 1 has no non-activating test window, latent 2 no activating one
    lats = (0, 1, 2, 3)
    run, client = _run(
        tmp_path, toy_examples(lats, no_non=(1,), no_act=(2,)), toy_explanations(lats), scorers=["detection"]
    )
    m = run.metrics()
    status = m[~m["control"]].set_index("latent")["status"].to_dict()
    assert status == {0: "ok", 1: "no_non_activating_test", 2: "no_activating_test", 3: "ok"}
    bad = m[m["latent"].isin([1, 2])]
    assert bad[["accuracy", "balanced_accuracy", "auroc", "recall"]].isna().all().all()
    assert not any("w1_" in p or "w2_" in p for p in client.prompts)  # their windows never reach the model
    # means and intervals over the ok latents only
    table = summary_table(m, n_boot=50)
    row = table.set_index(["scorer", "explainer"]).loc[("detection", "default")]
    ok = m[(m["status"] == "ok") & ~m["control"]]
    assert row["latents"] == 2 and row["latents_no_metric"] == 2
    assert row["auroc"] == pytest.approx(ok["auroc"].mean())
    # a metrics table of the old kind (one-class latents with a number) is cleaned by status too
    forged = m.copy()
    forged.loc[forged["latent"] == 1, "balanced_accuracy"] = 1.0
    assert summary_table(forged, n_boot=50).iloc[0]["balanced_accuracy"] == pytest.approx(
        ok["balanced_accuracy"].mean()
    )


def test_only_latents_with_sample_status_ok_are_scored(tmp_path):
    lats = (0, 1, 2)
    latents = pd.DataFrame({"latent": [0, 1, 2], "status": ["ok", "too few activating windows for the test set", "ok"]})
    run, _ = _run(tmp_path, toy_examples(lats), toy_explanations(lats), latents=latents, scorers=["detection"])
    assert sorted(run.metrics()["latent"].unique()) == [0, 2]


def test_real_and_control_are_paired_on_the_same_examples_and_marks(tmp_path):
    # 12.8: more test examples than n_activating / n_non_activating, so selection is random
    lats = (0, 1, 2, 3)
    ex = toy_examples(lats, n_act=12, n_non=12, length=10)
    run, _ = _run(
        tmp_path, ex, toy_explanations(lats, explainers=("default", "tokens")), fuzzing=FuzzingConfig(max_marks=2)
    )
    s = run.scores()
    recs = run.records()
    fuzz = {(r["latent"], r["explainer"], r["control"]): r["rows"] for r in recs if r["scorer"] == "fuzzing"}
    for lat in lats:
        for scorer in ("detection", "fuzzing"):
            ids = {
                (e, c): sorted(g["example_id"])
                for (e, c), g in s[(s["latent"] == lat) & (s["scorer"] == scorer)].groupby(["explainer", "control"])
            }
            assert len(ids) == 4 and all(v == ids[("default", False)] for v in ids.values())
            assert len(ids[("default", False)]) == 8
        marks = {
            k[1:]: sorted((r["example_id"], tuple(r["marks"]), r["label"]) for r in v)
            for k, v in fuzz.items()
            if k[0] == lat
        }
        assert len(marks) == 4 and all(v == marks[("default", False)] for v in marks.values())
    # the selection is random (not simply the first examples) and differs between latents' windows
    picked = set(s[s["latent"] == 0]["example_id"])
    assert picked != {f"{i}:0" for i in list(range(4)) + list(range(12, 16))}


def test_control_permutes_within_one_explainer(tmp_path):
    lats = (0, 1, 2, 3, 4)
    expl = toy_explanations(lats, explainers=("default", "tokens"))
    run, _ = _run(tmp_path, toy_examples(lats), expl, scorers=["detection"])
    recs = [r for r in run.records() if r["scorer"] == "detection"]
    for e in ("default", "tokens"):
        real = {r["latent"]: r["explanation"] for r in recs if r["explainer"] == e and not r["control"]}
        ctrl = {r["latent"]: r["explanation"] for r in recs if r["explainer"] == e and r["control"]}
        assert sorted(real.values()) == sorted(ctrl.values())  # same explainer's explanations only
        assert all(real[k] != ctrl[k] for k in real) and all(v.startswith(e) for v in ctrl.values())
    m = run.metrics()
    assert set(m["explainer"]) == {"default", "tokens"} and len(m) == 5 * 2 * 2


def test_llm_scorers_on_a_subset_cheap_scorers_on_all(tmp_path):
    lats = tuple(range(5))
    cfg = ScoreConfig(scorers=["detection", "embedding", "intruder"], max_llm_latents=2)
    job = ScoreJob("h", toy_examples(lats), toy_explanations(lats, explainers=("default", "tokens")), cfg)
    plan = job.plan()
    units = {name: plan.units(cfg.make(name)) for name in cfg.scorers}
    assert sorted({u[0] for u in units["detection"]}) == [0, 1]  # needs an LLM: the first 2 latents
    assert sorted({u[0] for u in units["embedding"]}) == list(lats)  # no LLM: every latent
    assert len(units["embedding"]) == 5 * 2 * 2 and len(units["detection"]) == 2 * 2 * 2
    assert units["intruder"] == [(0, "none", False), (1, "none", False)]  # no explanation, no control
    # the subset's controls are the full set's: the same donors as for the embedding scorer
    assert all(plan.shuffled[(e, lat)] for lat, e, c in units["detection"] if c)
    run, _ = _run(tmp_path, toy_examples(lats), toy_explanations(lats), scorers=["detection"], max_llm_latents=2)
    assert sorted(run.metrics()["latent"].unique()) == [0, 1]


def test_llm_scorers_take_the_matched_latents_first(tmp_path):
    # under selection mode matched, max_llm_latents covers the matched latents (as explain.max_latents does)
    lats = tuple(range(6))
    cfg = ScoreConfig(scorers=["detection", "embedding"], max_llm_latents=2)
    ex, expl = toy_examples(lats), toy_explanations(lats)
    plan = ScoreJob("h", ex, expl, cfg, first=[5, 3, 9]).plan()  # 9: not a scored latent
    assert sorted({u[0] for u in plan.units(cfg.make("detection"))}) == [3, 5]
    assert sorted({u[0] for u in plan.units(cfg.make("embedding"))}) == list(lats)
    capped = ScoreJob("h", ex, expl, ScoreConfig(scorers=["embedding"], max_latents=3), first=[4]).plan()
    assert capped.latents == [0, 1, 4]
    # the order is part of the fingerprint; without one the fingerprint is the plain run's
    assert ScoreJob("h", ex, expl, cfg, first=[5]).fingerprint() != ScoreJob("h", ex, expl, cfg).fingerprint()
    assert (
        ScoreJob("h", ex, expl, cfg, first=None).fingerprint() == ScoreJob("h", ex, expl, cfg, first=[]).fingerprint()
    )


def test_old_tables_without_explainer_read_as_default(tmp_path):
    lats = (0, 1, 2)
    expl = toy_explanations(lats).drop(columns="explainer")  # explanations of an old run
    run, _ = _run(tmp_path, toy_examples(lats), expl, scorers=["detection"])
    assert set(run.metrics()["explainer"]) == {"default"}
    # an old record line (no explainer, no status) reads as explainer default, status ok
    old = pd.DataFrame(
        {
            "latent": [0, 0],
            "scorer": ["detection"] * 2,
            "control": [False, True],
            "auroc": [0.7, 0.5],
            "accuracy": [0.6, 0.5],
            "n": [8, 8],
            "n_failed": [0, 0],
            "prompt_tokens": [1, 1],
            "completion_tokens": [0, 0],
            "seconds": [0.1, 0.1],
        }
    )
    assert with_explainer(old)["explainer"].tolist() == ["default", "default"]
    flat = summary(old, n_boot=20)
    assert flat["detection.default.auroc"] == pytest.approx(0.7)
    assert flat["detection.default.auroc.delta"] == pytest.approx(0.2)


def test_tables_node_summarises_per_explainer(tmp_path):
    lats = (0, 1, 2, 3)
    run, _ = _run(
        tmp_path, toy_examples(lats), toy_explanations(lats, explainers=("default", "tokens")), scorers=["detection"]
    )
    params = {"scorers": ["detection"], "n_activating": 4, "n_non_activating": 4, "n_bootstrap": 50}
    scores, metrics, table, mlflow, figs = nodes.score_tables(run, params, hookpoint="h")
    assert {"explainer", "status"} <= set(metrics.columns) and "explainer" in scores.columns
    assert sorted(table["explainer"]) == ["default", "tokens"] and not table["too_many_failures"].any()
    for e in ("default", "tokens"):
        assert math.isfinite(mlflow[f"score.h.detection.{e}.auroc"]["value"])
        assert mlflow[f"score.h.detection.{e}.too_many_failures"]["value"] == 0.0
    assert np.isfinite([v["value"] for v in mlflow.values()]).all()


def test_detection_rng_does_not_depend_on_control(tmp_path):
    lats = (0, 1, 2)
    run, client = _run(
        tmp_path,
        toy_examples(lats),
        toy_explanations(lats),
        scorers=["detection"],
        detection=DetectionConfig(mode="logprob"),
    )
    s = run.scores()
    for lat in lats:
        order = [g["example_id"].tolist() for _, g in s[s["latent"] == lat].groupby("control")]
        assert order[0] == order[1]  # the same order of examples in both prompts sets
