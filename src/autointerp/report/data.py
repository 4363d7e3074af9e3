"""Gather the outputs of the other stages into one tolerant view for the report.

Every input may be missing (``None``): a stage that has not run yet leaves its column or section
empty with a note, and the rest of the report still renders. Tables follow docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from autointerp.errors import ConfigError

# Which stage writes each table (for the "not run yet" notes).
ROLE_STAGE = {
    "latents": "sample",
    "examples": "sample",
    "explanations": "explain",
    "scores": "score",
    "score_metrics": "score",
    "score_summary": "score",
}
METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc")
EXAMPLE_COLUMNS = (
    "hookpoint",
    "latent",
    "split",
    "kind",
    "quantile",
    "tokens",
    "activations",
    "max_activation",
    "marked",
)


@dataclass(frozen=True)
class ReportConfig:
    """``parameters_report.yml: report``."""

    title: str = "autointerp latent browser"
    metrics: list[str] = field(default_factory=lambda: ["balanced_accuracy", "auroc"])
    max_activating: int = 20  # activating examples shown per latent page
    max_non_activating: int = 8  # non-activating examples shown per kind
    histogram_bins: int = 30
    histograms_from_cache: bool = True  # exact histogram from the latent cache, else from examples
    stages: list[str] = field(default_factory=lambda: ["sample", "explain", "score", "calibrate", "similarity"])
    similarity_datasets: list[str] = field(default_factory=lambda: ["similarity_overview"])

    def validate(self, where: str) -> None:
        bad = [m for m in self.metrics if m not in METRIC_COLUMNS]
        if bad:
            raise ConfigError(f"{where}.metrics: unknown metric '{bad[0]}'. Valid: {', '.join(METRIC_COLUMNS)}.")
        if not self.metrics:
            raise ConfigError(f"{where}.metrics: give at least one metric, e.g. [balanced_accuracy].")
        for name in ("max_activating", "max_non_activating", "histogram_bins"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be at least 1, got {getattr(self, name)}.")
        known = {"sample", "explain", "score", "calibrate", "similarity"}
        bad = [s for s in self.stages if s not in known]
        if bad:
            raise ConfigError(f"{where}.stages: unknown stage '{bad[0]}'. Valid: {', '.join(sorted(known))}.")


def as_frame(obj: Any, columns: Iterable[str] | None = None) -> pd.DataFrame | None:
    """A DataFrame from a DataFrame, a list of records, or a partitioned dataset's dict of
    partitions (loaders or frames), keeping only ``columns`` that exist. ``None`` stays ``None``."""
    if obj is None:
        return None
    if isinstance(obj, pd.DataFrame):
        df = obj
    elif isinstance(obj, Mapping):
        parts = []
        for key in sorted(obj):
            part = obj[key]
            part = part() if callable(part) else part
            part = as_frame(part, columns)
            if part is not None and len(part):
                parts.append(part)
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    elif isinstance(obj, list):
        df = pd.DataFrame(obj)
    else:
        raise TypeError(f"cannot read a table from {type(obj).__name__}")
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    return df


def _per_latent_metrics(*tables: pd.DataFrame | None) -> pd.DataFrame | None:
    """The per-latent metrics table among the score stage's outputs (recognised by its columns)."""
    for t in tables:
        if t is not None and "scorer" in t.columns and any(m in t.columns for m in METRIC_COLUMNS):
            return t
    return None


@dataclass
class HookpointData:
    """Everything the report knows about one hookpoint; any table may be ``None``."""

    hookpoint: str
    latents: pd.DataFrame | None = None
    examples: pd.DataFrame | None = None
    explanations: pd.DataFrame | None = None
    metrics: pd.DataFrame | None = None  # per-latent score metrics
    summary: pd.DataFrame | None = None  # the score stage's summary per (scorer, explainer)
    histograms: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def missing(self, role: str) -> str | None:
        """A note when a table is missing: which pipeline writes it."""
        table = {
            "latents": self.latents,
            "examples": self.examples,
            "explanations": self.explanations,
            "scores": self.metrics,
        }[role]
        if table is not None:
            return None
        stage = ROLE_STAGE[role]
        return f"not available yet: run `kedro run --pipelines {stage}`"

    def latent_ids(self) -> list[int]:
        for t in (self.latents, self.explanations, self.metrics, self.examples):
            if t is not None and "latent" in t.columns and len(t):
                return sorted(int(x) for x in t["latent"].unique())
        return sorted(self.histograms)


