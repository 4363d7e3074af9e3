"""Option log-probabilities sum the probability mass of every spelling of an option (issue 12.10),
read from a recorded vLLM chat-completions response with ``top_logprobs``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from autointerp.llm import LLMConfig, make_client
from autointerp.llm.base import option_spellings
from autointerp.llm.openai_compat import option_values
from autointerp.scoring.base import normalised_probs

RECORDED = json.loads((Path(__file__).parent / "data" / "chat_logprobs_vllm.json").read_text())
# By hand from the recorded top_logprobs (exp of each listed log-prob):
#   Yes: "Yes" 0.5 + " Yes" 0.1 + "yes" 0.05 + "YES" 0.005 + " yes" 0.002           = 0.657
#   No:  "No" 0.25 + " No" 0.04 + "no" 0.02 + "NO" 0.0005 + " no" 0.00000625        = 0.31050625
# ("Y", "Nope", "**", "The" ... are not spellings of either option.)
P_YES, P_NO = 0.657, 0.31050625


def test_spellings():
    assert option_spellings("Yes") == ["Yes", " Yes", "yes", " yes", "YES", " YES"]
    assert option_spellings(" no") == ["no", " no", "NO", " NO", "No", " No"]
    assert option_spellings("7") == ["7", " 7"]


def test_recorded_response_sums_spellings():
    first = RECORDED["choices"][0]["logprobs"]["content"][0]
    v = option_values(first, {o: option_spellings(o) for o in ("Yes", "No", "Maybe", "10")})
    assert math.exp(v["Yes"]) == pytest.approx(P_YES, rel=1e-4)
    assert math.exp(v["No"]) == pytest.approx(P_NO, rel=1e-4)
    assert math.exp(v["Maybe"]) == pytest.approx(math.exp(-10.5966))
    assert v["10"] == -math.inf  # not listed
    # The old rule (max over " Yes"/"Yes", lower case ignored) read P(yes) = 0.5 / 0.75 = 0.667.
    p = normalised_probs(v, ["Yes", "No"])
    assert p[0] == pytest.approx(P_YES / (P_YES + P_NO), rel=1e-4)
    assert abs(p[0] - 0.5 / 0.75) > 0.01


def test_recorded_response_through_the_client(fake_server, tmp_path):
    srv = fake_server(recorded=RECORDED)
    client = make_client(
        LLMConfig(
            backend="openai", model="fake-model", base_url=srv.url, api_key_env=None, cache_dir=str(tmp_path / "cache")
        )
    )
    (lp,) = client.option_logprobs([[{"role": "user", "content": "Is it?"}]], options=["Yes", "No"])
    assert lp.error is None and lp.prompt_tokens == 93
    assert math.exp(lp["Yes"]) == pytest.approx(P_YES, rel=1e-4)
    assert math.exp(lp["No"]) == pytest.approx(P_NO, rel=1e-4)
    (again,) = make_client(client.cfg).option_logprobs([[{"role": "user", "content": "Is it?"}]], options=["Yes", "No"])
    assert again.cached and dict(again) == dict(lp)  # the cache keeps the summed values
