"""Metric code on hand-made inputs, fuzzing marks, failure counting, resume (no language model)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from autointerp.llm.base import Generation, OptionLogprobs, Usage
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun
from autointerp.scoring import metrics as M
from autointerp.scoring.base import Example, parse_yes_no_list
from autointerp.scoring.detection import DetectionConfig, DetectionScorer
from autointerp.scoring.fuzzing import FuzzingConfig, fuzzed_examples


def test_confusion_metrics_known_values():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [1, 1, 0, 0, 0, 1, 0, 1]  # tp 3, fn 1, tn 3, fp 1
    assert M.confusion(y, p) == (3, 1, 3, 1)
    assert M.accuracy(y, p) == pytest.approx(6 / 8)
    assert M.precision(y, p) == pytest.approx(3 / 4)
    assert M.recall(y, p) == pytest.approx(3 / 4)
    assert M.f1(y, p) == pytest.approx(0.75)
    y2, p2 = [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]
    assert M.balanced_accuracy(y2, p2) == pytest.approx((1 + 3 / 4) / 2)
    assert math.isnan(M.precision([1, 0], [0, 0]))


def test_auroc_known_values_and_ties():
    assert M.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert M.auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    # pairs (pos, neg): (0.5,0.5) tie .5, (0.5,0.1) 1, (0.9,0.5) 1, (0.9,0.1) 1 -> 3.5/4
    assert M.auroc([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert math.isnan(M.auroc([1, 1], [0.2, 0.3]))


def test_recall_per_quantile_and_latent_metrics_count_failures():
    labels = [1, 1, 1, 1, 0, 0]
    preds = [1, 0, None, 1, 0, 1]
    quant = [0, 0, 1, 1, -1, -1]
    failed = [False, False, True, False, False, False]
    m = M.latent_metrics(labels, preds, [0.9, 0.2, None, 0.8, 0.1, 0.7], quant, failed, 2)
    assert m["n"] == 6 and m["n_failed"] == 1
    assert m["recall_q0"] == 0.5 and m["recall_q1"] == 1.0  # the failed one is neither hit nor miss
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["auroc"] == pytest.approx(5 / 6)


def test_bootstrap_and_derangement():
    v, lo, hi = M.bootstrap_ci([0.5, 0.6, 0.7, 0.8, float("nan")], n_boot=200)
    assert v == pytest.approx(0.65) and lo <= v <= hi and lo < hi
    rng = np.random.default_rng(0)
    for n in (2, 3, 10):
        perm = M.derangement(n, rng)
        assert sorted(perm) == list(range(n)) and not (perm == np.arange(n)).any()


def _example(i, kind, n=12):
    acts = [0.0] * n
    if kind == "activating":
        acts[i % n] = 3.0
    return Example(f"{i}:0", kind, 0 if kind == "activating" else -1, [f" w{j}" for j in range(n)], acts)


def test_fuzzing_marks_differ_between_examples():
    examples = [_example(i, "activating") for i in range(10)] + [_example(100 + i, "random") for i in range(10)]
    items = fuzzed_examples(examples, FuzzingConfig(), np.random.default_rng(0))
    wrong = [tuple(m) for e, m, label in items if label == 0]
    assert len(set(wrong)) > len(wrong) // 2  # own random marks, not one repeated pattern
    for e, m, label in items:
        truly = {i for i, a in enumerate(e.activations) if a > 0}
        assert (set(m.tolist()) == truly) == bool(label)
    assert sum(label for *_, label in items) == 5  # half of the activating examples are right


class FailingClient:
    """A client whose every request fails the way a broken server's would."""

    usage = Usage()

    def option_logprobs(self, messages, options):
        return [OptionLogprobs(error="HTTP 500") for _ in messages]

    def generate(self, messages, max_tokens=None, temperature=None):
        return [Generation("I think these are all about kings.") for _ in messages]


def test_parse_answers():
    assert parse_yes_no_list("1: yes\n2: No\n3: yes", 3) == [1, 0, 1]
    assert parse_yes_no_list("[1, 0, 1]", 3) == [1, 0, 1]
    assert parse_yes_no_list("1: yes", 3) == [1, None, None]


@pytest.mark.parametrize("mode", ["logprob", "generation"])
def test_failures_are_counted_not_scored(mode, tmp_path):
    examples = [_example(i, "activating") for i in range(4)] + [_example(10 + i, "random") for i in range(4)]
    out = DetectionScorer(DetectionConfig(mode=mode, examples_per_prompt=4)).score(
        "the word w3", examples, FailingClient(), np.random.default_rng(0)
    )
    assert len(out.rows) == 8 and all(r["failure"] and r["prediction"] is None for r in out.rows)
    # through the runner: counted in the metrics table
    rows = []
    for lat in (0, 1):
        for i, e in enumerate(examples):
            rows.append(
                {
                    "hookpoint": "h",
                    "latent": lat,
                    "split": "test",
                    "kind": e.kind,
                    "quantile": e.quantile,
                    "context": i,
                    "start": 0,
                    "tokens": e.tokens,
                    "activations": e.activations,
                }
            )
    expl = pd.DataFrame({"latent": [0, 1], "explanation": ["the word w3", "the word w5"]})
    cfg = ScoreConfig(scorers=["detection"], detection=DetectionConfig(mode=mode))
    ScoreJob("h", pd.DataFrame(rows), expl, cfg, client=FailingClient(), progress=False).run(tmp_path)
    m = ScoreRun(tmp_path).metrics()
    assert len(m) == 4  # two latents, real and control
    assert (m["n_failed"] == 8).all() and (m["n"] == 8).all() and m["accuracy"].isna().all()
