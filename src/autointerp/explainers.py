"""Explainers: prompts that show a latent's activating examples to an LLM, and robust parsing
of the explanation from its answer. Plus the resumable job that explains every latent of a
hookpoint, writing one JSON line per latent as it goes (no Kedro imports).

Variants (``explain.explainer``):
- ``default``: activating tokens marked ``<<like this>>`` in each example's text;
- ``activations``: the same, plus each marked token's activation on a 0-10 scale;
- ``contrastive``: the same as default, plus non-activating counter-examples.
``explain.reasoning: true`` asks for a few sentences of reasoning before the final line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import as_dict
from .errors import AutointerpError, ConfigError

log = logging.getLogger(__name__)

EXPLAINERS = ("default", "activations", "contrastive")
COLUMNS = ["hookpoint", "latent", "explanation", "explainer", "model", "prompt_tokens", "completion_tokens",
           "seconds", "failure", "raw"]
EXAMPLE_COLUMNS = ["latent", "split", "kind", "tokens", "activations", "max_activation"]


@dataclass(frozen=True)
class ExplainConfig:
    """The ``explain:`` parameters (conf/base/parameters_explain.yml)."""

    explainer: str = "default"  # default | activations | contrastive
    reasoning: bool = False  # think in a few sentences before the final "Explanation:" line
    prefill: bool = True  # start the answer with "Explanation:" (ignored with reasoning); weak models need it
    few_shot: bool = True  # show worked examples of the task first (as delphi's default prompt does)
    n_examples: int = 20  # activating training examples shown per latent (spread over their strengths)
    n_negatives: int = 10  # counter-examples shown by the contrastive explainer
    highlight_threshold: float = 0.3  # mark tokens above this fraction of the example's max activation
    max_tokens: int = 64  # answer budget (reasoning needs more: max_tokens_reasoning)
    max_tokens_reasoning: int = 256
    max_chars: int = 200  # explanations are cut at a word boundary beyond this
    batch_latents: int = 8  # latents sent to the client together (a local batch, or concurrent requests)
    retry_failed: bool = True  # a resumed run redoes latents whose explanation failed
    max_latents: int | None = None  # explain only the first N latents (quick runs)
    progress: bool = True

    def validate(self, where: str) -> None:
        if self.explainer not in EXPLAINERS:
            raise ConfigError(f"{where}.explainer: unknown explainer '{self.explainer}'. Use one of {list(EXPLAINERS)}.")
        for name in ("n_examples", "max_tokens", "max_tokens_reasoning", "max_chars", "batch_latents"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.n_negatives < 0:
            raise ConfigError(f"{where}.n_negatives must be 0 or more.")
        if not 0 <= self.highlight_threshold < 1:
            raise ConfigError(f"{where}.highlight_threshold must be in [0, 1), got {self.highlight_threshold}.")

    @property
    def answer_tokens(self) -> int:
        return self.max_tokens_reasoning if self.reasoning else self.max_tokens


# ---------------------------------------------------------------- prompts

SYSTEM = (
    "You are a meticulous AI researcher studying one feature of a language model. You see text examples "
    "where the feature is active; the tokens where it is active are marked between << and >>. "
    "Find what the marked tokens and their context have in common, and describe it in a short phrase "
    "(a few words, for example: 'plural nouns', 'the word \"king\"', 'verbs of motion')."
)
ACTIVATIONS_NOTE = " After each example, the marked tokens are listed with their activation strength from 1 to 10."
CONTRASTIVE_NOTE = (" You also see counter-examples where the feature is NOT active: your explanation should not "
                    "describe them.")
ANSWER_PLAIN = " Reply with one line only:\nExplanation: <short phrase>"
ANSWER_REASONING = (" First think in at most three short sentences about what the marked tokens share. "
                    "Then end with a final line:\nExplanation: <short phrase>")


def _clean_token(t: str) -> str:
    return t.replace("\r", "").replace("\n", "\\n")


def mark_example(tokens: list[str], activations: list[float], threshold: float) -> tuple[str, list[int]]:
    """The example's text with runs of active tokens wrapped in <<...>> (leading spaces kept
    outside the markers), and the indices of the marked tokens."""
    acts = np.asarray(activations, dtype=float)
    top = float(acts.max()) if len(acts) else 0.0
    on = (acts > threshold * top) & (acts > 0) if top > 0 else np.zeros(len(acts), bool)
    parts, marked = [], []
    i = 0
    while i < len(tokens):
        if not on[i]:
            parts.append(_clean_token(tokens[i]))
            i += 1
            continue
        j = i
        while j < len(tokens) and on[j]:
            marked.append(j)
            j += 1
        run = "".join(_clean_token(t) for t in tokens[i:j])
        stripped = run.lstrip()
        parts.append(run[:len(run) - len(stripped)] + "<<" + stripped + ">>")
        i = j
    return "".join(parts).strip(), marked


def select_examples(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` rows spread evenly from the strongest to the weakest."""
    df = df.sort_values("max_activation", ascending=False, kind="stable")
    if len(df) <= n:
        return df
    return df.iloc[np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))]


