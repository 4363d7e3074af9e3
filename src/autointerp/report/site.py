"""The static latent browser: an index page and one page per latent, as HTML strings.

No server and no network: the pages open from disk, with a few lines of inline JavaScript for
sorting and filtering the index. Every piece of corpus or model text goes through :func:`esc`.
The shared HTML pieces are in :mod:`.html`, the latent pages in :mod:`.latent_page`; this module
renders the index and assembles the site (and keeps their names importable from here).
"""

from __future__ import annotations

import math

import pandas as pd

from .data import (
    HookpointData,
    ReportConfig,
    explainer_of,
    explainers,
    index_rows,
    order_explainers,
    scorers,
)
from .html import CSS, INDEX_JS, PAGE, PLOTS_DIR, esc, fmt, latent_page_path, page
from .latent_page import histogram_svg, render_latent, render_tokens
from .summaries import calibration_view, summary_rows, uninformative_scorers

__all__ = [
    "CSS",
    "INDEX_JS",
    "PAGE",
    "PLOTS_DIR",
    "build_site",
    "esc",
    "fmt",
    "histogram_svg",
    "latent_page_path",
    "page",
    "render_calibration",
    "render_index",
    "render_latent",
    "render_summary",
    "render_tokens",
]


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
        body.append(
            f"<tr{cls}{title}><td>{esc(r['hookpoint'])}</td><td>{esc(r['scorer'] + _mark(r['scorer'], flagged))}</td>"
            f'<td>{esc(r["metric"])}</td><td class="{"best" if r["best"] else ""}">{esc(r["explainer"] + star)}</td>'
            f'<td class="num">{esc(_ci(r["mean"], r["lo"], r["hi"]))}</td><td class="num">{esc(fmt(r["control"]))}</td>'
            f'<td class="num {"best" if r["best"] else ""}">{esc(_ci(r["delta"], r["delta_lo"], r["delta_hi"]))}</td>'
            f'<td class="num">{r["n"]}</td></tr>'
        )
    return (
        '<table id="summary"><thead><tr><th>hookpoint</th><th>scorer</th><th>metric</th><th>explainer</th>'
        "<th>real [95% CI]</th><th>shuffled control</th><th>real − control [95% CI]</th><th>latents</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        "<p>★ the explainer with the highest real − control for that hookpoint and scorer. "
        "⚠ a scorer the same run's calibration found not informative: its scores say little.</p>"
    )


