"""The resumable job that explains every latent of one hookpoint with every configured explainer.

``explanations.jsonl`` holds one row per (latent, explainer), appended as each batch finishes
(a killed run resumes where it stopped; rows are keyed on (latent, explainer) and on a
fingerprint of their prompt and model, so a changed prompt is redone). The statistical
explainer (``tokens``) explains every latent; LLM explainers the first ``max_latents`` (the
job's ``first`` latents, then the rest by id).
At the end the file is compacted to the configured explainers and latents and ``meta.json``
is written (:mod:`autointerp.jobs`). No Kedro imports.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..errors import AutointerpError
from ..jobs import append_jsonl, digest, llm_order, read_jsonl, read_meta, write_jsonl, write_meta
from .config import ExplainConfig
from .prompts import echoed_answer
from .registry import make_explainer
from .tokens import TokensExplainer, corpus_counts, window_counts

log = logging.getLogger(__name__)

COLUMNS = [
    "hookpoint",
    "latent",
    "explanation",
    "explainer",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "seconds",
    "failure",
    "raw",
    "echoed_first",
    "echoes",
    "attempts",
]
EXAMPLE_COLUMNS = ["latent", "split", "kind", "tokens", "token_ids", "activations", "max_activation"]
STATISTICS_MODEL = "statistics"  # the `model` of rows written without an LLM


def read_explanations(path: str | Path) -> pd.DataFrame:
    """The ``{namespace}.explanations`` table (docs/formats.md) from its folder: one row per
    (latent, explainer), sorted by explainer then latent. Rows without ``explainer`` (old
    runs) are explainer ``default``."""
    p = Path(path)
    f = p / "explanations.jsonl"
    if not f.exists():
        raise AutointerpError(
            f"'{f}' does not exist yet: run the explain pipeline first (kedro run --pipelines explain)."
        )
    rows = {}
    for r in read_jsonl(f):
        r["explainer"] = r.get("explainer") or "default"
        rows[(r["explainer"], int(r["latent"]))] = r
    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=COLUMNS)
    for c in ("explanation", "failure"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    # rows of runs before retries: no echo retried, one LLM request per row
    df["echoed_first"] = df["echoed_first"].fillna(False).astype(bool)
    df["echoes"] = df["echoes"].map(lambda v: list(v) if isinstance(v, list) else [])
    df["attempts"] = df["attempts"].fillna((df["model"] != STATISTICS_MODEL).astype(int)).astype(int)
    meta = read_meta(p)
    if meta is not None:
        df.attrs["meta"] = meta
    return df


def select_explainer(explanations: pd.DataFrame, explainer: str | None = None) -> pd.DataFrame:
    """The rows of one explainer (one per latent). ``None``: the first LLM explainer present
    (registry order), else whatever one is there. For readers that want one explanation per
    latent (a table without the column is explainer ``default``)."""
    from .registry import REGISTRY

    if "explainer" not in explanations:
        return explanations
    names = explanations["explainer"].fillna("default")
    if explainer is None:
        present = list(dict.fromkeys(names))
        llm = [n for n in REGISTRY if REGISTRY[n].uses_llm and n in present]
        explainer = llm[0] if llm else (present[0] if present else "default")
    return explanations[names == explainer]


def examples_frame(examples) -> pd.DataFrame:
    """The sample stage's examples as one DataFrame (a partitioned load is a dict of loaders)."""
    if isinstance(examples, dict):
        parts = [v() if callable(v) else v for _, v in sorted(examples.items())]
        examples = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXAMPLE_COLUMNS)
    missing = [c for c in EXAMPLE_COLUMNS if c not in examples.columns]
    if missing:
        raise AutointerpError(
            f"the examples table lacks columns {missing} (see docs/formats.md, "
            "'{namespace}.examples'): re-run the sample pipeline."
        )
    return examples


@dataclass
class ExplainJob:
    """Explain every latent of one hookpoint; run by the catalog's dataset into a folder.

    ``latents``: the sample stage's latents table; when given, only latents of status ``ok``
    are explained. ``corpus_tokens``: the corpus token ids, for the statistical explainer's
    token frequencies (without them: frequencies over the hookpoint's training windows)."""

    hookpoint: str
    examples: pd.DataFrame
    llm: object  # LLMConfig
    explain: ExplainConfig
    credentials: dict | None = field(default=None, repr=False)
    client: object = field(default=None, repr=False)  # an existing client (tests, benchmarks)
    corpus_tokens: object = field(default=None, repr=False)
    latents: pd.DataFrame | None = field(default=None, repr=False)
    # the latents LLM explainers take first, in this order (then the rest by id): the hookpoint's
    # matched latents under sample.selection.mode matched, so that explain.max_latents covers
    # the matched pairs the explanation-based similarity measures read
    first: list[int] | None = None

    def run(self, root: str | Path) -> dict:
        return explain_hookpoint(root, self)