def build_messages(cfg: ExplainConfig, activating: pd.DataFrame, negatives: pd.DataFrame | None = None) -> list[dict]:
    """The chat messages asking for one latent's explanation."""
    acts = select_examples(activating, cfg.n_examples)
    scale = max(float(acts["max_activation"].max()), 1e-9) if len(acts) else 1.0
    lines = []
    for k, row in enumerate(acts.itertuples(index=False), 1):
        text, marked = mark_example(list(row.tokens), list(row.activations), cfg.highlight_threshold)
        lines.append(f"Example {k}: {text}")
        if cfg.explainer == "activations" and marked:
            vals = ", ".join(f"{_clean_token(row.tokens[m]).strip() or repr(row.tokens[m])} "
                             f"({max(1, round(10 * float(row.activations[m]) / scale))})" for m in marked)
            lines.append(f"Activations: {vals}")
    system = SYSTEM + (ACTIVATIONS_NOTE if cfg.explainer == "activations" else "")
    user = "\n".join(lines)
    if cfg.explainer == "contrastive":
        system += CONTRASTIVE_NOTE
        neg = negatives.head(cfg.n_negatives) if negatives is not None else negatives
        if neg is not None and len(neg):
            user += "\n\nCounter-examples (feature not active):\n" + "\n".join(
                f"Counter-example {k}: {''.join(_clean_token(t) for t in row.tokens).strip()}"
                for k, row in enumerate(neg.itertuples(index=False), 1))
    system += ANSWER_REASONING if cfg.reasoning else ANSWER_PLAIN
    messages = [{"role": "system", "content": system}]
    if cfg.few_shot and not cfg.reasoning:
        messages += FEW_SHOT
    messages.append({"role": "user", "content": user})
    if uses_prefill(cfg):
        messages.append({"role": "assistant", "content": PREFILL})
    return messages


PREFILL = "Explanation:"

# Worked examples shown before the real task (three different kinds of latent, so that a small
# model learns the answer's form rather than one answer).
FEW_SHOT = [
    {"role": "user", "content": "Example 1: and the <<king>> said to his son\nExample 2: long live the <<King>>!\n"
                                "Example 3: the <<kings>> of France and England"},
    {"role": "assistant", "content": "Explanation: the word \"king\""},
    {"role": "user", "content": "Example 1: import os<<\\n>>import sys\nExample 2: return x<<\\n>>\n"
                                "Example 3: def f():<<\\n>>    pass"},
    {"role": "assistant", "content": "Explanation: line breaks in Python code"},
    {"role": "user", "content": "Example 1: she was <<running>> home\nExample 2: they kept <<singing>> all night\n"
                                "Example 3: stop <<talking>>, please"},
    {"role": "assistant", "content": "Explanation: verbs ending in -ing"},
]


