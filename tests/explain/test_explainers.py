"""Prompt variants, parsing of explanations and echo detection (no model needed)."""

from __future__ import annotations

import pytest
from explain_data import TEST_ACTIVATING, TEST_NEGATIVE

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.explainers import (
    REGISTRY,
    ExplainConfig,
    ExplainJob,
    build_messages,
    make_explainer,
    mark_example,
    parse_explanation,
    read_explanations,
    select_explainer,
)
from autointerp.llm import Generation, LLMClient, LLMConfig


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
    act = examples[(examples.latent == 0) & (examples.kind == "activating") & (examples.split == "train")]
    neg = examples[(examples.latent == 0) & (examples.kind == "random") & (examples.split == "train")]
    default = build_messages(ExplainConfig(), act, neg)
    user = task(default)
    # worked examples first, and the answer starts with the prefilled label
    assert [m["role"] for m in default] == ["system"] + ["user", "assistant"] * 4
    assert default[-1]["content"] == "Explanation:"
    plain = build_messages(ExplainConfig(few_shot=False, prefill=False), act, neg)
    assert [m["role"] for m in plain] == ["system", "user"] and task(plain) == user
    assert user.count("<<") == user.count(">>") >= 3 and "<<cat>>" in user
    assert "Counter-example" not in user and "Activations:" not in user and "Token statistics" not in user
    acts = task(build_messages(ExplainConfig(), act, explainer="activations"))
    assert "Activations: cat (" in acts
    con = build_messages(ExplainConfig(), act, neg, explainer="contrastive")
    assert "Counter-example 1: Nothing relevant" in task(con) and "NOT active" in con[0]["content"]
    reason = build_messages(ExplainConfig(reasoning=True), act)
    assert "think" in reason[0]["content"] and reason[0]["content"] != default[0]["content"]
    assert len(task(build_messages(ExplainConfig(n_examples=2), act)).splitlines()) == 2
    # the hint: the statistical sentence in the task and in every worked example
    hinted = build_messages(ExplainConfig(hint=True), act, hint='fires on " cat" (100% of activation mass)')
    assert task(hinted).endswith('Token statistics: fires on " cat" (100% of activation mass)')
    assert sum("Token statistics: " in m["content"] for m in hinted if m["role"] == "user") == 4
    assert "Token statistics" not in task(build_messages(ExplainConfig(hint=False), act, hint="fires on x"))


def test_explainers_are_classes_in_a_registry():
    assert set(REGISTRY) == {"default", "activations", "contrastive", "tokens"}
    assert [REGISTRY[n].uses_llm for n in ("default", "activations", "contrastive", "tokens")] == [True] * 3 + [False]
    assert make_explainer("contrastive", ExplainConfig()).name == "contrastive"


class RecordingClient(LLMClient):
    """A backend that answers every chat with a fixed text and keeps the prompts it saw (the
    prompts are what is under test here, not the model)."""

    backend = "recording"

    def __init__(self, answer=" the word cat"):
        super().__init__(LLMConfig())
        self.answer, self.seen = answer, []

    def _generate(self, messages, max_tokens, temperature, done=None):
        self.seen.extend(messages)
        return [Generation(self.answer, 10, 3) for _ in messages]


