"""Issue 12.4: control tokens inside prompts. Real windows holding SmolLM2's `<|im_start|>` /
`<|im_end|>` (and another added special token) go through every prompt builder of every stage;
the prompts are encoded by the real SmolLM2 chat template (the local backend's ``chat_ids``),
and the control tokens in them must be exactly the template's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from autointerp.examples import TokenStrings, display_text, display_token, display_window, special_token_strings
from autointerp.explainers import ExplainConfig, TokensExplainer, build_messages, corpus_counts
from autointerp.llm import Generation, LLMClient, LLMConfig, OptionLogprobs, TokenLogprobs
from autointerp.scoring.base import Example
from autointerp.scoring.detection import DetectionConfig, DetectionScorer
from autointerp.scoring.fuzzing import FuzzingConfig, FuzzingScorer
from autointerp.scoring.intruder import IntruderConfig, IntruderScorer
from autointerp.scoring.simulation import SimulationConfig, SimulationScorer
from autointerp.scoring.surprisal import SurprisalConfig, SurprisalScorer

DOCS = [
    "The king rode out at dawn.",
    "Rain fell on the quiet town.",
    "She opened the old letter slowly.",
    "import os\nimport sys",
    "Numbers like 42 and 7 appear here.",
    "A cat sat near the warm fire.",
]


def test_display_helpers():
    assert display_token("<|im_start|>") == "[im_start]" and display_token("<|im_end|>") == "[im_end]"
    assert display_token("<bos>") == "[bos]" and display_token("</s>") == "[/s]" and display_token("[INST]") == "[inst]"
    assert display_token("\n") == "\\n" and display_token(" king") == " king"
    # a control token spelled over several tokens is caught in the joined window
    assert display_window(["a <", "|im_", "end", "|>", " b"]) == "a [im_end] b"
    assert display_text(display_text("x<|endoftext|>y")) == "x[endoftext]y"  # idempotent
    assert display_text("<div>ok</div> a<b") == "<div>ok</div> a<b"  # ordinary markup is left alone
    assert display_text("see ~~X~~", extra=("~~X~~",)) == "see [~~x~~]"


@pytest.fixture(scope="module")
def local():
    from autointerp.llm.local import LocalClient

    return LocalClient(LLMConfig())


def special_windows(tok):
    """Windows of a corpus whose documents are separated like the project's corpus (BOS/EOS
    `<|im_start|>`), with `<|im_end|>` and `<filename>` inside, as the sample stage builds them."""
    ids = []
    for k, d in enumerate(DOCS):
        ids += [1] + tok.encode(d, add_special_tokens=False) + ([2] if k % 2 else [6])
    strings = TokenStrings(tok)
    out = []
    for s in range(0, len(ids) - 12, 6):
        w = ids[s : s + 12]
        out.append((w, strings.window(w)))
    assert sum(any(t in (1, 2, 6) for t in w) for w, _ in out) >= 6
    return out


class Recorder(LLMClient):
    """Keeps every prompt the stages build (answers are irrelevant here)."""

    backend = "recording"

    def __init__(self):
        super().__init__(LLMConfig())
        self.chats, self.plain = [], []

    def _generate(self, messages, max_tokens, temperature, done=None):
        self.chats.extend(messages)
        return [Generation("1: yes\n2: no\n3: yes\n4: no\n5: yes") for _ in messages]

    def _option_logprobs(self, messages, options, done=None):
        self.chats.extend(messages)
        return [OptionLogprobs({o: -1.0 for o in options}) for _ in messages]

    def _continuation_logprobs(self, prefixes, texts, done=None):
        self.plain.extend(p + t for p, t in zip(prefixes, texts))
        return [TokenLogprobs([-1.0] * 3, ["a", "b", "c"]) for _ in texts]


def test_prompts_of_every_stage_hold_only_the_templates_control_tokens(local, model_and_tokenizer):
    tok = model_and_tokenizer[1]
    control = {i for i, t in tok.added_tokens_decoder.items() if t.special}
    assert {1, 2, 6} <= control and special_token_strings(tok) >= {"<|im_start|>", "<|im_end|>", "<filename>"}
    wins = special_windows(tok)
    rows = []
    for k, (ids, toks) in enumerate(wins):
        acts = [3.0 if i == 1 else 0.0 for i in ids]  # a latent that fires on the document start
        if max(acts) == 0:
            acts[len(acts) // 2] = 1.0
        rows.append(
            dict(
                latent=0,
                split="train",
                kind="activating",
                tokens=toks,
                token_ids=ids,
                activations=acts,
                max_activation=max(acts),
                context=k,
                start=0,
            )
        )
    act = pd.DataFrame(rows)
    neg = act.assign(kind="random", activations=act.activations.map(lambda a: [0.0] * len(a)), max_activation=0.0)
    hint, failure, _ = TokensExplainer(ExplainConfig()).explain(act, corpus_counts(np.asarray(sum(act.token_ids, []))))
    assert failure is None and "fires on [im_start]" in hint  # the statistical explainer names the placeholder

    def check(messages):
        got = [i for i in local.chat_ids(messages) if i in control]
        own = [i for i in local.chat_ids([{**m, "content": "x"} for m in messages]) if i in control]
        assert got == own, [m["content"] for m in messages]

    prompts = [
        build_messages(ExplainConfig(), act, neg, explainer=name) for name in ("default", "activations", "contrastive")
    ]
    prompts.append(build_messages(ExplainConfig(hint=True), act, hint=hint))
    prompts.append(build_messages(ExplainConfig(reasoning=True, few_shot=False, prefill=False), act))
    for messages in prompts:
        check(messages)
        assert "[im_start]" in messages[-2 if messages[-1]["role"] == "assistant" else -1]["content"]
    # the windows really hold control tokens: shown verbatim they would add fake turns
    raw = [{"role": "user", "content": "".join(toks)} for _, toks in wins]
    assert len([i for i in local.chat_ids(raw) if i in control]) > len(
        [i for i in local.chat_ids([{**m, "content": "x"} for m in raw]) if i in control]
    )

    examples = [
        Example(
            f"{k}:0",
            "activating" if k % 2 else "random",
            k % 3,
            toks,
            [3.0 if i == 1 else (0.5 if k % 2 and j == 3 else 0.0) for j, i in enumerate(ids)],
        )
        for k, (ids, toks) in enumerate(wins)
    ]
    rec = Recorder()
    rng = np.random.default_rng(0)
    scorers = [
        DetectionScorer(DetectionConfig()),
        DetectionScorer(DetectionConfig(mode="generation")),
        FuzzingScorer(FuzzingConfig()),
        FuzzingScorer(FuzzingConfig(mode="generation")),
        SimulationScorer(SimulationConfig(max_examples=2)),
        IntruderScorer(IntruderConfig()),
        IntruderScorer(IntruderConfig(mode="generation", n_activating=2)),
        SurprisalScorer(SurprisalConfig()),
    ]
    for sc in scorers:
        sc.score("the start of a document", examples, rec, rng)
    assert len(rec.chats) > 20 and rec.plain
    for messages in rec.chats:
        check(messages)
    assert any("[im_start]" in m[-1]["content"] for m in rec.chats)
    for text in rec.plain:  # surprisal: plain text, no template at all
        assert not [i for i in tok.encode(text, add_special_tokens=False) if i in control], text
