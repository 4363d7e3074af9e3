"""HTML pieces every page of the latent browser shares: escaping, number formatting, the page
template with its CSS and the index's JavaScript, and where a latent's page lives."""

from __future__ import annotations

import math
import re
from html import escape
from string import Template

import numpy as np

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
