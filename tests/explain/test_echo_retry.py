"""Issue 14 (echoes -> 0): an answer repeating a worked example, in any small variant, is caught;
the job asks again (``explain.echo_retries``) without the echoed worked example, the last time
with none, and counts first-try and final echoes apart. The retry path runs through the real
``openai`` backend against a loopback chat server that answers an echo first."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from autointerp.explainers import WORKED, ExplainConfig, ExplainJob, make_explainer, read_explanations, repeats
from autointerp.llm import LLMConfig
from autointerp.pipelines.explain.nodes import explain_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_server import ChatServer  # noqa: E402

KING, NEWLINES, ING = (w.answer for w in WORKED)


@pytest.mark.parametrize(
    "answer,worked",
    [
        ('the word "king"', KING),
        ("the word King", KING),
        ("king", KING),
        ("the words kings", KING),
        ("Kings.", KING),
        ("verbs ending in -ing", ING),
        ("verb ending in -ing", ING),  # the variant that slipped through before
        ("Verbs ending in ing", ING),
        ("verbs that end in -ing", ING),
        ("-ing verbs", ING),
        ("words ending with -ing", ING),
        ("line breaks in Python code", NEWLINES),
        ("line break in python", NEWLINES),
        ("the line breaks of code", NEWLINES),
    ],
)
def test_variants_of_a_worked_answer_repeat_it(answer, worked):
    assert repeats(answer, worked)


@pytest.mark.parametrize(
    "answer,worked",
    [
        ("the word cat", KING),
        ("city names", KING),
        ("nouns ending in -tion", ING),
        ("Python keywords", NEWLINES),
        ("names of people", KING),
    ],
)
def test_other_answers_do_not_repeat_it(answer, worked):
    assert not repeats(answer, worked)


@pytest.fixture
def cat(examples):
    return examples[(examples.latent == 0) & (examples.kind == "activating") & (examples.split == "train")]


@pytest.mark.parametrize(
    "answer",
    [
        "Explanation: verb ending in -ing",
        "Explanation: Verbs ending in ing.",
        "Explanation: -ing verbs",
        "Explanation: the word Kings",
        'Explanation: "king"',
        "Explanation: line break in python",
    ],
)
def test_echo_variants_are_counted_failures(answer, cat):
    ex = make_explainer("default", ExplainConfig())
    exp, failure = ex.parse(answer, ex.messages(cat))
    assert exp is None and failure.startswith("echoed worked example"), (answer, exp)


def test_a_latent_showing_the_key_may_be_explained_by_it(cat):
    ex = make_explainer("default", ExplainConfig())
    ing = cat.assign(tokens=cat.tokens.map(lambda t: [" singing" if x.strip() == "cat" else x for x in t]))
    assert ex.parse("Explanation: verb ending in -ing", ex.messages(ing)) == ("verb ending in -ing", None)
    assert ex.parse("Explanation: cats and kittens", ex.messages(cat)) == ("cats and kittens", None)
    # one stray marked "king" among the latent's marked runs does not make the key its own
    many = pd.concat([cat] * 3, ignore_index=True)
    many["tokens"] = [  # row 4: "A small king chased the dog."
        [" king" if k == 4 and x.strip() == "cat" else x for x in toks] for k, toks in enumerate(many.tokens)
    ]
    count = lambda word: sum(x.strip() == word for toks in many.tokens for x in toks)  # noqa: E731
    assert (count("cat"), count("king")) == (11, 1)  # 12 marked runs, one of them "king"
    exp, failure = ex.parse('Explanation: the word "king"', ex.messages(many))
    assert exp is None and failure == 'echoed worked example: the word "king"'


def _llm(url: str) -> LLMConfig:
    return LLMConfig(backend="openai", base_url=url, model="fake-model", api_key_env=None, max_retries=0, timeout=10.0)


def _shown(body: dict) -> list[str]:
    """The worked answers shown in one request (the assistant turns before the prefill)."""
    return [m["content"].removeprefix("Explanation: ") for m in body["messages"][1:-2] if m["role"] == "assistant"]


def test_echo_is_asked_again_without_the_echoed_worked_example(tmp_path, examples):
    """Latent 0: echoes on the first answer, a real one on the retry. Latent 1: echoes every
    time, also on the last retry with no worked example shown: a final, counted failure."""

    def answer(body):
        task = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        asked = sum([m for m in b["messages"] if m["role"] == "user"][-1]["content"] == task for b in server.bodies)
        if "Paris" in task:  # latent 1
            return "verb ending in -ing" if asked % 2 else "the word Kings"
        if "cat" in task and asked == 1:  # latent 0, first answer: a variant of a worked answer
            return "verb ending in -ing"
        return "the word cat" if "cat" in task else "numbers"

    cfg = ExplainConfig(explainers=["default", "tokens"], batch_latents=2, progress=False)
    with ChatServer(answer) as server:
        meta = ExplainJob("layers.2", examples, _llm(server.url), cfg).run(tmp_path)
    df = read_explanations(tmp_path)
    llm = df[df.explainer == "default"].set_index("latent")
    assert llm.explanation[0] == "the word cat" and llm.failure[0] is None
    assert bool(llm.echoed_first[0]) and llm.attempts[0] == 2 and llm.echoes[0] == [ING]
    assert llm.explanation[1] is None and llm.failure[1].startswith("echoed worked example")
    assert bool(llm.echoed_first[1]) and llm.attempts[1] == 1 + cfg.echo_retries
    assert llm.echoes[1] == [ING, KING, ING]  # every worked example counts, also when none is shown
    assert llm.explanation[2] == "numbers" and not llm.echoed_first[2] and llm.attempts[2] == 1
    assert llm.prompt_tokens[1] == 100 * 3 and llm.completion_tokens[1] == 5 * 3  # every request counted
    assert len(server.bodies) == 2 + 3 + 1
    # what was asked: all worked examples first; then without the echoed one; then none at all
    tasks = {}
    for b in server.bodies:
        tasks.setdefault([m for m in b["messages"] if m["role"] == "user"][-1]["content"], []).append(_shown(b))
    paris = next(v for k, v in tasks.items() if "Paris" in k)
    assert sorted(paris[0]) == sorted([KING, NEWLINES, ING])
    assert ING not in paris[1] and KING in paris[1] and NEWLINES in paris[1]
    assert paris[2] == []
    assert all(b["messages"][-1] == {"role": "assistant", "content": "Explanation:"} for b in server.bodies)
    # counted apart: first-try echoes, final echoes
    assert meta["explainers"]["default"] == {"latents": 3, "failed": 1, "echoed_first": 2, "echoed": 1}
    m = {k.removeprefix("explain.layers.2."): v["value"] for k, v in explain_metrics(df, hookpoint="layers.2").items()}
    assert (m["default.echoed_first"], m["default.echoed"], m["default.attempts"]) == (2, 1, 6)
    assert m["tokens.echoed_first"] == 0 and m["tokens.attempts"] == 0

    # without retries the first echo is final
    with ChatServer(answer) as server:
        cfg0 = ExplainConfig(explainers=["default"], echo_retries=0, progress=False)
        ExplainJob("layers.2", examples, _llm(server.url), cfg0).run(tmp_path / "none")
    assert len(server.bodies) == 3
    df0 = read_explanations(tmp_path / "none").set_index("latent")
    assert df0.failure[0].startswith("echoed worked example") and df0.attempts.tolist() == [1, 1, 1]