def uses_prefill(cfg: ExplainConfig) -> bool:
    return cfg.prefill and not cfg.reasoning


def answer_text(cfg: ExplainConfig, generated: str) -> str:
    """The whole answer: the prefilled start (if any) and what the model generated after it."""
    return (PREFILL + generated) if uses_prefill(cfg) else generated


# ---------------------------------------------------------------- parsing

_LABEL = re.compile(r"(?:\[\s*explanation\s*\]|\bexplanation\b)\s*[:\-=]\s*(.*)", re.IGNORECASE)
_QUOTES = "\"'`“”‘’*_ "


def parse_explanation(raw: str, cfg: ExplainConfig) -> tuple[str | None, str | None]:
    """(explanation, None) or (None, failure reason) from a model's answer."""
    text = (raw or "").replace("\r", "").strip()
    if not text:
        return None, "empty answer"
    found = None
    for line in text.splitlines():
        for m in _LABEL.finditer(line):
            if m.group(1).strip(_QUOTES + ".:"):
                found = m.group(1)
    if found is None:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if any(_LABEL.search(ln) for ln in lines):
            return None, "empty explanation after 'Explanation:'"
        if cfg.reasoning or len(lines) != 1:
            return None, "no 'Explanation:' line in the answer"
        found = lines[0]  # a bare one-line answer is the explanation itself
    exp = re.sub(r"<<|>>", "", found).strip()
    exp = exp.strip(_QUOTES).rstrip(".").strip(_QUOTES).strip()
    exp = re.sub(r"\s+", " ", exp)
    if not exp:
        return None, "empty explanation"
    if "<short phrase>" in exp.lower():
        return None, "the answer repeats the prompt's template"
    if len(exp) > cfg.max_chars:
        cut = exp[:cfg.max_chars]
        exp = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return exp, None


# ---------------------------------------------------------------- the resumable job

def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a torn last line (a killed run) is ignored."""
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def read_explanations(path: str | Path) -> pd.DataFrame:
    """The ``{namespace}.explanations`` table (docs/formats.md) from its folder."""
    p = Path(path)
    f = p / "explanations.jsonl"
    if not f.exists():
        raise AutointerpError(f"'{f}' does not exist yet: run the explain pipeline first (kedro run --pipelines explain).")
    rows = {r["latent"]: r for r in read_jsonl(f)}
    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=COLUMNS)
    for c in ("explanation", "failure"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    meta = p / "meta.json"
    if meta.exists():
        df.attrs["meta"] = json.loads(meta.read_text())
    return df


def examples_frame(examples) -> pd.DataFrame:
    """The sample stage's examples as one DataFrame (a partitioned load is a dict of loaders)."""
    if isinstance(examples, dict):
        parts = [v() if callable(v) else v for _, v in sorted(examples.items())]
        examples = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXAMPLE_COLUMNS)
    missing = [c for c in EXAMPLE_COLUMNS if c not in examples.columns]
    if missing:
        raise AutointerpError(f"the examples table lacks columns {missing} (see docs/formats.md, "
                              "'{namespace}.examples'): re-run the sample pipeline.")
    return examples


@dataclass
class ExplainJob:
    """Explain every latent of one hookpoint; run by the catalog's dataset into a folder."""

    hookpoint: str
    examples: pd.DataFrame
    llm: object  # LLMConfig
    explain: ExplainConfig
    credentials: dict | None = field(default=None, repr=False)
    client: object = field(default=None, repr=False)  # an existing client (tests, benchmarks)

    def run(self, root: str | Path) -> dict:
        return explain_hookpoint(root, self)


