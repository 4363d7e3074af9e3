"""Run the configured scorers over one hookpoint's latents, for every explainer, with real and
shuffled explanations, persisting as it goes: one append-only JSON-lines file per scorer, one
line per unit (latent, explainer, control) with its example rows and its cost. A killed run
resumes where it stopped; a changed configuration, explanation set or example table starts
afresh (fingerprint).

- Only latents whose sample status is ``ok`` (the ``{namespace}.latents`` table, when given)
  and that have test examples and an explanation are scored.
- Control: within one explainer, the explanations of the scored latents are permuted among
  them by a seeded derangement (no latent keeps its own; explainers over the same latents get
  the same permutation), and every scorer that uses an explanation runs again with them
  (``control`` True in the tables).
- Pairing: a latent's test examples are selected from one random stream per latent, and each
  scorer draws its marks and orders from one stream per (latent, scorer); neither depends on
  the explainer or on the control, so real and shuffled explanations (and the explainers
  among themselves) are judged on exactly the same examples with the same marks.
- A unit whose selected examples lack a class gets a status instead of a score
  (:mod:`.tables`) and no model call.
- ``max_llm_latents``: scorers that need a language model score only the first N of the
  scored latents (the job's ``first`` latents, i.e. the matched ones under
  ``sample.selection.mode: matched``, then the rest by id, as the LLM explainer takes them);
  the others (embedding) score all of them. ``max_latents`` takes latents in the same order.
- An :class:`~autointerp.errors.AutointerpError` from the client (server or model unusable)
  stops the run at once; what was finished is kept and resumed next time.
- Concurrency: with a client that sends requests from its own threads (the ``openai``
  backend), ``concurrent_latents`` units of the scorers that need a model are scored at once,
  so that a batched scorer's few requests per unit still keep ``llm.max_concurrency`` requests
  in flight. Results do not depend on it: every unit draws from its own streams, its spending
  is metered apart (:meth:`~autointerp.llm.LLMClient.metered`), and units are appended to
  their scorer's file in the order of the sequential run, each exactly once; the first error
  cancels the units not started and is raised once the running ones end.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import as_dict
from ..errors import AutointerpError, ConfigError
from ..jobs import append_jsonl, array_digest, digest, llm_order, read_jsonl, read_meta, write_meta
from ..llm.base import LogprobsUnsupported
from .base import Scorer, examples_from_frame
from .concurrency import metered, score_in_order
from .detection import DetectionConfig, DetectionScorer
from .embedding import EmbeddingConfig, EmbeddingScorer
from .fuzzing import FuzzingConfig, FuzzingScorer
from .intruder import IntruderConfig, IntruderScorer
from .metrics import derangement
from .simulation import SimulationConfig, SimulationScorer
from .surprisal import SurprisalConfig, SurprisalScorer
from .tables import (
    DEFAULT_EXPLAINER,
    METRIC_COLUMNS,
    NO_EXPLAINER,
    OK,
    SCORE_COLUMNS,
    ScoreRun,
    selection_status,
    with_explainer,
)

log = logging.getLogger(__name__)

SCORERS: dict[str, type[Scorer]] = {
    c.name: c
    for c in (DetectionScorer, FuzzingScorer, SurprisalScorer, EmbeddingScorer, SimulationScorer, IntruderScorer)
}

__all__ = [
    "METRIC_COLUMNS",
    "SCORERS",
    "SCORE_COLUMNS",
    "ScoreConfig",
    "ScoreJob",
    "ScoreRun",
    "as_frame",
    "select_examples",
]


@dataclass(frozen=True)
class ScoreConfig:
    """The ``score:`` parameters (conf/base/parameters_score.yml)."""

    scorers: list[str] = field(default_factory=lambda: ["detection", "fuzzing", "embedding", "surprisal"])
    n_activating: int | None = 50  # activating test examples per latent (spread over quantiles); null: all
    n_non_activating: int | None = 50  # non-activating test examples per latent; null: all
    max_latents: int | None = None  # score only the first latents (by id) that have an explanation
    max_llm_latents: int | None = None  # scorers that need an LLM score only the first N of those; null: all
    control: bool = True  # also score shuffled explanations
    seed: int = 0
    llm: dict | None = None  # overrides of the ``llm:`` parameters for the scorer model
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    fuzzing: FuzzingConfig = field(default_factory=FuzzingConfig)
    surprisal: SurprisalConfig = field(default_factory=SurprisalConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    intruder: IntruderConfig = field(default_factory=IntruderConfig)
    max_failed_fraction: float = 0.2  # above this share of failed examples a scorer's results are flagged
    n_bootstrap: int = 1000
    # units scored at once by the scorers that need a model, with a server; null: max(2, llm.max_concurrency // 4).
    # The local backend (it batches inside the client) scores one at a time. Results do not depend on it.
    concurrent_latents: int | None = None

    def validate(self, where: str) -> None:
        for s in self.scorers:
            if s not in SCORERS:
                raise ConfigError(f"{where}.scorers: unknown scorer '{s}'. Use any of {sorted(SCORERS)}.")
        for name in ("n_activating", "n_non_activating", "max_latents", "max_llm_latents", "concurrent_latents"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{where}.{name} must be at least 1 (or null), got {v}.")
        from ..models import DTYPES

        if self.embedding.dtype not in DTYPES:
            raise ConfigError(
                f"{where}.embedding.dtype: unknown dtype '{self.embedding.dtype}'. Use one of {sorted(DTYPES)}."
            )
        if not 0 <= self.max_failed_fraction <= 1:
            raise ConfigError(f"{where}.max_failed_fraction must be in [0, 1], got {self.max_failed_fraction}.")

    def make(self, name: str) -> Scorer:
        return SCORERS[name](getattr(self, name))

    def workers(self, client) -> int:
        """Units scored at once with ``client``: 1 for a client without threads of its own or
        without per-call metering (the local backend, stand-ins), else ``concurrent_latents``
        (default: a quarter of ``llm.max_concurrency``, at least 2)."""
        if client is None or getattr(client, "backend", "local") == "local" or not hasattr(client, "metered"):
            return 1
        if self.concurrent_latents is not None:
            return self.concurrent_latents
        return max(2, int(getattr(getattr(client, "cfg", None), "max_concurrency", 8)) // 4)


def as_frame(data: Any, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a list of records, or a partitioned dataset's dict of loaders."""
    if data is None:
        return pd.DataFrame()
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        parts = [v() if callable(v) else v for _, v in sorted(data.items())]
        parts = [as_frame(p, what) for p in parts]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if isinstance(data, list):
        return pd.DataFrame(data)
    raise AutointerpError(f"{what}: expected a table, got {type(data).__name__}.")


