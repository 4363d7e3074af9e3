"""The statistical explainer ``tokens``: no LLM, a sentence from the training examples alone.

Every firing position of the latent's activating training examples (activation above
``highlight_threshold`` of its example's maximum, the positions an LLM explainer sees marked)
adds its activation to its token. Tokens are grouped by their stripped, lower-cased text
(``" King"``, ``"king"`` are one group, named by its heaviest spelling). A group's
``share`` is its part of the activation mass; its corpus frequency ``p`` comes from the
corpus token counts (``corpus_tokens``; add-one smoothed), or, without them, from all the
training windows of the hookpoint. Groups are ranked by ``share * log(share / p)``, their
term of the KL divergence of the latent's mass from the corpus: tokens where the latent
fires strongly *and* often *relative to how common they are*. Up to ``tokens.top`` groups
are named (each with at least ``min_share`` of the mass; if none has, the best one); then the tokens just
before the named ones' firing positions (grouped the same way), when they precede ``min_context_share`` of that mass;
then, as phrases, the strongest token of the ``tokens.phrases`` strongest examples with the
``tokens.phrase_before`` tokens before it.

Sentence (default): ``fires on prove, plead, swear, mostly after I'll, as in "then I'll prove"``;
with ``share``, ``quote`` and no phrases (the form of the LLM's hint, :meth:`TokenStatistics.hint`):
``fires on " prove", " plead", " swear" (41% of activation mass), mostly after " I'll"``.
Why phrases and plain words: the embedding scorer compares the sentence with whole windows
(MiniLM); the template words, the percentage and JSON quotes dilute it, and the words around the
firing token are what a held-out activating window shares with the training ones
(``benchmarks/explain.py tokens-variants``). Deterministic (ties broken by token text),
milliseconds per latent.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pandas as pd

from ..examples import display_text, display_token
from .config import ExplainConfig


def corpus_counts(corpus_tokens) -> np.ndarray | None:
    """Occurrences of every token id in the corpus (``[contexts, ctx_len]`` ids), or None."""
    if corpus_tokens is None:
        return None
    a = np.asarray(corpus_tokens).ravel()
    a = a[a >= 0]
    return np.bincount(a.astype(np.int64)) if a.size else None


def window_counts(frames: pd.DataFrame) -> np.ndarray:
    """Token counts over the windows of ``frames`` (each window once): the fallback frequency."""
    seen = frames.drop_duplicates(subset=["context", "start"]) if {"context", "start"} <= set(frames) else frames
    ids = [int(t) for w in seen["token_ids"] for t in w]
    return np.bincount(np.asarray(ids, dtype=np.int64)) if ids else np.zeros(1, dtype=np.int64)


def _group(token: str) -> str:
    return token.strip().lower() or token


def _quote(token: str) -> str:
    return json.dumps(display_text(token), ensure_ascii=False)


def _plain(token: str) -> str:
    """A token as a plain word (``" king"`` -> ``king``); one without a letter or digit
    (punctuation, whitespace) quoted, so that it stays readable in a list (``","``)."""
    t = display_token(token).strip()
    return t if any(c.isalnum() for c in t) else _quote(token)


def phrase(tokens, i: int, before: int) -> str:
    """Token ``i`` with the ``before`` tokens before it, as one line of text (control tokens as
    placeholders, runs of whitespace as one space)."""
    return " ".join(display_text("".join(str(t) for t in tokens[max(0, i - before) : i + 1])).split())


class TokenStatistics:
    """Named tokens, their share of the activation mass, and the tokens before them."""

    def __init__(self, activating: pd.DataFrame, counts: np.ndarray, cfg: ExplainConfig):
        self.cfg = cfg
        thr = cfg.highlight_threshold
        mass: dict[str, float] = defaultdict(float)
        spell: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        ids_of: dict[str, set[int]] = defaultdict(set)
        fired: list[tuple[str, float, str | None]] = []  # (group, activation, previous token)
        for toks, ids, acts in zip(activating["tokens"], activating["token_ids"], activating["activations"]):
            a = np.asarray(acts, dtype=float)
            top = float(a.max()) if a.size else 0.0
            if top <= 0:
                continue
            for i in np.flatnonzero((a > thr * top) & (a > 0)):
                t = str(toks[i])
                g = _group(t)
                mass[g] += a[i]
                spell[g][t] += a[i]
                ids_of[g].add(int(ids[i]))
                fired.append((g, float(a[i]), str(toks[i - 1]) if i > 0 else None))
        self.total = float(sum(mass.values()))
        n_corpus = float(counts.sum()) if counts is not None else 0.0
        vocab = max(len(counts) if counts is not None else 0, 1)

        def p(g: str) -> float:
            c = sum(int(counts[j]) if counts is not None and j < len(counts) else 0 for j in ids_of[g])
            return (c + 1) / (n_corpus + vocab)

        rows = []
        for g, m in mass.items():
            share = m / self.total
            rows.append((g, share, p(g), share * math.log(share / p(g))))
        rows.sort(key=lambda r: (-r[3], -r[1], r[0]))
        self.ranked = [
            {
                "token": max(spell[g].items(), key=lambda kv: (kv[1], kv[0]))[0],
                "group": g,
                "share": s,
                "corpus_frequency": f,
                "score": k,
            }
            for g, s, f, k in rows
        ]
        tc = cfg.tokens
        named = [r for r in self.ranked if r["score"] > 0 and r["share"] >= tc.min_share]
        self.named = named[: tc.top] if named else self.ranked[:1]
        groups = {r["group"] for r in self.named}
        self.coverage = sum(r["share"] for r in self.named)
        before: dict[str, float] = defaultdict(float)
        seen: dict[str, int] = defaultdict(int)
        prev_spell: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # " my", " My": one
        named_mass = 0.0
        for g, a, prev in fired:
            if g in groups:
                named_mass += a
                if prev is not None and display_text(prev).strip():
                    before[_group(prev)] += a
                    seen[_group(prev)] += 1
                    prev_spell[_group(prev)][prev] += a
        # a preceding token is named when it precedes at least two firing positions and, with
        # at most one other, at least min_context_share of the named tokens' mass
        ctx = (
            sorted(((m / named_mass, t) for t, m in before.items() if seen[t] >= 2), key=lambda x: (-x[0], x[1]))
            if named_mass > 0 and tc.context
            else []
        )
        self.after = [
            (max(prev_spell[g].items(), key=lambda kv: (kv[1], kv[0]))[0], s)
            for s, g in ctx[:2]
            if s >= tc.min_context_share / 2
        ]
        self.after_share = sum(s for _, s in self.after)
        if self.after_share < tc.min_context_share:
            self.after, self.after_share = [], 0.0
        self.phrases: list[str] = []
        strongest = activating.sort_values("max_activation", ascending=False, kind="stable")
        for toks, acts in zip(strongest["tokens"], strongest["activations"]):
            if len(self.phrases) >= tc.phrases:
                break
            a = np.asarray(acts, dtype=float)
            text = phrase(toks, int(np.argmax(a)), tc.phrase_before) if a.size and a.max() > 0 else ""
            if text and text not in self.phrases:
                self.phrases.append(text)

    def sentence(self, share: bool | None = None, quote: bool | None = None, phrases: bool = True) -> str | None:
        """The explanation, as ``explain.tokens`` configures it (``share``, ``quote``: None for
        the configured value; ``phrases``: False leaves them out)."""
        if not self.named or self.total <= 0:
            return None
        tc = self.cfg.tokens
        show = _quote if (tc.quote if quote is None else quote) else _plain
        s = f"fires on {', '.join(dict.fromkeys(show(r['token']) for r in self.named))}"
        if tc.share if share is None else share:
            s += f" ({round(100 * self.coverage)}% of activation mass)"
        if self.after:
            s += f", {'mostly' if self.after_share >= 0.5 else 'often'} after " + ", ".join(
                show(t) for t, _ in self.after
            )
        if phrases and self.phrases:
            s += ", as in " + ", ".join(json.dumps(p, ensure_ascii=False) for p in self.phrases)
        return s

    def hint(self) -> str | None:
        """The sentence shown to an LLM explainer as a hint: quoted tokens, no share (a small
        model copies a percentage into its answer), no phrases (the examples are in the prompt)."""
        return self.sentence(share=False, quote=True, phrases=False)

    def as_dict(self) -> dict:
        return {
            "named": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in self.named],
            "coverage": round(self.coverage, 6),
            "after": [{"token": t, "share": round(s, 6)} for t, s in self.after],
            "phrases": self.phrases,
        }


class TokensExplainer:
    """``tokens``: the statistical explainer (no LLM)."""

    name = "tokens"
    uses_llm = False

    def __init__(self, cfg: ExplainConfig):
        self.cfg = cfg

    def statistics(self, activating: pd.DataFrame, counts: np.ndarray | None) -> TokenStatistics:
        return TokenStatistics(activating, counts, self.cfg)

    def explain(
        self, activating: pd.DataFrame, counts: np.ndarray | None, stats: TokenStatistics | None = None
    ) -> tuple[str | None, str | None, str]:
        """(explanation, failure, raw): raw holds the statistics as JSON."""
        stats = stats or self.statistics(activating, counts)
        sentence = stats.sentence()
        raw = json.dumps(stats.as_dict(), ensure_ascii=False)
        if sentence is None:
            return None, "no firing token in the training examples", raw
        return sentence, None, raw

    def key(self) -> dict:
        """What the result depends on besides the examples (for the job's fingerprint)."""
        return {"explainer": self.name, "tokens": vars(self.cfg.tokens), "threshold": self.cfg.highlight_threshold}
