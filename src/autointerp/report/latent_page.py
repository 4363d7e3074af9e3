"""One page per latent: explanations, scores against the shuffled control, recall by quantile,
the activation histogram and the examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .data import HookpointData, ReportConfig, metric_pairs, order_explainers
from .html import PLOTS_DIR, esc, fmt, page


def render_tokens(tokens, activations, marked: int = -1, scale: float = 1.0) -> str:
    """Per-token spans; background opacity follows activation / ``scale``; hover shows the value."""
    out = []
    for i, (tok, act) in enumerate(zip(tokens, activations)):
        act = float(act)
        alpha = 0.0 if scale <= 0 else max(0.0, min(1.0, act / scale))
        text = str(tok).replace("\n", "↵\n")
        cls = "tok"
        if act > 0:
            cls += " on"
        if i == marked:
            cls += " mark"
        style = f' style="background:rgba(255,120,0,{alpha:.3f})"' if act > 0 else ""
        out.append(f'<span class="{cls}"{style} title="{esc(fmt(act, 4))}">{esc(text)}</span>')
    return "".join(out)


def histogram_svg(counts: np.ndarray, edges: np.ndarray, width: int = 420, height: int = 140) -> str:
    if len(counts) == 0 or counts.sum() == 0:
        return '<p class="note">no non-zero activations</p>'
    pad_l, pad_b = 40, 20
    w, h = width - pad_l - 5, height - pad_b - 5
    top = float(counts.max())
    bw = w / len(counts)
    bars = []
    for i, c in enumerate(counts):
        bh = h * float(c) / top
        bars.append(
            f'<rect x="{pad_l + i * bw:.1f}" y="{5 + h - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="#e07800"><title>{esc(fmt(edges[i]))}–{esc(fmt(edges[i + 1]))}: '
            f"{int(c)}</title></rect>"
        )
    axis = (
        f'<text x="{pad_l}" y="{height - 4}" font-size="10">0</text>'
        f'<text x="{width - 5}" y="{height - 4}" font-size="10" text-anchor="end">{esc(fmt(edges[-1]))}</text>'
        f'<text x="{pad_l - 4}" y="14" font-size="10" text-anchor="end">{int(top)}</text>'
        f'<text x="{pad_l - 4}" y="{5 + h}" font-size="10" text-anchor="end">0</text>'
    )
    return (
        f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img"><title>activation histogram</title>{"".join(bars)}{axis}</svg>'
    )


def _count(v) -> str:
    return "–" if v is None else str(int(round(v)))


def _scores_table(pairs: dict, cfg: ReportConfig) -> str:
    metrics = [
        m
        for m in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc")
        if any(m in per for per in pairs.values())
    ]
    head = "".join(f"<th>{esc(m)}</th>" for m in metrics)
    rows = []
    for (scorer, explainer), per in pairs.items():
        for label in ("real", "control", "real − control"):
            cells = []
            for m in metrics:
                p = per.get(m, {})
                if label == "real − control":
                    v = None if p.get("real") is None or p.get("control") is None else p["real"] - p["control"]
                else:
                    v = p.get(label)
                cells.append(f'<td class="num">{esc(fmt(v))}</td>')
            n = per.get("n", {}).get("real" if label != "control" else "control")
            nf = per.get("n_failed", {}).get("real" if label != "control" else "control")
            extra = "" if label == "real − control" else f"n={_count(n)}, failed={_count(nf)}"
            rows.append(
                f"<tr><td>{esc(scorer)}</td><td>{esc(explainer)}</td><td>{esc(label)}</td>{''.join(cells)}"
                f"<td>{esc(extra)}</td></tr>"
            )
    return (
        f'<table class="scores"><thead><tr><th>scorer</th><th>explainer</th><th>explanation</th>{head}'
        f"<th>examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _recall_table(pairs: dict) -> str:
    qs = sorted(
        {c for per in pairs.values() for c in per if c.startswith("recall_q")},
        key=lambda c: int(c[len("recall_q") :]) if c[len("recall_q") :].isdigit() else 0,
    )
    if not qs:
        return '<p class="note">no recall by quantile in the score table</p>'
    head = "".join(f"<th>{esc(q[len('recall_') :])}</th>" for q in qs)
    rows = []
    for (scorer, explainer), per in pairs.items():
        for label in ("real", "control"):
            cells = []
            for q in qs:
                v = per.get(q, {}).get(label)
                bg = "" if v is None else f' style="background:rgba(0,120,255,{max(0.0, min(1.0, v)) * 0.6:.2f})"'
                cells.append(f'<td class="num"{bg}>{esc(fmt(v))}</td>')
            rows.append(
                f"<tr><td>{esc(scorer)}</td><td>{esc(explainer)}</td><td>{esc(label)}</td>{''.join(cells)}</tr>"
            )
    return (
        f'<table class="recall"><thead><tr><th>scorer</th><th>explainer</th><th>explanation</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table><p>q0 = weakest activation quantile.</p>"
    )


def _examples_html(df: pd.DataFrame, scale: float) -> str:
    out = []
    for r in df.to_dict("records"):
        meta = [str(r.get("split", ""))]
        if r.get("kind") == "activating":
            meta.append(f"q{r.get('quantile')}")
        meta.append(f"max {fmt(r.get('max_activation'))}")
        marked = r.get("marked")
        marked = -1 if marked is None or (isinstance(marked, float) and math.isnan(marked)) else int(marked)
        toks = render_tokens(list(r.get("tokens") or []), list(r.get("activations") or []), marked, scale)
        out.append(
            f'<div class="ex {esc(r.get("kind"))}"><span class="meta">{esc(" · ".join(meta))}</span>{toks}</div>'
        )
    return "".join(out)


def render_latent(
    d: HookpointData, latent: int, row: dict, examples: pd.DataFrame | None, cfg: ReportConfig, plot_names: list[str]
) -> str:
    hp = d.hookpoint
    title = f"{hp} latent {latent}"
    stats = " · ".join(
        f"{k} {esc(fmt(row.get(k)))}" for k in ("frequency", "firing_count", "max_activation") if row.get(k) is not None
    )
    status = row.get("status")
    parts = ['<nav><a href="../../index.html">← all latents</a></nav>', f"<h1>{esc(hp)} · latent {int(latent)}</h1>"]
    if stats:
        parts.append(f"<p>{stats}</p>")
    elif d.missing("latents"):
        parts.append(f'<p class="note">latent statistics {esc(d.missing("latents"))}</p>')
    if status not in (None, "ok"):
        parts.append(f'<p class="note">skipped by sample: {esc(status)}</p>')
    by_explainer = row.get("explanations") or {}
    parts.append("<h2>Explanation</h2>" if len(by_explainer) <= 1 else "<h2>Explanations</h2>")
    if len(by_explainer) > 1:
        for e in order_explainers(by_explainer):
            x = by_explainer[e]
            text = (
                esc(x["explanation"])
                if x["explanation"] is not None
                else f'<span class="note">the explainer failed: {esc(x["failure"])}</span>'
            )
            parts.append(f'<p class="explanation" data-explainer="{esc(e)}"><b>{esc(e)}</b>: {text}</p>')
    elif row.get("explanation") is not None:
        parts.append(f'<p class="explanation">{esc(row["explanation"])}</p>')
    elif row.get("explain_failure") is not None:
        parts.append(f'<p class="note">the explainer failed: {esc(row["explain_failure"])}</p>')
    else:
        parts.append(f'<p class="note">{esc(d.missing("explanations") or "no explanation for this latent")}</p>')
    parts.append("<h2>Scores against the shuffled control</h2>")
    pairs = metric_pairs(d, latent)
    if pairs:
        parts.append(_scores_table(pairs, cfg))
        parts.append("<h3>Recall by activation quantile</h3>")
        parts.append(_recall_table(pairs))
    else:
        parts.append(f'<p class="note">{esc(d.missing("scores") or "no scores for this latent")}</p>')
    parts.append("<h2>Activation histogram</h2>")
    if latent in d.histograms:
        parts.append(histogram_svg(*d.histograms[latent]))
    else:
        parts.append('<p class="note">no histogram: neither the cache nor examples are available</p>')
    if examples is None:
        parts.append(f'<h2>Examples</h2><p class="note">{esc(d.missing("examples") or "no examples")}</p>')
    else:
        act = examples[examples["kind"] == "activating"]
        scale = row.get("max_activation") or (float(act["max_activation"].max()) if len(act) else 1.0)
        parts.append(f"<h2>Activating examples ({len(act)} strongest shown)</h2>")
        parts.append(
            f'<div class="examples activating">{_examples_html(act, scale)}</div>'
            if len(act)
            else '<p class="note">no activating examples</p>'
        )
        rest = examples[examples["kind"] != "activating"]
        parts.append("<h2>Non-activating examples</h2>")
        if not len(rest):
            parts.append('<p class="note">no non-activating examples</p>')
        for kind, g in rest.groupby("kind", sort=True):
            parts.append(f'<h3>{esc(kind)}</h3><div class="examples {esc(kind)}">{_examples_html(g, scale)}</div>')
    if plot_names:
        parts.append(
            "<h2>Run plots</h2><ul>"
            + "".join(f'<li><a href="../../../{PLOTS_DIR}/{esc(n)}">{esc(n)}</a></li>' for n in plot_names)
            + "</ul>"
        )
    return page(title, "\n".join(parts))
