"""Hand-made examples, explanations and a deterministic stand-in client for the score unit tests.

The client is a plain class implementing the LLM client interface (``usage``, ``option_logprobs``,
``continuation_logprobs``, ``generate``) whose answers are a pure function of the prompt, so
that tests can check the arithmetic and the bookkeeping of the runner without a model.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd

from autointerp.llm.base import Generation, OptionLogprobs, TokenLogprobs, Usage


def _u(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


class HashClient:
    """P(yes) = a hash of the prompt; every call is recorded."""

    def __init__(self):
        self.usage = Usage()
        self.prompts: list[str] = []

    def option_logprobs(self, messages, options):
        out = []
        for m in messages:
            text = m[-1]["content"]
            self.prompts.append(text)
            self.usage = Usage(requests=self.usage.requests + 1, prompt_tokens=self.usage.prompt_tokens + len(text))
            p = 0.05 + 0.9 * _u(text)
            out.append(
                OptionLogprobs(
                    {o: math.log(p if i == 0 else (1 - p) / (len(options) - 1)) for i, o in enumerate(options)}
                )
            )
        return out

    def continuation_logprobs(self, prefixes, texts):
        self.prompts += list(prefixes)
        return [TokenLogprobs([-_u(p + t)] * 3, ["a", "b", "c"]) for p, t in zip(prefixes, texts)]

    def generate(self, messages, max_tokens=None, temperature=None):
        return [Generation("1: yes") for _ in messages]


def toy_examples(
    latents=(0, 1, 2),
    n_act: int = 6,
    n_non: int = 6,
    n_quantiles: int = 3,
    length: int = 8,
    hookpoint: str = "h",
    no_non=(),
    no_act=(),
) -> pd.DataFrame:
    """Test (and a few train) windows: latent ``l`` fires on token ``l % length`` of its
    activating windows. Latents in ``no_non`` get no non-activating test window, those in
    ``no_act`` no activating one."""
    rows = []
    for lat in latents:
        for i in range(n_act + n_non + 2):
            split = "train" if i >= n_act + n_non else "test"
            kind = "activating" if (i < n_act or split == "train") else "random"
            if split == "test" and ((kind == "random" and lat in no_non) or (kind == "activating" and lat in no_act)):
                continue
            acts = [0.0] * length
            if kind == "activating":
                acts[(lat + i) % length] = 1.0 + i
            rows.append(
                {
                    "hookpoint": hookpoint,
                    "latent": lat,
                    "split": split,
                    "kind": kind,
                    "quantile": i % n_quantiles if kind == "activating" else -1,
                    "context": 100 * lat + i,
                    "start": 0,
                    "tokens": [f" w{lat}_{i}_{j}" for j in range(length)],
                    "activations": acts,
                }
            )
    return pd.DataFrame(rows)


def toy_explanations(latents=(0, 1, 2), explainers=("default",)) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"latent": lat, "explainer": e, "explanation": f"{e} explanation of latent {lat}"}
            for e in explainers
            for lat in latents
        ]
    )
