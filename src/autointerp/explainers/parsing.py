"""Reading an explanation out of a model's answer, defensively (small models ramble).

Rules (docs/formats.md, ``failure``):
- the FIRST labelled line with content wins (``Explanation: ...``, ``[EXPLANATION]: ...``,
  ``**Explanation:**``); a later one is a hallucinated next turn and ignored;
- a repeated label (``Explanation: Explanation: cats``, the prefill echoed) is stripped;
- a label with nothing after it, an empty answer, or only quotes/punctuation is a failure;
- without any label, a one-line answer is the explanation itself (not in reasoning mode);
- wrapping quotes are removed only as a pair; an unclosed double quote is closed
  (``the word "king`` -> ``the word "king"``), a stray closing one removed;
- markers ``<<`` ``>>`` and control tokens are removed / shown as placeholders;
- an answer starting "Example 3: ..." repeats the prompt's examples: a failure;
- an answer that repeats a worked example's explanation, up to small variants (case, quotes,
  plurals, articles, or most of its content words; see :func:`repeats`), and names its key
  while the latent's marked tokens rarely show it (:func:`echoed_worked_example`) is a failure
  ``echoed worked example``, decided by the prompt explainer that showed them (the job asks
  again, ``explain.echo_retries``).
"""

from __future__ import annotations

import math
import re

from ..examples import display_text

_LABEL = re.compile(r"(?:\[\s*explanation\s*\]|\bexplanation\b)\s*\**\s*[:\-=]\s*", re.IGNORECASE)
_EDGE = "*_`~ \t"  # markdown emphasis and spaces around an answer
_PAIRS = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’"}


def _strip_labels(text: str) -> str:
    """Remove leading labels, however often repeated (``Explanation: Explanation: x`` -> ``x``)."""
    while True:
        t = text.strip(_EDGE)
        m = _LABEL.match(t)
        if not m:
            return t
        text = t[m.end() :]


def _balance_quotes(exp: str) -> str:
    exp = exp.replace("“", '"').replace("”", '"')
    while len(exp) >= 2 and exp[0] in _PAIRS and exp[-1] == _PAIRS[exp[0]] and exp.count(exp[0]) == 2:
        exp = exp[1:-1].strip(_EDGE)  # one wrapping pair: "animals" -> animals
    if exp.count('"') % 2:
        last = exp.rfind('"')
        if exp[last + 1 :].strip():  # an opening quote never closed: the word "king -> the word "king"
            exp = exp + '"'
        else:  # a stray closing quote: king" -> king
            exp = (exp[:last] + exp[last + 1 :]).strip()
    return exp


def _clean(found: str) -> str:
    exp = re.sub(r"<<|>>", "", found)
    exp = re.sub(r"\s+", " ", exp).strip(_EDGE)
    exp = exp.rstrip(".").strip(_EDGE)
    return display_text(_balance_quotes(exp)).strip()


def parse_explanation(raw: str | None, reasoning: bool = False, max_chars: int = 200) -> tuple[str | None, str | None]:
    """(explanation, None) or (None, failure reason) from a model's whole answer."""
    text = (raw or "").replace("\r", "").strip()
    if not text:
        return None, "empty answer"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    labelled = False
    found = None
    for line in lines:
        m = _LABEL.search(line)
        if not m:
            continue
        labelled = True
        rest = _strip_labels(line[m.end() :])
        if rest.strip("\"'`“”‘’.:- "):
            found = rest
            break  # the first explanation wins
    if found is None:
        if labelled:
            return None, "empty explanation after 'Explanation:'"
        if reasoning or len(lines) != 1:
            return None, "no 'Explanation:' line in the answer"
        found = lines[0]  # a bare one-line answer is the explanation itself
    exp = _clean(found)
    if not exp.strip("\"'`“”‘’.:-[] "):
        return None, "empty explanation"
    if "<short phrase>" in found.lower() or "[short phrase]" in exp.lower():
        return None, "the answer repeats the prompt's template"
    if re.match(r"(counter-)?example \d+\b", exp, re.IGNORECASE):
        return None, "the answer repeats the prompt's examples"
    if len(exp) > max_chars:
        cut = exp[:max_chars]
        exp = cut.rsplit(" ", 1)[0] if " " in cut else cut
        exp = _balance_quotes(exp)
    return exp, None


# Words that carry no content in an explanation: an answer is compared with a worked example on
# the rest ("the word King" and 'the word "king"' are the same answer, "verb ending in -ing" and
# "verbs ending in -ing" too).
GENERIC = frozenset(
    "a an the of in on at to for and or with by from as into after before that which who is are it its "
    "word words token tokens term terms".split()
)
ECHO_OVERLAP = 0.6  # an answer naming this share of a worked example's content words repeats it
KEY_SHARE = 0.25  # a worked example's key is the latent's own when this share of its marked runs shows it


def _singular(w: str) -> str:
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def normalised_words(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation, quotes or dashes, plurals made singular
    ("-ing" -> "ing", "Kings" -> "king")."""
    return [_singular(w) for w in re.findall(r"[a-z0-9]+", text.lower())]


def content_words(text: str) -> set[str]:
    """The normalised words of ``text`` that carry content (not in :data:`GENERIC`)."""
    return {w for w in normalised_words(text) if w not in GENERIC}


def repeats(explanation: str, answer: str) -> bool:
    """Whether ``explanation`` repeats the worked answer ``answer``, up to small variants: one
    contains the other once normalised (case, punctuation, plurals), or it names at least
    :data:`ECHO_OVERLAP` of the answer's content words (at least one)."""
    e, a = " ".join(normalised_words(explanation)), " ".join(normalised_words(answer))
    if not e or not a:
        return False
    if f" {a} " in f" {e} " or f" {e} " in f" {a} ":
        return True
    cw_a = content_words(answer)
    if not cw_a:
        return False
    return len(cw_a & content_words(explanation)) >= max(1, math.ceil(ECHO_OVERLAP * len(cw_a)))


def echoed_worked_example(explanation: str, worked, marked: list[str]) -> str | None:
    """The worked example's explanation that ``explanation`` repeats, or None.

    ``worked``: (explanation, key pattern in an explanation, key pattern in marked tokens) of
    every worked example; ``marked``: the latent's marked runs as the prompt shows them. An
    answer echoes a worked example when it repeats it (:func:`repeats`) and names the worked
    example's key (e.g. "king"), while the key is not the latent's own: fewer than
    :data:`KEY_SHARE` of its marked runs show it (a latent that truly fires on "king" may be
    explained as 'the word "king"'; one stray marked "king" among twenty examples does not
    make it so)."""
    for answer, key_expl, key_marked in worked:
        if not repeats(explanation, answer) or not re.search(key_expl, explanation, re.IGNORECASE):
            continue
        shown = sum(bool(re.search(key_marked, m, re.IGNORECASE)) for m in marked)
        if shown < KEY_SHARE * len(marked) or not shown:
            return answer
    return None