def test_contrastive_shows_training_negatives_never_test_examples(tmp_path, examples):
    """Issue 12.5 (prompt side): counter-examples come from the training split."""
    client = RecordingClient()
    cfg = ExplainConfig(explainers=["contrastive"], progress=False)
    ExplainJob("layers.2", examples, LLMConfig(), cfg, client=client).run(tmp_path)
    assert len(client.seen) == 3
    for messages in client.seen:
        prompt = "\n".join(m["content"] for m in messages)
        assert "Counter-example 1: Nothing relevant happens here at all." in prompt
        assert TEST_NEGATIVE not in prompt and TEST_ACTIVATING not in prompt
    assert read_explanations(tmp_path).explainer.unique().tolist() == ["contrastive"]


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Explanation: the word cat", "the word cat"),
        ('Let me think. The tokens are animals.\nExplanation: "animals, mostly cats".', "animals, mostly cats"),
        ("[EXPLANATION]: city names", "city names"),
        ("**Explanation:** **numbers**", "numbers"),
        ("digits in text", "digits in text"),
        ("Explanation: <<cat>>", "cat"),
        # issue 12.6: a repeated prefill is stripped
        ("Explanation: Explanation: the word cat", "the word cat"),
        ("Explanation: explanation:   Explanation: cats", "cats"),
        # quotes are balanced: a closing quote is kept, an unclosed one closed, a stray one removed
        ('Explanation: the word "king"', 'the word "king"'),
        ('Explanation: the word "king', 'the word "king"'),
        ('Explanation: the word "king".', 'the word "king"'),
        ('Explanation: "king" and "queen"', '"king" and "queen"'),
        ('Explanation: king"', "king"),
        ("Explanation: “plural nouns”", "plural nouns"),
        # the first explanation wins, not a hallucinated later turn
        ("Explanation: city names\nuser\nExample 1: ...\nExplanation: the word king", "city names"),
        ("Explanation:\nExplanation: verbs of motion\nExplanation: nouns", "verbs of motion"),
        # a control token in an answer is shown as a placeholder
        ("Explanation: the token <|im_start|>", "the token [im_start]"),
    ],
)
def test_parse_ok(raw, expected):
    assert parse_explanation(raw) == (expected, None)


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("", "empty answer"),
        ("   \n ", "empty answer"),
        ("I think it is this.\nOr maybe that.", "no 'Explanation:' line"),
        ('Explanation:  "" ', "empty explanation"),
        # issue 12.6: a bare label (the prefill alone) is a failure, however often repeated
        ("Explanation:", "empty explanation after 'Explanation:'"),
        ("Explanation: Explanation:", "empty explanation after 'Explanation:'"),
        ("Explanation: .", "empty explanation after 'Explanation:'"),
        ("Explanation: <short phrase>", "template"),
        ("Explanation: Example 1:", "repeats the prompt's examples"),
        ("Explanation: example 12: the cat sat", "repeats the prompt's examples"),
    ],
)
def test_parse_failures(raw, reason):
    exp, failure = parse_explanation(raw)
    assert exp is None and reason in failure


def test_parse_reasoning_needs_label_and_length_limit():
    assert parse_explanation("just words", reasoning=True)[0] is None
    exp, _ = parse_explanation("Explanation: " + "word " * 100, max_chars=30)
    assert len(exp) <= 30 and exp.endswith("word")


def test_config_rejects_unknown_variant():
    with pytest.raises(ConfigError, match="explainers: unknown explainer 'fancy'"):
        parse_config(ExplainConfig, {"explainers": ["default", "fancy"]}, "parameters: explain")
    with pytest.raises(ConfigError, match="Did you mean 'n_examples'"):
        parse_config(ExplainConfig, {"n_example": 3}, "parameters: explain")
    with pytest.raises(ConfigError, match="at least one"):
        parse_config(ExplainConfig, {"explainers": []}, "parameters: explain")
    assert parse_config(ExplainConfig, {}, "x").explainers == ["default", "tokens"]