def hookpoint_data(
    hookpoint: str, tables: Mapping[str, Any], cfg: ReportConfig, latent_cache: Any = None
) -> HookpointData:
    """Normalise one hookpoint's tables (``tables`` maps role -> loaded dataset or None)."""
    examples = as_frame(tables.get("examples"), EXAMPLE_COLUMNS)
    if examples is not None:
        examples = _trim_examples(examples, cfg)
    data = HookpointData(
        hookpoint=hookpoint,
        latents=as_frame(tables.get("latents")),
        examples=examples,
        explanations=as_frame(tables.get("explanations")),
        metrics=_per_latent_metrics(as_frame(tables.get("score_metrics")), as_frame(tables.get("scores"))),
        summary=as_frame(tables.get("score_summary")),
    )
    latents = data.latent_ids()
    if latent_cache is not None and cfg.histograms_from_cache:
        data.histograms = cache_histograms(latent_cache, latents, cfg.histogram_bins)
    elif data.examples is not None:
        data.histograms = example_histograms(data.examples, cfg.histogram_bins)
    return data


def _trim_examples(df: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Keep only the examples a page shows: the strongest activating ones, a few of each other kind."""
    if not len(df):
        return df
    df = df.sort_values(["latent", "max_activation"], ascending=[True, False], kind="stable")
    act = df["kind"] == "activating"
    top = df[act].groupby("latent", sort=False).head(cfg.max_activating)
    rest = df[~act].groupby(["latent", "kind"], sort=False).head(cfg.max_non_activating)
    return pd.concat([top, rest], ignore_index=True)


def cache_histograms(cache: Any, latents: Iterable[int], bins: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Histogram of every non-zero activation of each latent (``histogram``'s bins, 0 to its
    maximum), in one pass over the cache one chunk file at a time, so memory stays flat however
    dense the cache (reading whole shards, the report of Gemma's raw MLP neurons peaked at
    11 GB). Each latent's range comes from the cache's stats: their maximum, rounded to the
    float16 the values are stored in, is the stored values' maximum."""
    wanted = np.array(sorted({int(x) for x in latents if 0 <= int(x) < cache.num_latents}), dtype=np.int64)
    stats = cache.stats()
    fires = stats["firing_count"] > 0
    stored_max = stats["max_activation"].astype(np.float16).astype(np.float64)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s, (start, end) in enumerate(cache.shard_ranges):
        lats = wanted[(wanted >= start) & (wanted < end)]
        if not len(lats):
            continue
        hi = np.where(fires[lats], stored_max[lats], -np.inf)
        counts = np.zeros((len(lats), bins), dtype=np.int64)
        for lat, val in cache.shard_chunks(s):
            keep = np.isin(lat, lats)
            if not keep.any():  # none of the wanted latents fires in this chunk
                continue
            pos, v = np.searchsorted(lats, lat[keep]), val[keep].astype(np.float64)
            order = np.argsort(pos, kind="stable")
            pos, v = pos[order], v[order]
            starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
            for a, b in zip(starts, np.r_[starts[1:], len(pos)], strict=True):
                counts[pos[a]] += np.histogram(v[a:b], bins=bins, range=_hist_range(hi[pos[a]]))[0]
        for j, lat in enumerate(lats):
            if np.isfinite(hi[j]):
                out[int(lat)] = (counts[j], np.histogram_bin_edges([], bins=bins, range=_hist_range(hi[j])))
            else:  # never fires
                out[int(lat)] = histogram(np.zeros(0), bins)
    return out


def example_histograms(examples: pd.DataFrame, bins: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Histogram of the non-zero activations inside the sampled windows (when no cache is given)."""
    out = {}
    for lat, g in examples.groupby("latent"):
        vals = np.concatenate([np.asarray(a, dtype=np.float32) for a in g["activations"]]) if len(g) else np.zeros(0)
        out[int(lat)] = histogram(vals[vals > 0], bins)
    return out


def _hist_range(hi: float) -> tuple[float, float]:
    return (0.0, float(hi) if hi > 0 else 1.0)


def histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    counts, edges = np.histogram(values, bins=bins, range=_hist_range(values.max()))
    return counts, edges


def _row_lookup(df: pd.DataFrame | None) -> dict[int, dict]:
    if df is None or "latent" not in df.columns:
        return {}
    return {int(r["latent"]): r for r in df.drop_duplicates("latent").to_dict("records")}


DEFAULT_EXPLAINER = "default"  # tables without an ``explainer`` column (old runs)
BASELINE = "tokens"  # the statistical explainer: the baseline every LLM explanation must beat


def explainer_of(df: pd.DataFrame) -> pd.Series:
    """The ``explainer`` column of a table (``default`` where missing: old runs)."""
    if "explainer" not in df.columns:
        return pd.Series(DEFAULT_EXPLAINER, index=df.index)
    return df["explainer"].fillna(DEFAULT_EXPLAINER).astype(str)


def order_explainers(names) -> list[str]:
    """LLM explainers first (sorted), the statistical baseline last."""
    names = set(names) - {"none"}
    return sorted(n for n in names if n != BASELINE) + ([BASELINE] if BASELINE in names else [])


def explainers(data: Iterable[HookpointData]) -> list[str]:
    """Every explainer of the run's explanations and score metrics."""
    names: set[str] = set()
    for d in data:
        for t in (d.explanations, d.metrics):
            if t is not None and len(t):
                names.update(explainer_of(t).unique())
    return order_explainers(names)


def _explanations_by_latent(df: pd.DataFrame | None) -> dict[int, dict[str, dict]]:
    """latent -> explainer -> explanation row."""
    if df is None or "latent" not in df.columns or not len(df):
        return {}
    out: dict[int, dict[str, dict]] = {}
    for r, e in zip(df.to_dict("records"), explainer_of(df)):
        out.setdefault(int(r["latent"]), {}).setdefault(e, r)
    return out


def scorers(data: Iterable[HookpointData]) -> list[str]:
    names: set[str] = set()
    for d in data:
        if d.metrics is not None and len(d.metrics):
            names.update(str(s) for s in d.metrics["scorer"].unique())
    return sorted(names)


def metric_pairs(data: HookpointData, latent: int) -> dict[tuple[str, str], dict[str, dict[str, float | None]]]:
    """(scorer, explainer) -> metric (and ``recall_q*``, ``n``, ``n_failed``) -> {real, control}
    for one latent (explainer ``default`` for tables without the column; ``none`` for scorers
    that read no explanation)."""
    out: dict[tuple[str, str], dict[str, dict[str, float | None]]] = {}
    m = data.metrics
    if m is None or not len(m):
        return out
    rows = m[m["latent"] == latent]
    rows = rows.assign(_explainer=explainer_of(rows))
    value_cols = [c for c in rows.columns if c in METRIC_COLUMNS or c.startswith("recall_q") or c in ("n", "n_failed")]
    for (scorer, explainer), g in rows.groupby(["scorer", "_explainer"], sort=True):
        per: dict[str, dict[str, float | None]] = {}
        for ctrl_flag, sub in g.groupby(
            g["control"].astype(bool) if "control" in g.columns else np.zeros(len(g), bool)
        ):
            key = "control" if ctrl_flag else "real"
            for c in value_cols:
                v = pd.to_numeric(sub[c], errors="coerce").mean()
                per.setdefault(c, {"real": None, "control": None})[key] = None if pd.isna(v) else float(v)
        out[(str(scorer), str(explainer))] = per
    order = {e: i for i, e in enumerate(order_explainers({e for _, e in out} | {"none"}) + ["none"])}
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))))