def _ok_latents(act: pd.DataFrame, table: pd.DataFrame | None) -> list[int]:
    latents = sorted(int(x) for x in act["latent"].unique())
    if table is not None and len(table) and "status" in table:
        ok = set(int(x) for x in table.loc[table["status"] == "ok", "latent"])
        latents = [lat for lat in latents if lat in ok]
    return latents


def explain_hookpoint(root: str | Path, job: ExplainJob) -> dict:
    """Explain what ``root/explanations.jsonl`` lacks, appending rows as batches finish; then
    compact the file to the configured explainers and write ``meta.json``."""
    from ..llm import make_client

    cfg = job.explain
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = root / "explanations.jsonl"
    ex = examples_frame(job.examples)
    train = ex[ex["split"] == "train"]
    act = train[train["kind"] == "activating"]
    neg = train[train["kind"] != "activating"]
    latents = _ok_latents(act, job.latents)
    ordered = llm_order(latents, job.first)
    llm_latents = ordered[: cfg.max_latents] if cfg.max_latents is not None else ordered
    by_latent = dict(tuple(act.groupby("latent")))
    neg_by_latent = dict(tuple(neg.groupby("latent")))
    explainers = [make_explainer(n, cfg) for n in cfg.explainers]
    statistical = [e for e in explainers if not e.uses_llm]
    prompted = [e for e in explainers if e.uses_llm]
    done = {(r["latent"], r.get("explainer") or "default"): r for r in read_jsonl(out, repair=True)}
    t0 = time.perf_counter()

    # The statistical explainer: every latent, milliseconds each (also the LLM's hint).
    counts = corpus_counts(job.corpus_tokens)
    if counts is None:
        counts = window_counts(train)
    tokens = TokensExplainer(cfg)
    need_stats = latents if statistical else (llm_latents if prompted and cfg.hint else [])
    stats, hints = {}, {}
    for lat in need_stats:
        s0 = time.perf_counter()
        st = tokens.statistics(by_latent[lat], counts)
        exp, failure, raw = tokens.explain(by_latent[lat], counts, st)
        hints[lat] = st.hint()
        stats[lat] = {
            "hookpoint": job.hookpoint,
            "latent": lat,
            "explanation": exp,
            "explainer": tokens.name,
            "model": STATISTICS_MODEL,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "seconds": round(time.perf_counter() - s0, 6),
            "failure": failure,
            "raw": raw,
            "echoed_first": False,
            "echoes": [],
            "attempts": 0,
            "key": digest(tokens.key()),
        }
    if statistical:
        append_jsonl(out, [stats[lat] for lat in latents])
        done.update({(lat, tokens.name): stats[lat] for lat in latents})

    # LLM explainers: resumable, batched.
    llm = job.llm
    model_name = getattr(llm, "model", str(llm))
    params = {
        "backend": getattr(llm, "backend", ""),
        "model": model_name,
        "base_url": getattr(llm, "base_url", None),
        "max_tokens": cfg.answer_tokens,
        "temperature": getattr(llm, "temperature", 0.0),
        "reasoning": cfg.reasoning,
        "prefill": cfg.uses_prefill,
        "max_chars": cfg.max_chars,
        "echo_retries": cfg.echo_retries,
    }
    todo, messages, keys = [], {}, {}
    for e in prompted:
        for lat in llm_latents:
            hint = hints.get(lat)
            m = messages[(lat, e.name)] = e.messages(by_latent[lat], neg_by_latent.get(lat), hint)
            keys[(lat, e.name)] = digest({"messages": m, "explainer": e.name, **params})
            old = done.get((lat, e.name))
            if (
                old is not None
                and old.get("key") == keys[(lat, e.name)]
                and not (cfg.retry_failed and old.get("failure"))
            ):
                continue
            todo.append((lat, e))
    log.info(
        "explain %s: %d latents (%d by LLM explainers %s), %d LLM explanations to do",
        job.hookpoint,
        len(latents),
        len(llm_latents),
        [e.name for e in prompted],
        len(todo),
    )

    client = job.client
    own_client = client is None and bool(todo)
    if own_client:
        client = make_client(llm, credentials=job.credentials)
    usage0 = client.usage if client is not None else None
    bar = tqdm(total=len(todo), unit="latent", desc=f"explain {job.hookpoint}", disable=not cfg.progress)
    n_tok = n_fail = 0
    # one state per (latent, explainer) until its final answer: an answer echoing a worked example
    # is asked again (explain.echo_retries) with the worked examples it has not echoed, the last
    # time with none; the row keeps whether the first answer echoed and how many were asked
    tries = {t: {"messages": messages[(t[0], t[1].name)], "echoed": [], "tokens": [0, 0], "seconds": 0.0} for t in todo}
    queue = list(todo)
    try:
        while queue:
            again = []
            for b in range(0, len(queue), cfg.batch_latents):
                batch = queue[b : b + cfg.batch_latents]
                gens = client.generate([tries[t]["messages"] for t in batch], max_tokens=cfg.answer_tokens)
                rows = []
                for (lat, e), g in zip(batch, gens):
                    st = tries[(lat, e)]
                    answer = e.answer_text(g.text)
                    if g.error is not None:
                        exp, failure = None, f"request failed: {g.error}"
                    else:
                        exp, failure = e.parse(answer, st["messages"])
                    n_tok += g.prompt_tokens + g.completion_tokens
                    st["tokens"][0] += g.prompt_tokens
                    st["tokens"][1] += g.completion_tokens
                    st["seconds"] += g.seconds
                    echoed = echoed_answer(failure)
                    if echoed is not None:
                        st["echoed"].append(echoed)
                        if len(st["echoed"]) <= cfg.echo_retries:
                            last = len(st["echoed"]) == cfg.echo_retries
                            st["messages"] = e.retry_messages(
                                by_latent[lat], neg_by_latent.get(lat), hints.get(lat), st["echoed"], last
                            )
                            again.append((lat, e))
                            continue
                    n_fail += failure is not None
                    rows.append(
                        {
                            "hookpoint": job.hookpoint,
                            "latent": lat,
                            "explanation": exp,
                            "explainer": e.name,
                            "model": model_name,
                            "prompt_tokens": st["tokens"][0],
                            "completion_tokens": st["tokens"][1],
                            "seconds": round(st["seconds"], 4),
                            "failure": failure,
                            "raw": answer,
                            "echoed_first": bool(st["echoed"]),
                            "echoes": list(st["echoed"]),
                            "attempts": len(st["echoed"]) + (echoed is None),
                            "key": keys[(lat, e.name)],
                        }
                    )
                if rows:
                    append_jsonl(out, rows, fsync=True)
                    done.update({(r["latent"], r["explainer"]): r for r in rows})
                    bar.update(len(rows))
                bar.set_postfix(
                    lat_s=f"{bar.n / max(time.perf_counter() - t0, 1e-9):.2f}", tok=f"{n_tok:,}", failed=n_fail
                )
            queue = again
    finally:
        bar.close()
        usage = (client.usage - usage0).as_dict() if client is not None else {}
        if own_client:
            client.close()

    rows = [
        done[(lat, e.name)]
        for e in explainers
        for lat in (llm_latents if e.uses_llm else latents)
        if (lat, e.name) in done
    ]
    write_jsonl(out, rows)
    per = {
        e.name: {
            "latents": sum(r["explainer"] == e.name for r in rows),
            "failed": sum(r["explainer"] == e.name and r["failure"] is not None for r in rows),
            "echoed_first": sum(r["explainer"] == e.name and bool(r.get("echoed_first")) for r in rows),
            "echoed": sum(r["explainer"] == e.name and echoed_answer(r["failure"]) is not None for r in rows),
        }
        for e in explainers
    }
    meta = {
        "hookpoint": job.hookpoint,
        "complete": True,
        "latents": len(latents),
        "rows": len(rows),
        "failed": sum(r["failure"] is not None for r in rows),
        "explainers": per,
        "explained_this_run": len(todo),
        "seconds_this_run": time.perf_counter() - t0,
        "usage_this_run": usage,
        "model": model_name,
        "reasoning": cfg.reasoning,
        "hint": cfg.hint,
    }
    write_meta(root, meta)
    return meta
