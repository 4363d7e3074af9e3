"""The local backend on the real SmolLM2: generation, option and continuation log-probabilities."""

from __future__ import annotations

import math

import pytest

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.llm import Generation, LLMConfig, make_client

Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
Q2 = [{"role": "user", "content": "Is fire hot? Answer Yes or No."}]


@pytest.fixture(scope="module")
def client(tmp_path_factory, model_and_tokenizer):
    return make_client(LLMConfig(cache_dir=str(tmp_path_factory.mktemp("cache")), batch_size=4))


def test_generate_batched_matches_single(client):
    batch = client.generate([Q, Q2, [{"role": "user", "content": "Count to three."}]], max_tokens=8)
    assert all(isinstance(g, Generation) and g.error is None and not g.cached for g in batch)
    assert "paris" in batch[0].text.lower()
    assert all(0 < g.completion_tokens <= 8 and g.prompt_tokens > 10 for g in batch)
    single = make_client(LLMConfig(batch_size=1)).generate([Q], max_tokens=8)[0]
    assert single.text == batch[0].text  # left padding does not change greedy answers
    u = client.usage
    assert u.requests == 3 and u.completion_tokens == sum(g.completion_tokens for g in batch)
    again = client.generate([Q], max_tokens=8)[0]
    assert again.cached and again.text == batch[0].text
    assert client.usage.requests == 3 and client.usage.cached_requests == 1


def test_option_logprobs(client):
    res = client.option_logprobs([Q2, Q], options=["Yes", "No", "10"])
    for r in res:
        assert set(r) == {"Yes", "No", "10"} and all(v < 0 and math.isfinite(v) for v in r.values())
    # "10" is two tokens: the full option is less likely than its first token alone.
    one = client.option_logprobs([Q2], options=["1"])[0]["1"]
    assert res[0]["10"] < one
    assert res[0]["Yes"] > res[0]["10"]


def test_continuation_logprobs(client):
    lp = client.continuation_logprobs(["The capital of France is", "The capital of France is"], [" Paris", " banana"])
    assert len(lp[0]) == len(lp[0].tokens) >= 1
    assert sum(lp[0]) > sum(lp[1])
    assert "".join(lp[1].tokens) == " banana"


def test_config_errors():
    with pytest.raises(ConfigError, match="base_url"):
        parse_config(LLMConfig, {"backend": "openai"}, "parameters: llm")
    with pytest.raises(ConfigError, match="unknown backend"):
        parse_config(LLMConfig, {"backend": "vllm"}, "parameters: llm")


def test_option_logprobs_sum_single_token_spellings(client):
    """The local backend follows the OpenAI-compatible rule: P(option) sums the first-token
    probabilities of the option's spellings that are one token each."""
    import torch

    from autointerp.llm.base import option_spellings

    _, tok = client._load()
    ids = client.option_token_ids("Yes")
    singles = [s for s in option_spellings("Yes") if len(tok.encode(s, add_special_tokens=False)) == 1]
    assert len(ids) == len(singles) >= 2  # e.g. "Yes", " Yes", "yes", " yes" in SmolLM2's vocabulary
    ids = client.chat_ids(Q2)
    last = client._logprobs_at([ids], [range(len(ids) - 1, len(ids))])[0][0]
    by_hand = math.log(sum(math.exp(float(last[tok.encode(s, add_special_tokens=False)[0]])) for s in singles))
    res = client.option_logprobs([Q2], options=["Yes"])[0]["Yes"]
    assert res == pytest.approx(by_hand, abs=1e-4)
    assert res > float(last[tok.encode("Yes", add_special_tokens=False)[0]])  # more than "Yes" alone
    assert torch.isfinite(torch.tensor(res))


def test_head_at_the_needed_positions_only_gives_the_full_forwards_log_probs(client):
    """``_logprobs_at`` runs the model's head at the asked positions only (``logits_to_keep``);
    its log-probabilities are those of a plain forward over every position, row by row, in a
    right-padded batch of unequal lengths."""
    import torch

    model, tok = client._load()
    seqs = [tok.encode(t) for t in ("The capital of France is Paris.", "Fire is hot and ice is cold, they say.")]
    spans = [range(2, len(seqs[0])), range(0, 3)]
    got = client._logprobs_at(seqs, spans)
    for s, span, lp in zip(seqs, spans, got):
        with torch.inference_mode():
            full = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0].float(), -1)
        assert lp.shape == (len(span), full.shape[-1])
        assert torch.allclose(lp, full[list(span)], atol=0.1), (lp - full[list(span)]).abs().max()
        assert (lp.argmax(-1) == full[list(span)].argmax(-1)).float().mean() > 0.9