def select_examples(df: pd.DataFrame, n_act: int | None, n_non: int | None, rng: np.random.Generator) -> pd.DataFrame:
    """The test examples a latent is scored on: up to ``n_act`` activating ones spread evenly
    over quantiles (round robin from the strongest), up to ``n_non`` non-activating ones."""
    test = df[df["split"] == "test"] if "split" in df else df
    act = test[test["kind"] == "activating"]
    non = test[test["kind"] != "activating"]
    if n_act is not None and len(act) > n_act:
        groups = [
            g.sample(frac=1, random_state=int(rng.integers(2**31))).index.tolist()
            for _, g in act.groupby("quantile", sort=True)
        ][::-1]
        picked: list = []
        while len(picked) < n_act:
            for g in groups:
                if g and len(picked) < n_act:
                    picked.append(g.pop(0))
        act = act.loc[sorted(picked)]
    if n_non is not None and len(non) > n_non:
        non = non.loc[sorted(rng.choice(non.index.to_numpy(), size=n_non, replace=False))]
    return pd.concat([act, non])


def frame_digest(df: pd.DataFrame) -> str:
    return array_digest(pd.util.hash_pandas_object(df.astype(str), index=False).values)


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


def selection_rng(seed: int, latent: int) -> np.random.Generator:
    """The stream that selects a latent's test examples (one per latent, whatever the unit)."""
    return np.random.default_rng([seed, int(latent), 1])


def scorer_rng(seed: int, latent: int, scorer: str) -> np.random.Generator:
    """The stream a scorer draws marks and orders from: per (latent, scorer), the same for every
    explainer and for the control, so that real and shuffled explanations are paired."""
    return np.random.default_rng([seed, int(latent), 2, _name_key(scorer)])


