"""Run the configured scorers over one hookpoint's latents, real and shuffled explanations,
persisting as it goes: one append-only JSON-lines file per scorer, one line per
(latent, control) with its example rows and its cost. A killed run resumes where it stopped;
a changed configuration, explanation set or example table starts afresh (fingerprint).

Control: the explanations of the scored latents are permuted among them by a seeded
derangement (no latent keeps its own), and every scorer that uses an explanation runs again
with them, in the same run (``control`` True in the tables).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import as_dict
from ..errors import AutointerpError, ConfigError
from .base import Scorer, examples_from_frame
from .detection import DetectionConfig, DetectionScorer
from .embedding import EmbeddingConfig, EmbeddingScorer
from .fuzzing import FuzzingConfig, FuzzingScorer
from .intruder import IntruderConfig, IntruderScorer
from .metrics import derangement, latent_metrics
from .simulation import SimulationConfig, SimulationScorer
from .surprisal import SurprisalConfig, SurprisalScorer

log = logging.getLogger(__name__)

SCORERS: dict[str, type[Scorer]] = {c.name: c for c in (DetectionScorer, FuzzingScorer, SurprisalScorer,
                                                         EmbeddingScorer, SimulationScorer, IntruderScorer)}

SCORE_COLUMNS = ["hookpoint", "latent", "scorer", "control", "example_id", "kind", "quantile", "label", "prediction",
                 "score", "failure"]
METRIC_COLUMNS = ["hookpoint", "latent", "scorer", "control", "accuracy", "balanced_accuracy", "precision", "recall",
                  "f1", "auroc", "n", "n_failed", "prompt_tokens", "completion_tokens", "seconds"]


@dataclass(frozen=True)
class ScoreConfig:
    """The ``score:`` parameters (conf/base/parameters_score.yml)."""

    scorers: list[str] = field(default_factory=lambda: ["detection", "fuzzing", "embedding", "surprisal"])
    n_activating: int | None = 50  # activating test examples per latent (spread over quantiles); null: all
    n_non_activating: int | None = 50  # non-activating test examples per latent; null: all
    max_latents: int | None = None  # score only the first latents that have an explanation
    control: bool = True  # also score shuffled explanations
    seed: int = 0
    llm: dict | None = None  # overrides of the ``llm:`` parameters for the scorer model
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    fuzzing: FuzzingConfig = field(default_factory=FuzzingConfig)
    surprisal: SurprisalConfig = field(default_factory=SurprisalConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    intruder: IntruderConfig = field(default_factory=IntruderConfig)
    n_bootstrap: int = 1000

    def validate(self, where: str) -> None:
        for s in self.scorers:
            if s not in SCORERS:
                raise ConfigError(f"{where}.scorers: unknown scorer '{s}'. Use any of {sorted(SCORERS)}.")
        for name in ("n_activating", "n_non_activating", "max_latents"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{where}.{name} must be at least 1 (or null), got {v}.")

    def make(self, name: str) -> Scorer:
        return SCORERS[name](getattr(self, name))


def as_frame(data: Any, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a list of records, or a partitioned dataset's dict of loaders."""
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
        groups = [g.sample(frac=1, random_state=int(rng.integers(2**31))).index.tolist()
                  for _, g in act.groupby("quantile", sort=True)][::-1]
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
    h = hashlib.sha1()
    h.update(pd.util.hash_pandas_object(df.astype(str), index=False).values.tobytes())
    return h.hexdigest()[:16]


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return v


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

    def fingerprint(self) -> str:
        blob = json.dumps({"hookpoint": self.hookpoint, "score": as_dict(self.config),
                           "llm": as_dict(self.llm) if self.llm is not None else None,
                           "examples": frame_digest(self.examples[["latent", "split", "kind", "context", "start"]]),
                           "explanations": frame_digest(self.explanations[["latent", "explanation"]])},
                          sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def plan(self) -> tuple[list[int], dict[int, str], dict[int, str]]:
        """(latents to score, their explanations, their shuffled explanations)."""
        expl = self.explanations
        expl = expl[expl["explanation"].notna()] if "explanation" in expl else expl.iloc[:0]
        have = set(self.examples["latent"].unique().tolist())
        rows = expl[expl["latent"].isin(have)].drop_duplicates("latent").sort_values("latent")
        if self.config.max_latents is not None:
            rows = rows.head(self.config.max_latents)
        latents = [int(x) for x in rows["latent"]]
        real = dict(zip(latents, rows["explanation"].astype(str)))
        shuffled: dict[int, str] = {}
        if self.config.control and len(latents) >= 2:
            perm = derangement(len(latents), np.random.default_rng([self.config.seed, 1]))
            shuffled = {lat: real[latents[j]] for lat, j in zip(latents, perm)}
        elif self.config.control:
            log.warning("score %s: only %d latent(s) with an explanation; no shuffled control possible",
                        self.hookpoint, len(latents))
        return latents, real, shuffled

    def run(self, root: str | Path) -> dict:
        return run_scoring(Path(root), self)


def _read_done(path: Path) -> set[tuple[int, bool]]:
    """Finished (latent, control) pairs of a scorer file; a torn last line is cut off."""
    done: set[tuple[int, bool]] = set()
    if not path.exists():
        return done
    good = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            done.add((int(rec["latent"]), bool(rec["control"])))
            good += len(line)
    if good < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good)
    return done


