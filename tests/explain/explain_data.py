"""A small examples table in the sample stage's format (docs/formats.md), built from real text."""

from __future__ import annotations

import numpy as np
import pandas as pd

TEXTS = {
    0: ["The cat sat on the mat with another cat.", "A small cat chased the dog.", "My cat likes fish."],
    1: ["He went to Paris in June.", "London and Paris are large cities.", "They flew from Berlin to Rome."],
    2: ["She counted 1, 2, 3 apples.", "There were 42 people and 7 dogs.", "Call 555 now for 10 deals."],
}
TEST_NEGATIVE = "Quartz zebras vanish behind test curtains."
TEST_ACTIVATING = "Held-out window for scoring only."
TARGETS = {0: {"cat"}, 1: {"Paris", "London", "Berlin", "Rome"}, 2: {"1", "2", "3", "4", "7", "5", "0"}}


def make_examples(tokenizer, hookpoint="layers.2") -> pd.DataFrame:
    rows = []
    for latent, texts in TEXTS.items():
        for k, text in enumerate(texts):
            ids = tokenizer.encode(text, add_special_tokens=False)
            toks = [tokenizer.decode([i]) for i in ids]
            acts = [float(3.0 + k) if t.strip() in TARGETS[latent] else 0.0 for t in toks]
            rows.append(
                dict(
                    hookpoint=hookpoint,
                    latent=latent,
                    split="train",
                    kind="activating",
                    quantile=k,
                    context=k,
                    start=0,
                    token_ids=ids,
                    tokens=toks,
                    activations=acts,
                    max_activation=max(acts),
                    marked=int(np.argmax(acts)),
                    example_id=f"{latent}-{k}",
                )
            )
        ids = tokenizer.encode("Nothing relevant happens here at all.", add_special_tokens=False)
        rows.append(
            dict(
                hookpoint=hookpoint,
                latent=latent,
                split="train",
                kind="random",
                quantile=-1,
                context=9,
                start=0,
                token_ids=ids,
                tokens=[tokenizer.decode([i]) for i in ids],
                activations=[0.0] * len(ids),
                max_activation=0.0,
                marked=-1,
                example_id=f"{latent}-n",
            )
        )
        # test-split windows (never shown to an explainer): their own text
        for kind, text in (("random", TEST_NEGATIVE), ("activating", TEST_ACTIVATING)):
            ids = tokenizer.encode(text, add_special_tokens=False)
            toks = [tokenizer.decode([i]) for i in ids]
            acts = [0.0] * len(ids) if kind == "random" else [1.0] * len(ids)
            rows.append(
                dict(
                    hookpoint=hookpoint,
                    latent=latent,
                    split="test",
                    kind=kind,
                    quantile=-1 if kind == "random" else 0,
                    context=10,
                    start=0,
                    token_ids=ids,
                    tokens=toks,
                    activations=acts,
                    max_activation=max(acts),
                    marked=0,
                    example_id=f"{latent}-t-{kind}",
                )
            )
    return pd.DataFrame(rows)