def _jsonable(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class Plan:
    latents: list[int]  # every scored latent, sorted
    llm_latents: set[int]  # the ones scorers with an LLM score
    real: dict[tuple[str, int], str]  # (explainer, latent) -> explanation
    shuffled: dict[tuple[str, int], str]  # (explainer, latent) -> another latent's explanation, same explainer

    def units(self, sc: Scorer) -> list[tuple[int, str, bool]]:
        """(latent, explainer, control) units of one scorer."""
        lats = [lat for lat in self.latents if not sc.uses_client or lat in self.llm_latents]
        if not sc.uses_explanation:
            return [(lat, NO_EXPLAINER, False) for lat in lats]
        keep = set(lats)
        out = []
        for explainer, lat in sorted(self.real, key=lambda k: (k[1], k[0])):
            if lat in keep:
                out.append((lat, explainer, False))
                if (explainer, lat) in self.shuffled:
                    out.append((lat, explainer, True))
        return out


@dataclass
class ScoreJob:
    """Everything needed to score one hookpoint; ``run(folder)`` does (or resumes) the work."""

    hookpoint: str
    examples: pd.DataFrame
    explanations: pd.DataFrame
    config: ScoreConfig
    llm: Any = None  # an LLMConfig, or None when no scorer needs a model
    client: Any = None  # an existing client (tests, benchmarks); else made from ``llm`` when needed
    progress: bool = True
    credentials: dict | None = field(default=None, repr=False)  # the run's ``llm`` credentials (never logged)
    latents: pd.DataFrame | None = None  # the sample stage's latents table (``status``); None: all count as ok
    first: list[int] | None = None  # latents taken first under max_latents / max_llm_latents (the matched ones)

    def _explanations(self) -> pd.DataFrame:
        expl = with_explainer(self.explanations)
        if "explanation" not in expl or "latent" not in expl:
            return expl.iloc[:0].assign(latent=pd.Series(dtype=int), explanation=pd.Series(dtype=str))
        return expl[expl["explanation"].notna()]

    def _ok_latents(self) -> set[int]:
        have = set(int(x) for x in self.examples["latent"].unique()) if len(self.examples) else set()
        lt = self.latents
        if lt is not None and len(lt) and "status" in lt:
            have &= set(int(x) for x in lt.loc[lt["status"] == OK, "latent"])
        return have

    def fingerprint(self) -> str:
        expl = self._explanations()
        lt = self.latents
        score = as_dict(self.config)
        score.pop("concurrent_latents", None)  # how many units run at once changes no result
        order = {"first": [int(i) for i in self.first]} if self.first else {}  # other runs keep their fingerprints
        return digest(
            {
                **order,
                "hookpoint": self.hookpoint,
                "score": score,
                "llm": as_dict(self.llm) if self.llm is not None else None,
                "examples": frame_digest(self.examples[["latent", "split", "kind", "context", "start"]]),
                "explanations": frame_digest(expl[["explainer", "latent", "explanation"]]),
                "latents": frame_digest(lt[["latent", "status"]]) if lt is not None and "status" in lt else None,
            }
        )

    def plan(self) -> Plan:
        cfg = self.config
        expl = self._explanations()
        expl = expl[expl["latent"].isin(self._ok_latents())].drop_duplicates(["explainer", "latent"])
        ordered = llm_order(sorted(int(x) for x in expl["latent"].unique()), self.first)
        if cfg.max_latents is not None:
            ordered = ordered[: cfg.max_latents]
        llm_latents = set(ordered[: cfg.max_llm_latents] if cfg.max_llm_latents is not None else ordered)
        latents = sorted(ordered)
        expl = expl[expl["latent"].isin(latents)]
        real = {(str(e), int(lat)): str(x) for e, lat, x in zip(expl["explainer"], expl["latent"], expl["explanation"])}
        shuffled: dict[tuple[str, int], str] = {}
        for explainer in sorted(set(e for e, _ in real)):
            lats = sorted(lat for e, lat in real if e == explainer)
            if cfg.control and len(lats) >= 2:
                # the same stream for every explainer: explainers over the same latents get the same
                # donors, so their controls are paired too
                perm = derangement(len(lats), np.random.default_rng([cfg.seed, 1]))
                shuffled.update({(explainer, lat): real[(explainer, lats[j])] for lat, j in zip(lats, perm)})
            elif cfg.control:
                log.warning(
                    "score %s: explainer '%s' has %d latent(s) with an explanation; no shuffled control possible",
                    self.hookpoint,
                    explainer,
                    len(lats),
                )
        return Plan(latents, llm_latents, real, shuffled)

    def run(self, root: str | Path) -> dict:
        return run_scoring(Path(root), self)


def _done(path: Path) -> set[tuple[int, str, bool]]:
    """Finished units of a scorer file (a torn last line is cut off)."""
    return {
        (int(r["latent"]), str(r.get("explainer") or DEFAULT_EXPLAINER), bool(r["control"]))
        for r in read_jsonl(path, repair=True)
    }


def _with_fix(sc: Scorer, e: Exception) -> str:
    """A server without the log-probabilities ``sc`` needs: the message, with the fix for this scorer."""
    mode = getattr(sc.cfg, "mode", None)
    if mode == "batched":
        fix = (
            f"Set score.{sc.name}.mode: logprob (one chat prompt per example, P(yes) from the first answer "
            "token) for a server without prompt log-probabilities."
        )
    elif mode == "logprob":
        fix = f"Set score.{sc.name}.mode: generation (answers parsed from the text) for a server without log-probabilities."
    elif sc.name == "surprisal":
        fix = "Leave surprisal out of score.scorers for a server without prompt log-probabilities."
    else:
        fix = ""
    return f"score.{sc.name}{f' ({mode} mode)' if mode else ''}: {e} {fix}".strip()


def run_scoring(root: Path, job: ScoreJob) -> dict:
    cfg = job.config
    fp = job.fingerprint()
    root.mkdir(parents=True, exist_ok=True)
    old = read_meta(root)
    if old is not None:
        if old.get("fingerprint") != fp:
            log.info("score %s: configuration or inputs changed; starting afresh", job.hookpoint)
            for f in root.glob("*.jsonl"):
                f.unlink()
        elif old.get("complete"):
            return old
    meta = {"hookpoint": job.hookpoint, "fingerprint": fp, "scorers": list(cfg.scorers), "complete": False}
    write_meta(root, meta)
    plan = job.plan()
    by_latent = {int(k): g for k, g in job.examples.groupby("latent")} if len(job.examples) else {}
    selected: dict[int, pd.DataFrame] = {}

    def examples_of(lat: int) -> pd.DataFrame:
        if lat not in selected:
            selected[lat] = select_examples(
                by_latent[lat], cfg.n_activating, cfg.n_non_activating, selection_rng(cfg.seed, lat)
            )
        return selected[lat]

    scorers = [cfg.make(s) for s in cfg.scorers]
    todo = []
    for sc in scorers:
        done = _done(root / f"{sc.name}.jsonl")
        todo += [(sc, *u) for u in plan.units(sc) if u not in done]
    todo.sort(key=lambda t: (t[1], t[0].name, t[2], t[3]))
    client = job.client
    if client is None and any(sc.uses_client for sc, *_ in todo):
        if job.llm is None:
            raise ConfigError("parameters: llm is missing, but the configured scorers need a language model.")
        from ..llm import make_client

        client = make_client(job.llm, credentials=job.credentials)

    def score_unit(sc: Scorer, lat: int, explainer: str, control: bool, ex_df: pd.DataFrame) -> dict:
        status = selection_status(ex_df["kind"] == "activating")
        explanation = (plan.shuffled if control else plan.real).get((explainer, lat)) if sc.uses_explanation else None
        rec = {
            "latent": lat,
            "explainer": explainer,
            "control": control,
            "status": status,
            "explanation": explanation,
            "rows": [],
            "extra": {},
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "requests": 0,
            "seconds": 0.0,
        }
        if status != OK:
            return rec
        t0 = time.perf_counter()
        with metered(client if sc.uses_client else None) as du:
            try:
                out = sc.score(explanation, examples_from_frame(ex_df), client, scorer_rng(cfg.seed, lat, sc.name))
            except LogprobsUnsupported as e:
                raise LogprobsUnsupported(_with_fix(sc, e)) from None
        rec.update(
            rows=out.rows,
            extra={k: _jsonable(v) for k, v in out.extra.items()},
            seconds=time.perf_counter() - t0,
            prompt_tokens=int(du.prompt_tokens),
            completion_tokens=int(du.completion_tokens),
            requests=int(du.requests),
        )
        return rec

    def write(sc: Scorer, rec: dict) -> None:
        append_jsonl(root / f"{sc.name}.jsonl", [rec], fsync=True)
        bar.update(1)

    # units of the scorers that need a model run ``workers`` at once (the others, and every unit
    # with one worker, here in turn); each scorer's file gets its units in the same order either way
    workers = cfg.workers(client)
    together = [t for t in todo if workers > 1 and t[0].uses_client]
    alone = [t for t in todo if not (workers > 1 and t[0].uses_client)]
    bar = tqdm(total=len(todo), desc=f"score {job.hookpoint}", unit="task", disable=not job.progress)
    try:
        for t in alone:
            write(t[0], score_unit(*t, examples_of(t[1])))
        if together:
            score_in_order(
                together, workers, lambda t: (t[0], functools.partial(score_unit, *t, examples_of(t[1]))), write
            )
    finally:
        bar.close()
    n_quantiles = int(job.examples["quantile"].max()) + 1 if len(job.examples) else 0
    n_explained = int(job._explanations()["latent"].nunique())
    meta.update(
        complete=True,
        n_latents=len(plan.latents),
        n_llm_latents=len(plan.llm_latents),
        explainers=sorted(set(e for e, _ in plan.real)),
        n_quantiles=max(n_quantiles, 0),
        skipped_latents=n_explained - len(plan.latents),
    )
    write_meta(root, meta)
    return meta
