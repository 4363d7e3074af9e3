"""The static latent browser: an index page and one page per latent, as HTML strings.

No server and no network: the pages open from disk, with a few lines of inline JavaScript for
sorting and filtering the index. Every piece of corpus or model text goes through :func:`esc`.
"""

from __future__ import annotations

import math
import re
from html import escape
from string import Template

import numpy as np
import pandas as pd

from .data import (
    HookpointData,
    ReportConfig,
    calibration_view,
    explainer_of,
    explainers,
    index_rows,
    metric_pairs,
    order_explainers,
    scorers,
    summary_rows,
    uninformative_scorers,
)

PLOTS_DIR = "plots"  # sibling of the site folder: <data_root>/08_reporting/plots


def esc(value) -> str:
    """HTML-escape any value (quotes included, so it is safe inside attributes too)."""
    return escape("" if value is None else str(value), quote=True)


def fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}f}"


def latent_page_path(hookpoint: str, latent: int) -> str:
    """Page of a latent, relative to the site folder (the folder is the hookpoint's namespace,
    spelled like :func:`autointerp.pipelines.common.namespace`, which lives on the Kedro side)."""
    return f"latents/{re.sub(r'[^0-9A-Za-z_]', '_', hookpoint)}/{int(latent)}.html"


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#a05a00;font-style:italic}
.ex{font-family:ui-monospace,monospace;font-size:.85em;white-space:pre-wrap;border-bottom:1px solid #eee;padding:.3em 0}
.ex .meta{color:#888;margin-right:.6em}
.tok{border-radius:2px}
.tok.mark{outline:1px solid #c00}
.pos{color:#070}.neg{color:#b00}
.uninformative{color:#999}th.uninformative{background:#f6e7e7}
.best{font-weight:bold}.verdict-informative{color:#070;font-weight:bold}.verdict-not{color:#b00;font-weight:bold}
#filter{width:30em;padding:.3em;margin:.5em 0}
nav a{margin-right:1em}
"""

INDEX_JS = """
(function(){
  var table=document.getElementById('latents'); if(!table) return;
  var body=table.tBodies[0];
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, i){
    th.addEventListener('click', function(){
      var asc=!th.classList.contains('asc');
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var num=th.getAttribute('data-type')==='num';
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].getAttribute('data-v'), y=b.cells[i].getAttribute('data-v'), c;
        if(num){ x=parseFloat(x); y=parseFloat(y);
          var xn=isNaN(x), yn=isNaN(y);
          if(xn||yn){ return xn===yn?0:(xn?1:-1); }
          c=x-y; }
        else { c=x.localeCompare(y); }
        return asc?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  var box=document.getElementById('filter'), shown=document.getElementById('shown');
  box.addEventListener('input', function(){
    var q=box.value.toLowerCase(), n=0;
    Array.prototype.forEach.call(body.rows, function(r){
      var ok=r.textContent.toLowerCase().indexOf(q)>=0; r.style.display=ok?'':'none'; if(ok) n++;
    });
    shown.textContent=n;
  });
})();
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style></head>
<body>
$body
</body></html>
""")


def page(title: str, body: str, script: str = "") -> str:
    if script:
        body += f"\n<script>{script}</script>"
    return PAGE.substitute(title=esc(title), css=CSS, body=body)


# ---------------------------------------------------------------------------------------- index

def _score_columns(data: list[HookpointData], cfg: ReportConfig) -> list[tuple[str, str, str]]:
    """(scorer, metric, explainer) triples with at least one value in the run."""
    cols = []
    for s in scorers(data):
        for m in cfg.metrics:
            found: set[str] = set()
            for d in data:
                if d.metrics is None or m not in d.metrics.columns:
                    continue
                sub = d.metrics[d.metrics["scorer"] == s]
                ok = pd.to_numeric(sub[m], errors="coerce").notna()
                found.update(explainer_of(sub)[ok].unique())
            cols.extend((s, m, e) for e in order_explainers(found) + (["none"] if "none" in found else []))
    return cols


def _mark(scorer: str, flagged: dict[str, str]) -> str:
    return " ⚠" if scorer in flagged else ""


def _td(value, num: bool = True, html: str | None = None) -> str:
    if num:
        v = "" if value is None else repr(float(value))
        return f'<td class="num" data-v="{esc(v)}">{html if html is not None else esc(fmt(value))}</td>'
    return f'<td data-v="{esc(value)}">{html if html is not None else esc(value if value is not None else "")}</td>'


def _ci(v, lo, hi) -> str:
    if v is None:
        return "–"
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else fmt(v)


def render_summary(data: list[HookpointData], cfg: ReportConfig, flagged: dict[str, str]) -> str:
    """Per hookpoint and scorer, every explainer side by side (LLM vs the statistical baseline)
    with bootstrap 95% intervals; the best real-minus-control is starred."""
    rows = summary_rows(data, cfg)
    if not rows:
        return '<p class="note">No scores yet: run <code>kedro run --pipelines score</code>.</p>'
    body = []
    for r in rows:
        cls = ' class="uninformative"' if r["scorer"] in flagged else ""
        star = " ★" if r["best"] else ""
        title = f' title="{esc(flagged[r["scorer"]])} (calibration)"' if r["scorer"] in flagged else ""
        body.append(f'<tr{cls}{title}><td>{esc(r["hookpoint"])}</td><td>{esc(r["scorer"] + _mark(r["scorer"], flagged))}</td>'
                    f'<td>{esc(r["metric"])}</td><td class="{"best" if r["best"] else ""}">{esc(r["explainer"] + star)}</td>'
                    f'<td class="num">{esc(_ci(r["mean"], r["lo"], r["hi"]))}</td><td class="num">{esc(fmt(r["control"]))}</td>'
                    f'<td class="num {"best" if r["best"] else ""}">{esc(_ci(r["delta"], r["delta_lo"], r["delta_hi"]))}</td>'
                    f'<td class="num">{r["n"]}</td></tr>')
    return ('<table id="summary"><thead><tr><th>hookpoint</th><th>scorer</th><th>metric</th><th>explainer</th>'
            '<th>real [95% CI]</th><th>shuffled control</th><th>real − control [95% CI]</th><th>latents</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>'
            '<p>★ the explainer with the highest real − control for that hookpoint and scorer. '
            '⚠ a scorer the same run\'s calibration found not informative: its scores say little.</p>')


def render_calibration(calibration: dict | None, cfg: ReportConfig) -> str:
    """The calibrate stage's verdicts, hit rates and the explanations of the known-answer latents."""
    view = calibration_view(calibration)
    v, hits, summary = view["verdicts"], view["hits"], view["summary"]
    if v is None:
        return ('<p class="note">No calibration: not available yet (run <code>kedro run --pipelines calibrate</code>, '
                'or it is off: <code>calibrate.enabled</code>).</p>')
    parts = ["<p>Known-answer latents: exact detectors of single words at the embedding output, explained "
             "and scored like real latents. A scorer is <b>informative</b> when the true explanation "
             "(<code>the word \"X\"</code>) beats shuffled explanations by at least 0.2 AUROC with a 95% interval "
             "above 0.</p>"]
    body = []
    for r in v.to_dict("records"):
        verdict = str(r.get("verdict"))
        cls = "verdict-informative" if verdict == "informative" else "verdict-not"
        body.append(f'<tr data-scorer="{esc(r["scorer"])}"><td>{esc(r["scorer"])}</td><td>{esc(r.get("metric"))}</td>'
                    f'<td class="num">{esc(_ci(_f(r.get("true")), _f(r.get("true_lo")), _f(r.get("true_hi"))))}</td>'
                    f'<td class="num">{esc(_ci(_f(r.get("shuffled")), _f(r.get("shuffled_lo")), _f(r.get("shuffled_hi"))))}</td>'
                    f'<td class="num">{esc(_ci(_f(r.get("delta")), _f(r.get("delta_lo")), _f(r.get("delta_hi"))))}</td>'
                    f'<td class="num">{esc(r.get("n_latents"))}</td><td class="{cls}">{esc(verdict)}</td></tr>')
    words = view["words"]
    if words is not None and len(words) and "status" in words.columns:
        ok = words[words["status"] == "ok"]
        refused = words[words["status"] != "ok"]
        parts.append('<p id="calibration-words">Known-answer words: ' + esc(", ".join(map(str, ok["word"]))) +
                     (f'; refused: {esc(", ".join(f"{r.word} ({r.status})" for r in refused.itertuples()))}'
                      if len(refused) else "") + ".</p>")
    parts.append('<table id="verdicts"><thead><tr><th>scorer</th><th>metric</th><th>true [95% CI]</th>'
                 '<th>shuffled [95% CI]</th><th>true − shuffled [95% CI]</th><th>latents</th><th>verdict</th></tr>'
                 f'</thead><tbody>{"".join(body)}</tbody></table>')
    if summary is not None and len(summary):
        own = summary[~summary["explanation"].isin(["true", "shuffled"])]
        if len(own):
            parts.append("<p>With the explainers' own explanations: " + "; ".join(
                f"{esc(r['scorer'])} {esc(r['explanation'])} {esc(_ci(_f(r['mean']), _f(r['lo']), _f(r['hi'])))}"
                for r in own.to_dict("records")) + ".</p>")
    if hits is not None and len(hits):
        rates = hits.assign(hit=hits["hit"].astype(str).str.lower().isin(["true", "1"])).groupby("explainer")["hit"]
        parts.append('<p id="hit-rates">Explainer hit rate (explanations naming the word): ' + ", ".join(
            f"{esc(e)} {int(g.sum())}/{len(g)}" for e, g in rates) + ".</p>")
        rows = "".join(f'<tr><td>{esc(r["word"])}</td><td>{esc(r["explainer"])}</td>'
                       f'<td>{esc(r["explanation"] if isinstance(r["explanation"], str) else "failed: " + str(r["failure"]))}</td>'
                       f'<td>{"yes" if str(r["hit"]).lower() in ("true", "1") else "no"}</td></tr>'
                       for r in hits.to_dict("records"))
        parts.append('<table id="calibration-explanations"><thead><tr><th>word</th><th>explainer</th><th>explanation</th>'
                     f'<th>names the word</th></tr></thead><tbody>{rows}</tbody></table>')
    return "".join(parts)


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def render_index(data: list[HookpointData], cfg: ReportConfig, plot_names: list[str],
                 similarity_names: list[str] = (), calibration: dict | None = None) -> str:
    rows = index_rows(data, cfg)
    score_cols = _score_columns(data, cfg)
    names = explainers(data)
    multi = len(names) > 1
    flagged = uninformative_scorers(calibration)
    expl_cols = names if multi else [None]
    notes = []
    for role, label in (("latents", "latent statistics"), ("explanations", "explanations"), ("scores", "scores")):
        missing = [d.hookpoint for d in data if d.missing(role)]
        if missing:
            stage = {"latents": "sample", "explanations": "explain", "scores": "score"}[role]
            notes.append(f'<p class="note">No {esc(label)} for {esc(", ".join(missing))}: '
                         f'not available yet, run <code>kedro run --pipelines {esc(stage)}</code>.</p>')
    head = ['<th data-type="text">hookpoint</th>', '<th data-type="num">latent</th>',
            '<th data-type="num">frequency</th>']
    head += [f'<th data-type="text">explanation{esc(f" ({e})" if e else "")}</th>' for e in expl_cols]
    score_explainers = {e for _, _, e in score_cols} - {"none"}
    for s, m, e in score_cols:
        label = f"{s} {m}" + (f" [{e}]" if len(score_explainers) > 1 and e != "none" else "") + _mark(s, flagged)
        attr = f' class="uninformative" title="{esc(flagged[s])} (calibration)"' if s in flagged else ""
        head.append(f'<th data-type="num"{attr}>{esc(label)}</th>')
        tip = attr or ' title="real minus shuffled-explanation control"'
        head.append(f'<th data-type="num"{tip}>{esc(label.replace(" ⚠", ""))} − control{" ⚠" if s in flagged else ""}</th>')
    body = []
    for r in rows:
        link = latent_page_path(r["hookpoint"], r["latent"])
        cells = [
            _td(r["hookpoint"], num=False),
            _td(r["latent"], html=f'<a href="{esc(link)}">{r["latent"]}</a>'),
            _td(r["frequency"]),
        ]
        for e in expl_cols:
            x = r["explanations"].get(e) if e else {"explanation": r["explanation"], "failure": r["explain_failure"]}
            if x and x["explanation"] is not None:
                expl_html = esc(x["explanation"])
            elif x and x["failure"] is not None:
                expl_html = f'<span class="note">failed: {esc(x["failure"])}</span>'
            elif r["status"] not in (None, "ok"):
                expl_html = f'<span class="note">skipped: {esc(r["status"])}</span>'
            else:
                expl_html = '<span class="note">–</span>'
            cells.append(_td((x or {}).get("explanation") or "", num=False, html=expl_html))
        for s, m, e in score_cols:
            pair = r["scores"].get((s, e), {}).get(m, {})
            real, ctrl = pair.get("real"), pair.get("control")
            delta = None if real is None or ctrl is None else real - ctrl
            cells.append(_td(real))
            cls = "" if delta is None else (' class="pos"' if delta > 0 else ' class="neg"')
            cells.append(_td(delta, html=f'<span{cls}>{esc(fmt(delta))}</span>'))
        body.append(f'<tr>{"".join(cells)}</tr>')
    plots = "".join(f'<li><a href="../{PLOTS_DIR}/{esc(n)}">{esc(n)}</a></li>' for n in plot_names)
    sim = ""
    if "similarity" in cfg.stages:
        sim = ("<p>Similarity heatmaps: " + ", ".join(esc(n) for n in similarity_names) + "</p>") if similarity_names \
            else '<p class="note">No similarity results: not available yet (run <code>kedro run --pipelines similarity</code>).</p>'
    calib = f'<h2 id="calibration-section">Calibration</h2>{render_calibration(calibration, cfg)}' \
        if "calibrate" in cfg.stages else ""
    html = f"""<h1>{esc(cfg.title)}</h1>
<p>{len(rows)} latents over {len(data)} hookpoints ({esc(", ".join(d.hookpoint for d in data))}).
Click a column header to sort; type to filter. Scores use the shuffled-explanation control:
"− control" is the real score minus the score of an explanation of another latent.</p>
{''.join(notes)}
<h2>Summary</h2>
{render_summary(data, cfg, flagged)}
{calib}
<h2>Plots</h2>
<ul id="plots">{plots or '<li class="note">no plots</li>'}</ul>
{sim}
<h2>Latents</h2>
<input id="filter" type="search" placeholder="filter: hookpoint, latent, words of the explanation…">
<span><span id="shown">{len(rows)}</span> shown</span>
<table id="latents"><thead><tr>{''.join(head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>"""
    return page(cfg.title, html, INDEX_JS)


# ------------------------------------------------------------------------------------ latent page

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
        bars.append(f'<rect x="{pad_l + i * bw:.1f}" y="{5 + h - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                    f'height="{bh:.1f}" fill="#e07800"><title>{esc(fmt(edges[i]))}–{esc(fmt(edges[i + 1]))}: '
                    f'{int(c)}</title></rect>')
    axis = (f'<text x="{pad_l}" y="{height - 4}" font-size="10">0</text>'
            f'<text x="{width - 5}" y="{height - 4}" font-size="10" text-anchor="end">{esc(fmt(edges[-1]))}</text>'
            f'<text x="{pad_l - 4}" y="14" font-size="10" text-anchor="end">{int(top)}</text>'
            f'<text x="{pad_l - 4}" y="{5 + h}" font-size="10" text-anchor="end">0</text>')
    return (f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img"><title>activation histogram</title>{"".join(bars)}{axis}</svg>')


def _count(v) -> str:
    return "–" if v is None else str(int(round(v)))


def _scores_table(pairs: dict, cfg: ReportConfig) -> str:
    metrics = [m for m in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc")
               if any(m in per for per in pairs.values())]
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
            rows.append(f"<tr><td>{esc(scorer)}</td><td>{esc(explainer)}</td><td>{esc(label)}</td>{''.join(cells)}"
                        f"<td>{esc(extra)}</td></tr>")
    return (f'<table class="scores"><thead><tr><th>scorer</th><th>explainer</th><th>explanation</th>{head}'
            f'<th>examples</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _recall_table(pairs: dict) -> str:
    qs = sorted({c for per in pairs.values() for c in per if c.startswith("recall_q")},
                key=lambda c: int(c[len("recall_q"):]) if c[len("recall_q"):].isdigit() else 0)
    if not qs:
        return '<p class="note">no recall by quantile in the score table</p>'
    head = "".join(f"<th>{esc(q[len('recall_'):])}</th>" for q in qs)
    rows = []
    for (scorer, explainer), per in pairs.items():
        for label in ("real", "control"):
            cells = []
            for q in qs:
                v = per.get(q, {}).get(label)
                bg = "" if v is None else f' style="background:rgba(0,120,255,{max(0.0, min(1.0, v)) * 0.6:.2f})"'
                cells.append(f'<td class="num"{bg}>{esc(fmt(v))}</td>')
            rows.append(f"<tr><td>{esc(scorer)}</td><td>{esc(explainer)}</td><td>{esc(label)}</td>{''.join(cells)}</tr>")
    return (f'<table class="recall"><thead><tr><th>scorer</th><th>explainer</th><th>explanation</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><p>q0 = weakest activation quantile.</p>')


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
        out.append(f'<div class="ex {esc(r.get("kind"))}"><span class="meta">{esc(" · ".join(meta))}</span>{toks}</div>')
    return "".join(out)


def render_latent(d: HookpointData, latent: int, row: dict, examples: pd.DataFrame | None,
                  cfg: ReportConfig, plot_names: list[str]) -> str:
    hp = d.hookpoint
    title = f"{hp} latent {latent}"
    stats = " · ".join(f"{k} {esc(fmt(row.get(k)))}" for k in ("frequency", "firing_count", "max_activation")
                       if row.get(k) is not None)
    status = row.get("status")
    parts = ['<nav><a href="../../index.html">← all latents</a></nav>',
             f"<h1>{esc(hp)} · latent {int(latent)}</h1>"]
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
            text = esc(x["explanation"]) if x["explanation"] is not None else \
                f'<span class="note">the explainer failed: {esc(x["failure"])}</span>'
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
        parts.append(f'<div class="examples activating">{_examples_html(act, scale)}</div>' if len(act)
                     else '<p class="note">no activating examples</p>')
        rest = examples[examples["kind"] != "activating"]
        parts.append("<h2>Non-activating examples</h2>")
        if not len(rest):
            parts.append('<p class="note">no non-activating examples</p>')
        for kind, g in rest.groupby("kind", sort=True):
            parts.append(f"<h3>{esc(kind)}</h3><div class=\"examples {esc(kind)}\">{_examples_html(g, scale)}</div>")
    if plot_names:
        parts.append("<h2>Run plots</h2><ul>" + "".join(
            f'<li><a href="../../../{PLOTS_DIR}/{esc(n)}">{esc(n)}</a></li>' for n in plot_names) + "</ul>")
    return page(title, "\n".join(parts))


def build_site(data: list[HookpointData], cfg: ReportConfig, plot_names: list[str],
               similarity_names: list[str] = (), calibration: dict | None = None) -> dict[str, object]:
    """``{relative path: html}``; latent pages are produced lazily (callables) when saved."""
    site: dict[str, object] = {"index.html": render_index(data, cfg, plot_names, similarity_names, calibration)}
    rows = {(r["hookpoint"], r["latent"]): r for r in index_rows(data, cfg)}
    for d in data:
        groups = dict(tuple(d.examples.groupby("latent"))) if d.examples is not None and len(d.examples) else {}
        for lat in d.latent_ids():
            ex = groups.get(lat)
            if ex is None and d.examples is not None:
                ex = d.examples.iloc[0:0]
            site[latent_page_path(d.hookpoint, lat)] = (
                lambda d=d, lat=lat, ex=ex: render_latent(d, lat, rows[(d.hookpoint, lat)], ex, cfg, plot_names))
    return site