def index_rows(data: list[HookpointData], cfg: ReportConfig) -> list[dict]:
    """One dict per latent for the index: identity, frequency, explanations (by explainer), every score."""
    rows = []
    for d in data:
        lat_info = _row_lookup(d.latents)
        expl = _explanations_by_latent(d.explanations)
        for lat in d.latent_ids():
            info = lat_info.get(lat, {})
            by_explainer = {
                e: {"explanation": _text(r.get("explanation")), "failure": _text(r.get("failure"))}
                for e, r in expl.get(lat, {}).items()
            }
            first = next(iter(by_explainer[e] for e in order_explainers(by_explainer)), None) if by_explainer else None
            row = {
                "hookpoint": d.hookpoint,
                "latent": lat,
                "frequency": _num(info.get("frequency")),
                "firing_count": _num(info.get("firing_count")),
                "max_activation": _num(info.get("max_activation")),
                "status": info.get("status"),
                "explanation": None if first is None else first["explanation"],
                "explain_failure": None if first is None else first["failure"],
                "explanations": by_explainer,
                "scores": metric_pairs(d, lat),
            }
            rows.append(row)
    return rows


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else v


def _text(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


# Run-level views moved to .summaries; importable from here as before.
_MOVED = ("calibration_view", "flat_metrics", "similarity_matrices", "summary_rows", "uninformative_scorers")


def __getattr__(name: str):
    if name in _MOVED:
        from . import summaries

        return getattr(summaries, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
