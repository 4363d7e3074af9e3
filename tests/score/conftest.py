"""Ground truth for the scorers: "latents" that are known detectors, on real text.

Windows of 32 tokens are cut from real Shakespeare and Python documentation with the real
SmolLM2 tokenizer. Latent 0 fires exactly on the word " king", latent 1 on " love", latent 2
on digits, latent 3 on the word " file"; activations at the firing tokens are random
strengths (so examples spread over quantiles), zero elsewhere. Non-activating examples are
windows where the latent does not fire.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

WINDOW = 32
DETECTORS = {
    0: ("shakespeare", lambda t: t.strip().lower() == "king" and t.startswith(" "), 'the word "king"'),
    1: ("shakespeare", lambda t: t.strip().lower() == "love" and t.startswith(" "), 'the word "love"'),
    2: ("python", lambda t: bool(re.fullmatch(r"\s*\d+", t)), "digits and numbers"),
    3: ("python", lambda t: t.strip().lower() == "file" and t.startswith(" "), 'the word "file"'),
}


def ground_truth_examples(
    tokenizer, n_act: int = 6, n_non: int = 6, n_quantiles: int = 3, seed: int = 0, hookpoint: str = "gt"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(examples table, explanations table) in the formats of docs/formats.md."""
    from autointerp.corpus import python_doc_documents, shakespeare_documents

    rng = np.random.default_rng(seed)
    plays = shakespeare_documents()
    texts = {"shakespeare": (plays[1] + plays[3])[20000:140000], "python": "\n".join(python_doc_documents())[:150000]}
    windows = {}
    for name, text in texts.items():
        ids = tokenizer.encode(text, add_special_tokens=False)
        windows[name] = [ids[i : i + WINDOW] for i in range(0, len(ids) - WINDOW, WINDOW)]
    rows, expl = [], []
    for latent, (source, fires, explanation) in DETECTORS.items():
        wins = windows[source]
        toks = [[tokenizer.decode([t]) for t in w] for w in wins]
        hit = [i for i, ts in enumerate(toks) if any(fires(t) for t in ts)]
        miss = [i for i, ts in enumerate(toks) if not any(fires(t) for t in ts)]
        chosen = [(i, "activating") for i in rng.choice(hit, n_act, replace=False)] + [
            (i, "random") for i in rng.choice(miss, n_non, replace=False)
        ]
        for j, (i, kind) in enumerate(chosen):
            acts = [float(rng.uniform(1, 10)) if fires(t) else 0.0 for t in toks[i]]
            rows.append(
                {
                    "hookpoint": hookpoint,
                    "latent": latent,
                    "split": "test",
                    "kind": kind,
                    "quantile": (j * n_quantiles) // n_act if kind == "activating" else -1,
                    "context": int(i) + 1000 * (source == "python"),
                    "start": 0,
                    "token_ids": list(wins[i]),
                    "tokens": toks[i],
                    "activations": acts,
                    "max_activation": max(acts),
                    "marked": int(np.argmax(acts)) if kind == "activating" else -1,
                }
            )
        expl.append(
            {
                "hookpoint": hookpoint,
                "latent": latent,
                "explanation": explanation,
                "explainer": "hand",
                "model": "human",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "seconds": 0.0,
                "failure": None,
                "raw": explanation,
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(expl)


@pytest.fixture(scope="session")
def ground_truth(model_and_tokenizer):
    return ground_truth_examples(model_and_tokenizer[1])


@pytest.fixture(scope="session")
def local_client(model_and_tokenizer):
    from autointerp.llm import LLMConfig, make_client

    return make_client(LLMConfig())
