"""Run-level views for the report: the summary per (hookpoint, scorer, metric, explainer) with
bootstrap intervals, the calibrate stage's verdicts, the long metric table the plots draw, and
the similarity stage's matrices."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .data import HookpointData, ReportConfig, _num, as_frame, explainer_of, order_explainers


def summary_rows(data: list[HookpointData], cfg: ReportConfig, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Per hookpoint, scorer, metric and explainer: the mean over latents with real explanations
    with its bootstrap 95% interval (taken from the score stage's summary table when it has them,
    else computed as it computes them), the shuffled control's mean, real minus control with its
    interval (paired per latent), and whether this explainer has the best real-minus-control of
    the (hookpoint, scorer, metric)."""
    from autointerp.scoring.metrics import bootstrap_ci

    out = []
    for d in data:
        m = d.metrics
        if m is None or not len(m):
            continue
        stage = {}
        if d.summary is not None and len(d.summary) and "scorer" in d.summary.columns:
            stage = {(str(r["scorer"]), e): r for r, e in zip(d.summary.to_dict("records"), explainer_of(d.summary))}
        m = m.assign(
            _explainer=explainer_of(m), _control=m["control"].astype(bool) if "control" in m.columns else False
        )
        for scorer, g in m.groupby("scorer", sort=True):
            for metric in cfg.metrics:
                if metric not in g.columns or pd.to_numeric(g[metric], errors="coerce").isna().all():
                    continue
                group = []
                for explainer in order_explainers(set(g["_explainer"]) | {"none"}) + ["none"]:
                    sub = g[g["_explainer"] == explainer]
                    if not len(sub):
                        continue
                    val = pd.to_numeric(sub[metric], errors="coerce")
                    real = val[~sub["_control"]].groupby(sub.loc[~sub["_control"], "latent"]).mean()
                    ctrl = val[sub["_control"]].groupby(sub.loc[sub["_control"], "latent"]).mean()
                    mean, lo, hi = bootstrap_ci(real.tolist(), n_boot=n_boot, seed=seed)
                    given = stage.get((str(scorer), explainer), {})
                    if all(_num(given.get(k)) is not None for k in (metric, f"{metric}.lo", f"{metric}.hi")):
                        mean, lo, hi = given[metric], given[f"{metric}.lo"], given[f"{metric}.hi"]
                    delta = (real - ctrl).dropna()
                    dm, dlo, dhi = bootstrap_ci(delta.tolist(), n_boot=n_boot, seed=seed) if len(delta) else (None,) * 3
                    group.append(
                        {
                            "hookpoint": d.hookpoint,
                            "scorer": str(scorer),
                            "metric": metric,
                            "explainer": explainer,
                            "mean": _num(mean),
                            "lo": _num(lo),
                            "hi": _num(hi),
                            "control": _num(ctrl.mean()) if len(ctrl) else None,
                            "delta": _num(dm),
                            "delta_lo": _num(dlo),
                            "delta_hi": _num(dhi),
                            "n": int(real.notna().sum()),
                            "best": False,
                        }
                    )
                scored = [r for r in group if r["delta"] is not None]
                if len(scored) > 1:
                    max(scored, key=lambda r: r["delta"])["best"] = True
                out.extend(group)
    return out


def calibration_view(calibration: Mapping[str, Any] | None) -> dict[str, pd.DataFrame | None]:
    """The calibrate stage's tables (``words``, ``verdicts``, ``hits``, ``summary``) or None each."""
    calibration = calibration or {}
    return {k: as_frame(calibration.get(k)) for k in ("words", "verdicts", "hits", "summary")}


def uninformative_scorers(calibration: Mapping[str, Any] | None) -> dict[str, str]:
    """scorer -> verdict, for the scorers the same run's calibration found not informative."""
    v = calibration_view(calibration)["verdicts"]
    if v is None or not len(v) or "verdict" not in v.columns:
        return {}
    return {
        str(r["scorer"]): str(r["verdict"])
        for r in v.to_dict("records")
        if str(r["verdict"]).startswith("not informative")
    }


def flat_metrics(data: list[HookpointData], metric: str) -> pd.DataFrame:
    """Long table hookpoint, latent, scorer, explainer, control, value of one metric (for the plots)."""
    parts = []
    for d in data:
        m = d.metrics
        if m is None or metric not in m.columns or not len(m):
            continue
        ctrl = m["control"].astype(bool) if "control" in m.columns else pd.Series(False, index=m.index)
        parts.append(
            pd.DataFrame(
                {
                    "hookpoint": d.hookpoint,
                    "latent": m["latent"].astype(int),
                    "scorer": m["scorer"].astype(str),
                    "explainer": explainer_of(m).values,
                    "control": ctrl.values,
                    "value": pd.to_numeric(m[metric], errors="coerce").values,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["hookpoint", "latent", "scorer", "explainer", "control", "value"])
    df = pd.concat(parts, ignore_index=True)
    return df.groupby(["hookpoint", "latent", "scorer", "explainer", "control"], as_index=False)["value"].mean()


def similarity_matrices(similarity: Mapping[str, Any] | None) -> dict[str, pd.DataFrame]:
    """Square-ish numeric matrices among the similarity stage's outputs, by name (others skipped)."""
    out: dict[str, pd.DataFrame] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, Callable) and not isinstance(obj, (pd.DataFrame, np.ndarray)):
            obj = obj()
        if isinstance(obj, np.ndarray) and obj.ndim == 2:
            out[name] = pd.DataFrame(obj)
        elif isinstance(obj, pd.DataFrame) and len(obj) and obj.shape[1] >= 2:
            num = obj.select_dtypes("number")
            if num.shape[1] == obj.shape[1]:
                out[name] = num
            elif {"hookpoint_a", "hookpoint_b"} <= set(obj.columns):
                # an overview: one heatmap hookpoint_a x hookpoint_b per measure (and matching)
                value = "mean" if "mean" in num.columns else (num.columns[0] if num.shape[1] else None)
                if value is None:
                    return
                keys = [k for k in ("matching", "measure") if k in obj.columns]
                groups = obj.groupby(keys, sort=True) if keys else [((), obj)]
                for key, g in groups:
                    key = key if isinstance(key, tuple) else (key,)
                    label = ".".join([name, *[str(k) for k in key]])
                    out[label] = g.pivot_table(index="hookpoint_a", columns="hookpoint_b", values=value, aggfunc="mean")
        elif isinstance(obj, Mapping):
            for k in sorted(obj):
                visit(f"{name}.{k}", obj[k])

    for name, obj in (similarity or {}).items():
        if obj is not None:
            visit(name, obj)
    return out