def test_echoed_worked_example_is_a_counted_failure(examples):
    """Issue 14.3: an answer repeating a worked example's explanation is a failure, unless the
    latent's own marked tokens show that example's key (a real "king" latent)."""
    ex = make_explainer("default", ExplainConfig())
    cat = examples[(examples.latent == 0) & (examples.kind == "activating") & (examples.split == "train")]
    messages = ex.messages(cat)
    for answer in (
        "Explanation: the word King",
        'Explanation: the word "king".',
        "Explanation: king",
        "Explanation: Explanation: verbs ending in -ing",
        "Explanation: line breaks in Python code",
    ):
        exp, failure = ex.parse(answer, messages)
        assert exp is None and failure.startswith("echoed worked example"), answer
    assert ex.parse("Explanation: the word cat", messages) == ("the word cat", None)
    assert ex.parse("Explanation: code", messages) == ("code", None)
    king = cat.assign(tokens=cat.tokens.map(lambda t: [" king" if x.strip() == "cat" else x for x in t]))
    assert ex.parse('Explanation: the word "king"', ex.messages(king)) == ('the word "king"', None)
    # without worked examples nothing can be echoed
    plain = make_explainer("default", ExplainConfig(few_shot=False))
    assert plain.parse("Explanation: the word king", plain.messages(cat)) == ("the word king", None)


def test_job_counts_echoes_and_keys_rows_on_latent_and_explainer(tmp_path, examples):
    """Issue 14.2: one table, a row per (latent, explainer); LLM explainers on max_latents only;
    echoes counted as failures; a re-run with more explainers redoes only what is new."""
    cfg = ExplainConfig(explainers=["default", "tokens"], max_latents=2, progress=False)
    echo = RecordingClient(answer=" the word King")
    meta = ExplainJob("layers.2", examples, LLMConfig(), cfg, client=echo).run(tmp_path)
    df = read_explanations(tmp_path)
    assert sorted(zip(df.explainer, df.latent)) == [
        ("default", 0),
        ("default", 1),
        ("tokens", 0),
        ("tokens", 1),
        ("tokens", 2),
    ]
    llm = df[df.explainer == "default"]
    assert llm.explanation.isna().all() and llm.failure.str.startswith("echoed worked example").all()
    assert meta["explainers"] == {
        "default": {"latents": 2, "failed": 2, "echoed_first": 2, "echoed": 2},
        "tokens": {"latents": 3, "failed": 0, "echoed_first": 0, "echoed": 0},
    }
    assert llm.attempts.tolist() == [1 + cfg.echo_retries] * 2  # asked again, echoed every time
    from autointerp.pipelines.explain.nodes import explain_metrics

    m = {k.removeprefix("explain.layers.2."): v["value"] for k, v in explain_metrics(df, hookpoint="layers.2").items()}
    assert m["default.echoed"] == 2 and m["tokens.latents"] == 3 and m["failed"] == 2
    # the recording backend's 10 + 3 per request, three requests per row; statistical rows left out
    assert m["tokens_per_explanation"] == 3 * 13
    tok = df[df.explainer == "tokens"].set_index("latent")
    assert tok.explanation[0].startswith("fires on cat, as in ") and tok.model.eq("statistics").all()
    assert (tok.prompt_tokens == 0).all()
    # adding an explainer and latents: only the new LLM work is done
    client = RecordingClient()
    cfg2 = ExplainConfig(
        explainers=["default", "contrastive", "tokens"], max_latents=3, retry_failed=False, progress=False
    )
    meta = ExplainJob("layers.2", examples, LLMConfig(), cfg2, client=client).run(tmp_path)
    assert meta["explained_this_run"] == 1 + 3 and len(client.seen) == 4
    df = read_explanations(tmp_path)
    assert df.groupby("explainer").size().to_dict() == {"contrastive": 3, "default": 3, "tokens": 3}
    # one explanation per latent for readers that want one: the first LLM explainer by default
    assert select_explainer(df).explainer.unique().tolist() == ["default"]
    assert select_explainer(df, "tokens").latent.tolist() == [0, 1, 2]
    assert select_explainer(df[df.explainer == "tokens"]).explainer.unique().tolist() == ["tokens"]
    # only the configured explainers stay in the table
    ExplainJob("layers.2", examples, LLMConfig(), ExplainConfig(explainers=["tokens"], progress=False)).run(tmp_path)
    assert read_explanations(tmp_path).explainer.unique().tolist() == ["tokens"]
