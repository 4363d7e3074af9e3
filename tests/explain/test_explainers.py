"""Prompt variants and parsing of explanations (no model needed)."""

from __future__ import annotations

import pytest

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.explainers import ExplainConfig, build_messages, mark_example, parse_explanation


def test_mark_example_groups_runs_and_keeps_text():
    toks = ["The", " big", " cat", " sat", "."]
    text, marked = mark_example(toks, [0, 2.0, 5.0, 0.1, 0], threshold=0.3)
    assert text == "The <<big cat>> sat."
    assert marked == [1, 2]
    assert text.replace("<<", "").replace(">>", "") == "".join(toks)


def task(messages):
    """The user message that holds the latent's examples (after any worked examples)."""
    return [m for m in messages if m["role"] == "user"][-1]["content"]


def test_prompt_variants(examples):
    act = examples[(examples.latent == 0) & (examples.kind == "activating")]
    neg = examples[(examples.latent == 0) & (examples.kind == "random") & (examples.split == "train")]
    default = build_messages(ExplainConfig(), act, neg)
    user = task(default)
    # worked examples first, and the answer starts with the prefilled label
    assert [m["role"] for m in default] == ["system"] + ["user", "assistant"] * 4
    assert default[-1]["content"] == "Explanation:"
    plain = build_messages(ExplainConfig(few_shot=False, prefill=False), act, neg)
    assert [m["role"] for m in plain] == ["system", "user"] and task(plain) == user
    assert user.count("<<") == user.count(">>") >= 3 and "<<cat>>" in user
    assert "Counter-example" not in user and "Activations:" not in user
    acts = task(build_messages(ExplainConfig(explainer="activations"), act))
    assert "Activations: cat (" in acts
    con = build_messages(ExplainConfig(explainer="contrastive"), act, neg)
    assert "Counter-example 1: Nothing relevant" in task(con) and "NOT active" in con[0]["content"]
    reason = build_messages(ExplainConfig(reasoning=True), act)
    assert "think" in reason[0]["content"] and reason[0]["content"] != default[0]["content"]
    assert len(task(build_messages(ExplainConfig(n_examples=2), act)).splitlines()) == 2


@pytest.mark.parametrize("raw,expected", [
    ("Explanation: the word cat", "the word cat"),
    ("Let me think. The tokens are animals.\nExplanation: \"animals, mostly cats\".", "animals, mostly cats"),
    ("[EXPLANATION]: city names", "city names"),
    ("**Explanation:** **numbers**", "numbers"),
    ("digits in text", "digits in text"),
    ("Explanation: <<cat>>", "cat"),
])
def test_parse_ok(raw, expected):
    assert parse_explanation(raw, ExplainConfig()) == (expected, None)


@pytest.mark.parametrize("raw,reason", [
    ("", "empty answer"),
    ("I think it is this.\nOr maybe that.", "no 'Explanation:' line"),
    ("Explanation:  \"\" ", "empty explanation"),
])
def test_parse_failures(raw, reason):
    exp, failure = parse_explanation(raw, ExplainConfig())
    assert exp is None and reason in failure


def test_parse_reasoning_needs_label_and_length_limit():
    assert parse_explanation("just words", ExplainConfig(reasoning=True))[0] is None
    exp, _ = parse_explanation("Explanation: " + "word " * 100, ExplainConfig(max_chars=30))
    assert len(exp) <= 30 and exp.endswith("word")


def test_config_rejects_unknown_variant():
    with pytest.raises(ConfigError, match="explainer"):
        parse_config(ExplainConfig, {"explainer": "fancy"}, "parameters: explain")
    with pytest.raises(ConfigError, match="Did you mean 'n_examples'"):
        parse_config(ExplainConfig, {"n_example": 3}, "parameters: explain")


def test_parse_rejects_echoed_template():
    exp, failure = parse_explanation("Explanation: <short phrase>", ExplainConfig())
    assert exp is None and "template" in failure