def render_calibration(calibration: dict | None, cfg: ReportConfig) -> str:
    """The calibrate stage's verdicts, hit rates and the explanations of the known-answer latents."""
    view = calibration_view(calibration)
    v, hits, summary = view["verdicts"], view["hits"], view["summary"]
    if v is None:
        return (
            '<p class="note">No calibration: not available yet (run <code>kedro run --pipelines calibrate</code>, '
            "or it is off: <code>calibrate.enabled</code>).</p>"
        )
    parts = [
        "<p>Known-answer latents: exact detectors of single words at the embedding output, explained "
        "and scored like real latents. A scorer is <b>informative</b> when the true explanation "
        '(<code>the word "X"</code>) beats shuffled explanations by at least 0.2 AUROC with a 95% interval '
        "above 0.</p>"
    ]
    body = []
    for r in v.to_dict("records"):
        verdict = str(r.get("verdict"))
        cls = "verdict-informative" if verdict == "informative" else "verdict-not"
        body.append(
            f'<tr data-scorer="{esc(r["scorer"])}"><td>{esc(r["scorer"])}</td><td>{esc(r.get("metric"))}</td>'
            f'<td class="num">{esc(_ci(_f(r.get("true")), _f(r.get("true_lo")), _f(r.get("true_hi"))))}</td>'
            f'<td class="num">{esc(_ci(_f(r.get("shuffled")), _f(r.get("shuffled_lo")), _f(r.get("shuffled_hi"))))}</td>'
            f'<td class="num">{esc(_ci(_f(r.get("delta")), _f(r.get("delta_lo")), _f(r.get("delta_hi"))))}</td>'
            f'<td class="num">{esc(r.get("n_latents"))}</td><td class="{cls}">{esc(verdict)}</td></tr>'
        )
    words = view["words"]
    if words is not None and len(words) and "status" in words.columns:
        ok = words[words["status"] == "ok"]
        refused = words[words["status"] != "ok"]
        parts.append(
            '<p id="calibration-words">Known-answer words: '
            + esc(", ".join(map(str, ok["word"])))
            + (
                f"; refused: {esc(', '.join(f'{r.word} ({r.status})' for r in refused.itertuples()))}"
                if len(refused)
                else ""
            )
            + ".</p>"
        )
    parts.append(
        '<table id="verdicts"><thead><tr><th>scorer</th><th>metric</th><th>true [95% CI]</th>'
        "<th>shuffled [95% CI]</th><th>true − shuffled [95% CI]</th><th>latents</th><th>verdict</th></tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )
    if summary is not None and len(summary):
        own = summary[~summary["explanation"].isin(["true", "shuffled"])]
        if len(own):
            parts.append(
                "<p>With the explainers' own explanations: "
                + "; ".join(
                    f"{esc(r['scorer'])} {esc(r['explanation'])} {esc(_ci(_f(r['mean']), _f(r['lo']), _f(r['hi'])))}"
                    for r in own.to_dict("records")
                )
                + ".</p>"
            )
    if hits is not None and len(hits):
        rates = hits.assign(hit=hits["hit"].astype(str).str.lower().isin(["true", "1"])).groupby("explainer")["hit"]
        parts.append(
            '<p id="hit-rates">Explainer hit rate (explanations naming the word): '
            + ", ".join(f"{esc(e)} {int(g.sum())}/{len(g)}" for e, g in rates)
            + ".</p>"
        )
        rows = "".join(
            f"<tr><td>{esc(r['word'])}</td><td>{esc(r['explainer'])}</td>"
            f"<td>{esc(r['explanation'] if isinstance(r['explanation'], str) else 'failed: ' + str(r['failure']))}</td>"
            f"<td>{'yes' if str(r['hit']).lower() in ('true', '1') else 'no'}</td></tr>"
            for r in hits.to_dict("records")
        )
        parts.append(
            '<table id="calibration-explanations"><thead><tr><th>word</th><th>explainer</th><th>explanation</th>'
            f"<th>names the word</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def render_index(
    data: list[HookpointData],
    cfg: ReportConfig,
    plot_names: list[str],
    similarity_names: list[str] = (),
    calibration: dict | None = None,
) -> str:
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
            notes.append(
                f'<p class="note">No {esc(label)} for {esc(", ".join(missing))}: '
                f"not available yet, run <code>kedro run --pipelines {esc(stage)}</code>.</p>"
            )
    head = [
        '<th data-type="text">hookpoint</th>',
        '<th data-type="num">latent</th>',
        '<th data-type="num">frequency</th>',
    ]
    head += [f'<th data-type="text">explanation{esc(f" ({e})" if e else "")}</th>' for e in expl_cols]
    score_explainers = {e for _, _, e in score_cols} - {"none"}
    for s, m, e in score_cols:
        label = f"{s} {m}" + (f" [{e}]" if len(score_explainers) > 1 and e != "none" else "") + _mark(s, flagged)
        attr = f' class="uninformative" title="{esc(flagged[s])} (calibration)"' if s in flagged else ""
        head.append(f'<th data-type="num"{attr}>{esc(label)}</th>')
        tip = attr or ' title="real minus shuffled-explanation control"'
        head.append(
            f'<th data-type="num"{tip}>{esc(label.replace(" ⚠", ""))} − control{" ⚠" if s in flagged else ""}</th>'
        )
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
            cells.append(_td(delta, html=f"<span{cls}>{esc(fmt(delta))}</span>"))
        body.append(f"<tr>{''.join(cells)}</tr>")
    plots = "".join(f'<li><a href="../{PLOTS_DIR}/{esc(n)}">{esc(n)}</a></li>' for n in plot_names)
    sim = ""
    if "similarity" in cfg.stages:
        sim = (
            ("<p>Similarity heatmaps: " + ", ".join(esc(n) for n in similarity_names) + "</p>")
            if similarity_names
            else '<p class="note">No similarity results: not available yet (run <code>kedro run --pipelines similarity</code>).</p>'
        )
    calib = (
        f'<h2 id="calibration-section">Calibration</h2>{render_calibration(calibration, cfg)}'
        if "calibrate" in cfg.stages
        else ""
    )
    html = f"""<h1>{esc(cfg.title)}</h1>
<p>{len(rows)} latents over {len(data)} hookpoints ({esc(", ".join(d.hookpoint for d in data))}).
Click a column header to sort; type to filter. Scores use the shuffled-explanation control:
"− control" is the real score minus the score of an explanation of another latent.</p>
{"".join(notes)}
<h2>Summary</h2>
{render_summary(data, cfg, flagged)}
{calib}
<h2>Plots</h2>
<ul id="plots">{plots or '<li class="note">no plots</li>'}</ul>
{sim}
<h2>Latents</h2>
<input id="filter" type="search" placeholder="filter: hookpoint, latent, words of the explanation…">
<span><span id="shown">{len(rows)}</span> shown</span>
<table id="latents"><thead><tr>{"".join(head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>"""
    return page(cfg.title, html, INDEX_JS)


def build_site(
    data: list[HookpointData],
    cfg: ReportConfig,
    plot_names: list[str],
    similarity_names: list[str] = (),
    calibration: dict | None = None,
) -> dict[str, object]:
    """``{relative path: html}``; latent pages are produced lazily (callables) when saved."""
    site: dict[str, object] = {"index.html": render_index(data, cfg, plot_names, similarity_names, calibration)}
    rows = {(r["hookpoint"], r["latent"]): r for r in index_rows(data, cfg)}
    for d in data:
        groups = dict(tuple(d.examples.groupby("latent"))) if d.examples is not None and len(d.examples) else {}
        for lat in d.latent_ids():
            ex = groups.get(lat)
            if ex is None and d.examples is not None:
                ex = d.examples.iloc[0:0]
            site[latent_page_path(d.hookpoint, lat)] = lambda d=d, lat=lat, ex=ex: render_latent(
                d, lat, rows[(d.hookpoint, lat)], ex, cfg, plot_names
            )
    return site