def explain_hookpoint(root: str | Path, job: ExplainJob) -> dict:
    """Explain the latents that have no up-to-date result in ``root/explanations.jsonl``, appending
    one line per latent as each batch finishes; then compact the file and write ``meta.json``."""
    from .llm import make_client

    cfg = job.explain
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = root / "explanations.jsonl"
    ex = examples_frame(job.examples)
    train = ex[ex["split"] == "train"]
    act = train[train["kind"] == "activating"]
    neg = train[train["kind"] != "activating"]
    latents = sorted(int(x) for x in act["latent"].unique())
    if cfg.max_latents is not None:
        latents = latents[:cfg.max_latents]
    by_latent = dict(tuple(act.groupby("latent")))
    neg_by_latent = dict(tuple(neg.groupby("latent"))) if cfg.explainer == "contrastive" else {}
    llm = job.llm
    model_name = getattr(llm, "model", str(llm))
    params = {"backend": getattr(llm, "backend", ""), "model": model_name, "base_url": getattr(llm, "base_url", None),
              "max_tokens": cfg.answer_tokens, "temperature": getattr(llm, "temperature", 0.0),
              "explain": as_dict(cfg) | {"progress": None, "max_latents": None, "batch_latents": None}}

    done = {}
    for r in read_jsonl(out):
        done[r["latent"]] = r
    todo, messages, keys = [], {}, {}
    for lat in latents:
        messages[lat] = build_messages(cfg, by_latent[lat], neg_by_latent.get(lat))
        keys[lat] = _digest({"messages": messages[lat], **params})
        old = done.get(lat)
        if old is not None and old.get("key") == keys[lat] and not (cfg.retry_failed and old.get("failure")):
            continue
        todo.append(lat)
    log.info("explain %s: %d latents, %d to do", job.hookpoint, len(latents), len(todo))

    client = job.client
    own_client = client is None and bool(todo)
    if own_client:
        client = make_client(llm, credentials=job.credentials)
    usage0 = client.usage if client is not None else None
    bar = tqdm(total=len(todo), unit="latent", desc=f"explain {job.hookpoint}", disable=not cfg.progress)
    t0, n_tok, n_fail = time.perf_counter(), 0, 0
    try:
        with open(out, "a", encoding="utf-8") as f:
            for b in range(0, len(todo), cfg.batch_latents):
                batch = todo[b:b + cfg.batch_latents]
                gens = client.generate([messages[lat] for lat in batch], max_tokens=cfg.answer_tokens)
                for lat, g in zip(batch, gens):
                    if g.error is not None:
                        exp, failure = None, f"request failed: {g.error}"
                    else:
                        exp, failure = parse_explanation(answer_text(cfg, g.text), cfg)
                    n_fail += failure is not None
                    n_tok += g.prompt_tokens + g.completion_tokens
                    row = {"hookpoint": job.hookpoint, "latent": lat, "explanation": exp, "explainer":
                           cfg.explainer + ("+reasoning" if cfg.reasoning else ""), "model": model_name,
                           "prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                           "seconds": round(g.seconds, 4), "failure": failure, "raw": answer_text(cfg, g.text), "key": keys[lat]}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    done[lat] = row
                f.flush()
                os.fsync(f.fileno())
                bar.update(len(batch))
                dt = time.perf_counter() - t0
                bar.set_postfix(lat_s=f"{bar.n / max(dt, 1e-9):.2f}", tok=f"{n_tok:,}", failed=n_fail)
    finally:
        bar.close()
        usage = (client.usage - usage0).as_dict() if client is not None else {}
        if own_client:
            client.close()
    rows = [done[lat] for lat in latents if lat in done]
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(out)
    meta = {"hookpoint": job.hookpoint, "complete": True, "latents": len(rows),
            "failed": sum(r["failure"] is not None for r in rows), "explained_this_run": len(todo),
            "seconds_this_run": time.perf_counter() - t0, "usage_this_run": usage, "model": model_name,
            "explainer": cfg.explainer, "reasoning": cfg.reasoning}
    (root / "meta.json.tmp").write_text(json.dumps(meta, indent=1))
    (root / "meta.json.tmp").replace(root / "meta.json")
    return meta
