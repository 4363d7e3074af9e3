"""Fuzzing marks only silent tokens and counts what it leaves out (12.7); simulation's expected
activation against a hand computation with a stand-in that reads first tokens (12.9)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from score_toy import HashClient, toy_examples, toy_explanations

from autointerp.llm.base import OptionLogprobs, Usage
from autointerp.scoring import ScoreConfig, ScoreJob, ScoreRun
from autointerp.scoring.base import Example
from autointerp.scoring.fuzzing import FuzzingConfig, FuzzingScorer, fuzzed_examples
from autointerp.scoring.simulation import OPTIONS, SimulationConfig, SimulationScorer


def _fuzz_examples():
    return [
        # every visible token fires; the silent one is an empty string (shown as nothing): no place for wrong marks
        Example("all-firing", "activating", 0, [" the", " king", " spoke", ""], [1.0, 5.0, 2.0, 0.0]),
        Example("a1", "activating", 0, [" a", " king", " said", " so"], [0.0, 4.0, 0.0, 0.0]),
        Example("a2", "activating", 1, [" the", " king", " went", " home"], [0.0, 3.0, 0.0, 0.0]),
        Example("a3", "activating", 1, [" one", " two", " king", " four"], [0.0, 0.0, 6.0, 0.0]),
        Example("n1", "random", -1, [" no", " one", " is", " here"], [0.0, 0.0, 0.0, 0.0]),
        Example("n2", "random", -1, [" some", " thing", " else", " now"], [0.0, 0.0, 0.0, 0.0]),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_fuzzing_wrong_marks_only_on_silent_tokens_and_skips_are_counted(seed):
    examples = _fuzz_examples()
    items = fuzzed_examples(examples, FuzzingConfig(), np.random.default_rng(seed))
    assert "all-firing" not in {e.example_id for e, _, _ in items} and len(items) == 5
    for e, marks, label in items:
        acts = np.asarray(e.activations)[marks]
        if label == 0:
            assert (acts <= 0).all() and all(e.visible[m] for m in marks)  # "incorrect" = silent tokens only
        else:
            assert (acts > 0).all()
    out = FuzzingScorer(FuzzingConfig()).score("the word king", examples, HashClient(), np.random.default_rng(seed))
    assert out.extra["n_skipped"] == 1 and len(out.rows) == 5


def test_fuzzing_skips_reach_the_metrics_table(tmp_path):
    ex = toy_examples((0, 1), n_act=4, n_non=4, length=3)
    firing = (ex["latent"] == 0) & (ex["kind"] == "activating") & (ex["context"] == 0)
    ex.loc[firing, "activations"] = ex.loc[firing, "activations"].map(lambda a: [1.0, 1.0, 1.0])
    cfg = ScoreConfig(scorers=["fuzzing"], n_activating=4, n_non_activating=4, control=False)
    ScoreJob("h", ex, toy_explanations((0, 1)), cfg, client=HashClient(), progress=False).run(tmp_path)
    m = ScoreRun(tmp_path).metrics().set_index("latent")
    assert m.loc[0, "n_skipped"] == 1 and m.loc[1, "n_skipped"] == 0
    assert m.loc[0, "n"] == 7 and m.loc[1, "n"] == 8


class FirstTokenReader:
    """A stand-in model whose answer, for the token marked in the prompt, is drawn from a known
    distribution over whole answers; like a real log-prob reader it gives each option the
    probability of its *first token* (one character per token, as SmolLM2 splits digits)."""

    def __init__(self, answers: dict[str, dict[str, float]]):
        self.answers, self.usage, self.options = answers, Usage(), []

    def option_logprobs(self, messages, options):
        self.options.append(list(options))
        out = []
        for m in messages:
            marked = re.search(r"<<(.*?)>>", m[-1]["content"]).group(1).strip()
            dist = self.answers[marked]
            out.append(
                OptionLogprobs(
                    {o: math.log(sum(p for a, p in dist.items() if a[0] == o[0]) or 1e-300) for o in options}
                )
            )
        return out


def test_simulation_expected_value_matches_a_hand_computation():
    # answers per marked word: "1" and "8" half each -> expected 4.5 (a scale with "10" would also give
    # "10" the first-token mass of "1" and report (1 + 10 + 8) / 3 = 6.33)
    answers = {
        "king": {"1": 0.5, "8": 0.5},
        "a": {"0": 1.0},
        "said": {"2": 0.25, "0": 0.75},
        "no": {"0": 0.9, "3": 0.1},
        "one": {"0": 0.6, "9": 0.4},
    }
    act = Example("a1", "activating", 0, [" a", " king", " said"], [0.0, 4.0, 1.0])
    non = Example("n1", "random", -1, [" no", " one"], [0.0, 0.0])
    client = FirstTokenReader(answers)
    out = SimulationScorer(SimulationConfig(max_examples=2, threshold=3.0)).score(
        "the word king", [act, non], client, np.random.default_rng(0)
    )
    assert not any(a != b and b.startswith(a) for a in OPTIONS for b in OPTIONS)  # no option is a prefix of another
    assert all(o == OPTIONS for o in client.options) and all(len(o) == 1 for o in OPTIONS)
    # by hand: predicted activation per token = expected answer
    pred = {"a": 0.0, "king": 0.5 * 1 + 0.5 * 8, "said": 0.25 * 2, "no": 0.1 * 3, "one": 0.4 * 9}
    rows = {r["example_id"]: r for r in out.rows}
    assert rows["a1"]["score"] == pytest.approx(4.5) and rows["a1"]["prediction"] == 1
    assert rows["n1"]["score"] == pytest.approx(3.6) and rows["n1"]["prediction"] == 1
    true = [0.0, 9.0, 9 * 1.0 / 4.0, 0.0, 0.0]  # true activations on the same 0..9 scale (9 = the maximum)
    predicted = [pred["a"], pred["king"], pred["said"], pred["no"], pred["one"]]
    assert out.extra["correlation"] == pytest.approx(np.corrcoef(predicted, true)[0, 1])


class WordReader:
    """Plain-text continuation log-probs with whitespace "tokens": log P of each answer token is a
    known function of the text it answers (the ``Text k: ...`` line above it)."""

    def __init__(self, p_yes: dict[str, float]):
        self.p_yes, self.usage, self.calls = p_yes, Usage(), []

    def continuation_logprobs(self, prefixes, texts):
        from autointerp.llm.base import TokenLogprobs

        out = []
        for pre, text in zip(prefixes, texts):
            self.calls.append((pre, text))
            answered = iter(re.findall(r"Text \d+: (.*)\nFires: (Yes|No)", text))
            toks = re.findall(r"\s*\S+", text)
            vals = []
            for i, t in enumerate(toks):
                if t.strip() in ("Yes", "No") and toks[i - 1].strip() == "Fires:":
                    line, word = next(answered)
                    p = self.p_yes[line]
                    vals.append(math.log(p if word == "Yes" else 1 - p))
                else:
                    vals.append(-1.0)
            out.append(TokenLogprobs(vals, toks))
        return out


def test_batched_mode_reads_p_yes_per_example_from_one_request_per_batch():
    from autointerp.scoring.base import yes_no_judgements

    texts = [f"text number {i}" for i in range(7)]
    truth = {t: 0.1 + 0.1 * i for i, t in enumerate(texts)}
    client = WordReader(truth)
    out = yes_no_judgements(
        client, 'Its description: "numbers".', texts, "Does it fire?", "batched", 3, rng=np.random.default_rng(0)
    )
    assert len(client.calls) == 3  # 7 texts, 3 per request
    assert [s for _, s, _ in out] == pytest.approx([truth[t] for t in texts])
    assert [p for p, _, _ in out] == [int(truth[t] > 0.5) for t in texts]
    # the answers written in the prompts are a random mix, not all one word and not the truth
    written = re.findall(r"Fires: (Yes|No)", "".join(t for _, t in client.calls))
    assert len(written) == 7 and 0 < written.count("Yes") < 7


def test_embedding_scorer_embeds_each_example_once_and_scores_as_before(monkeypatch):
    from autointerp import embeddings
    from autointerp.scoring import embedding as emb_mod
    from autointerp.scoring.base import Example
    from autointerp.scoring.embedding import EmbeddingConfig, EmbeddingScorer

    exs = [
        Example(
            f"0:{i}", "activating" if i < 2 else "random", 0, [" the", w, " sat"], [0.0, 1.0 if i < 2 else 0.0, 0.0]
        )
        for i, w in enumerate([" cat", " dog", " sky", " tax"])
    ]
    calls = []

    def counting(texts, model_name=None, **kw):
        calls.append(list(texts))
        return embeddings.embed(texts, model_name, **kw)

    monkeypatch.setattr(emb_mod, "embed", counting)
    scorer = EmbeddingScorer(EmbeddingConfig())
    first = scorer.score("animals", exs, None, np.random.default_rng(0)).rows
    second = scorer.score("the weather", exs, None, np.random.default_rng(0)).rows
    # the examples were embedded in the first unit only; the second embeds its explanation alone
    assert sum(len(c) for c in calls) == 1 + len(exs) + 1
    # the same model at the scorer's resolved dtype (bfloat16 where the CPU has it natively)
    direct = embeddings.embed(["animals"] + [e.text() for e in exs], dtype=scorer.cfg.dtype)
    assert np.allclose([r["score"] for r in first], direct[1:] @ direct[0], atol=1e-5)
    assert [r["example_id"] for r in second] == [e.example_id for e in exs]