def run_scoring(root: Path, job: ScoreJob) -> dict:
    cfg = job.config
    fp = job.fingerprint()
    meta_path = root / "meta.json"
    root.mkdir(parents=True, exist_ok=True)
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("fingerprint") != fp:
            log.info("score %s: configuration or inputs changed; starting afresh", job.hookpoint)
            for f in root.glob("*.jsonl"):
                f.unlink()
        elif old.get("complete"):
            return old
    meta = {"hookpoint": job.hookpoint, "fingerprint": fp, "scorers": list(cfg.scorers), "complete": False}
    _write_json(meta_path, meta)
    latents, real, shuffled = job.plan()
    by_latent = {int(k): g for k, g in job.examples.groupby("latent")}
    scorers = [cfg.make(s) for s in cfg.scorers]
    todo = []
    for sc in scorers:
        done = _read_done(root / f"{sc.name}.jsonl")
        for lat in latents:
            for control in ((False, True) if sc.uses_explanation and shuffled else (False,)):
                if (lat, control) not in done:
                    todo.append((sc, lat, control))
    client = job.client
    if client is None and any(sc.uses_client for sc, _, _ in todo):
        if job.llm is None:
            raise ConfigError("parameters: llm is missing, but the configured scorers need a language model.")
        from ..llm import make_client

        client = make_client(job.llm, credentials=job.credentials)
    bar = tqdm(total=len(todo), desc=f"score {job.hookpoint}", unit="task", disable=not job.progress)
    handles: dict[str, Any] = {}
    try:
        for sc, lat, control in sorted(todo, key=lambda t: (t[1], t[0].name, t[2])):
            ss = np.random.SeedSequence([cfg.seed, lat, int(control), sum(map(ord, sc.name))])
            rng = np.random.default_rng(ss)
            ex_df = select_examples(by_latent[lat], cfg.n_activating, cfg.n_non_activating, rng)
            examples = examples_from_frame(ex_df)
            explanation = (shuffled if control else real).get(lat) if sc.uses_explanation else None
            u0 = client.usage if client is not None else None
            t0 = time.perf_counter()
            out = sc.score(explanation, examples, client, rng)
            seconds = time.perf_counter() - t0
            du = (client.usage - u0) if client is not None else None
            rec = {"latent": lat, "control": control, "explanation": explanation, "rows": out.rows,
                   "extra": {k: _jsonable(v) for k, v in out.extra.items()},
                   "prompt_tokens": int(du.prompt_tokens) if du else 0,
                   "completion_tokens": int(du.completion_tokens) if du else 0,
                   "requests": int(du.requests) if du else 0, "seconds": seconds}
            if sc.name not in handles:
                handles[sc.name] = open(root / f"{sc.name}.jsonl", "a", encoding="utf-8")
            h = handles[sc.name]
            h.write(json.dumps(rec, default=_jsonable) + "\n")
            h.flush()
            os.fsync(h.fileno())
            bar.update(1)
    finally:
        for h in handles.values():
            h.close()
        bar.close()
    n_quantiles = int(job.examples["quantile"].max()) + 1 if len(job.examples) else 0
    meta.update(complete=True, n_latents=len(latents), n_quantiles=max(n_quantiles, 0),
                skipped_latents=int(job.explanations["latent"].nunique() - len(latents)) if len(job.explanations) else 0)
    _write_json(meta_path, meta)
    return meta


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


class ScoreRun:
    """Read side of a scoring folder: the per-example and per-latent tables."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        mp = self.root / "meta.json"
        if not mp.exists():
            raise AutointerpError(f"'{self.root}' holds no scores yet: run the score pipeline first.")
        self.meta = json.loads(mp.read_text())

    def records(self) -> list[dict]:
        recs = []
        for name in self.meta.get("scorers", []):
            p = self.root / f"{name}.jsonl"
            if p.exists():
                with open(p, encoding="utf-8") as f:
                    for line in f:
                        try:
                            recs.append({"scorer": name, **json.loads(line)})
                        except json.JSONDecodeError:
                            break
        return recs

    def scores(self) -> pd.DataFrame:
        rows = []
        hp = self.meta["hookpoint"]
        for rec in self.records():
            for r in rec["rows"]:
                rows.append({"hookpoint": hp, "latent": rec["latent"], "scorer": rec["scorer"], "control": rec["control"],
                             **{k: r.get(k) for k in SCORE_COLUMNS[4:]}})
        return pd.DataFrame(rows, columns=SCORE_COLUMNS)

    def metrics(self) -> pd.DataFrame:
        nq = int(self.meta.get("n_quantiles", 0))
        out = []
        for rec in self.records():
            rs = rec["rows"]
            m = latent_metrics([r["label"] for r in rs], [r["prediction"] for r in rs], [r["score"] for r in rs],
                               [r["quantile"] for r in rs], [r["failure"] is not None for r in rs], nq)
            out.append({"hookpoint": self.meta["hookpoint"], "latent": rec["latent"], "scorer": rec["scorer"],
                        "control": rec["control"], **m, "prompt_tokens": rec["prompt_tokens"],
                        "completion_tokens": rec["completion_tokens"], "seconds": rec["seconds"],
                        **{k: (np.nan if v is None else v) for k, v in rec.get("extra", {}).items()}})
        cols = METRIC_COLUMNS + [f"recall_q{i}" for i in range(nq)]
        df = pd.DataFrame(out)
        for c in cols:
            if c not in df:
                df[c] = np.nan
        return df[cols + [c for c in df.columns if c not in cols]]
