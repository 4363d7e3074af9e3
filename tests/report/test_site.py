"""The latent browser opened in a real headless browser (Debian chromium + chromedriver)."""

from __future__ import annotations

import re
import shutil

import pytest

from autointerp.config import parse_config
from autointerp.errors import ConfigError
from autointerp.report import ReportConfig

from .conftest import EVIL_EXPLANATION, EVIL_TOKEN, HOOKPOINTS, LATENTS, stage_tables

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--allow-file-access-from-files",
    ):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def open_page(browser, path):
    browser.get(path.as_uri())
    return browser


def column(browser, index: int) -> list[str]:
    return browser.execute_script(
        "var i = arguments[0]; return Array.prototype.map.call(document.querySelectorAll('#latents tbody tr'),"
        " function(r){return r.cells[i].getAttribute('data-v');});",
        index,
    )


def header_index(browser, text: str) -> int:
    heads = browser.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#latents th'), function(h){return h.textContent;});"
    )
    return heads.index(text)


def test_index_lists_every_latent(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    rows = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#latents tbody tr'),"
        " function(r){return [r.cells[0].textContent, r.cells[1].textContent];});"
    )
    want = sorted((h, str(lat)) for h in HOOKPOINTS for lat in LATENTS[h])
    assert sorted(map(tuple, rows)) == want
    # every row links to a page that exists
    hrefs = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#latents tbody a'), function(a){return a.getAttribute('href');});"
    )
    assert len(hrefs) == len(want)
    assert all((report_run["site"] / h).exists() for h in hrefs)
    # scores and real-minus-control columns for each scorer
    heads = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#latents th'), function(h){return h.textContent;});"
    )
    # both explainers side by side; an old run's metrics (no explainer column) read as `default`
    assert "detection balanced_accuracy [default] ⚠" in heads and "fuzzing auroc [tokens] − control" in heads
    assert "explanation (default)" in heads and "explanation (tokens)" in heads


def test_clicking_a_header_sorts(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    col = header_index(b, "frequency")
    th = b.find_elements("css selector", "#latents th")[col]
    th.click()
    up = [float(v) for v in column(b, col)]
    assert up == sorted(up) and up != list(reversed(up))
    th.click()
    down = [float(v) for v in column(b, col)]
    assert down == sorted(up, reverse=True)
    # text columns sort too
    b.find_elements("css selector", "#latents th")[0].click()
    hps = column(b, 0)
    assert hps == sorted(hps)


def test_filter_box(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    box = b.find_element("id", "filter")
    box.send_keys("speech #2")
    visible = b.execute_script(
        "return Array.prototype.filter.call(document.querySelectorAll('#latents tbody tr'), function(r){return r.style.display !== 'none';}).map(function(r){return r.textContent;});"
    )
    assert visible and all("speech #2" in v for v in visible)
    assert len(visible) < sum(len(v) for v in LATENTS.values())
    assert b.find_element("id", "shown").text == str(len(visible))


def test_latent_page_highlights_tokens(report_run, browser, fixture_tables):
    b = open_page(browser, report_run["site"] / "latents" / "layers_2" / "11.html")
    spans = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('.examples.activating .tok.on'),"
        " function(s){return [parseFloat(s.getAttribute('title')), getComputedStyle(s).backgroundColor];});"
    )
    assert spans, "no highlighted tokens"

    def alpha(color):
        nums = [float(x) for x in re.findall(r"[\d.]+", color)]
        return nums[3] if len(nums) == 4 else 1.0

    # every highlighted token carries its activation; a stronger activation is never paler
    ex = fixture_tables["layers.2"]["examples"]
    acts = {round(a, 3) for lst in ex[ex["latent"] == 11]["activations"] for a in lst if a > 0}
    assert all(round(v, 3) in acts for v, _ in spans)
    ordered = sorted(spans, key=lambda s: s[0])
    alphas = [alpha(c) for _, c in ordered]
    assert alphas == sorted(alphas) and alphas[-1] > alphas[0] > 0
    # non-activating examples, histogram, scores vs control and recall by quantile are there
    assert b.find_elements("css selector", ".examples.random .ex")
    assert b.find_elements("css selector", "svg.histogram rect")
    text = b.find_element("tag name", "body").text
    assert "real − control" in text and "q3" in text
    assert "the word is in royal speech #11" in text


def test_markup_in_corpus_and_explanations_is_shown_not_run(report_run, browser):
    b = open_page(browser, report_run["site"] / "latents" / "layers_2" / "7.html")
    body = b.find_element("tag name", "body").text
    assert EVIL_TOKEN in body and "<b>not bold</b>" in body
    assert EVIL_EXPLANATION in body
    assert b.execute_script("return window.__pwned === undefined")
    assert b.title == "layers.2 latent 7"
    assert not b.find_elements("css selector", ".examples b, .explanation img, .examples script")
    b = open_page(browser, report_run["site"] / "index.html")
    assert EVIL_EXPLANATION in b.find_element("id", "latents").text
    assert b.execute_script("return window.__pwned === undefined")


def test_missing_stage_is_noted_and_the_rest_renders(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    assert "No explanations for layers.2.mlp" in b.find_element("tag name", "body").text
    b = open_page(browser, report_run["site"] / "latents" / "layers_2_mlp" / "5.html")
    text = b.find_element("tag name", "body").text
    assert "not available yet: run `kedro run --pipelines explain`" in text
    assert b.find_elements("css selector", ".examples.activating .tok.on")  # examples still render


def test_plots_are_written_linked_and_logged(report_run, browser):
    import mlflow

    plots = sorted(p.name for p in report_run["plots"].glob("*.png"))
    for name in (
        "firing_frequency.png",
        "real_vs_control.png",
        "scorer_correlation.png",
        "score_distributions_balanced_accuracy.png",
    ):
        assert name in plots
    assert any(p.startswith("similarity_") for p in plots)
    b = open_page(browser, report_run["site"] / "index.html")
    links = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#plots a'), function(a){return a.href;});"
    )
    assert sorted(link.rsplit("/", 1)[1] for link in links) == plots
    b.get(links[0])  # the link resolves to a real image
    assert b.execute_script("return document.images.length && document.images[0].naturalWidth") > 0
    client = mlflow.MlflowClient(tracking_uri=report_run["tracking_uri"])
    logged = {f.path for f in client.list_artifacts(report_run["run_id"], "report")}
    assert {"report/site", "report/plots"} <= logged


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown key 'metric'. Did you mean 'metrics'"):
        parse_config(ReportConfig, {"metric": ["auroc"]}, "parameters_report.yml: report")
    with pytest.raises(ConfigError, match="unknown metric 'aurok'"):
        parse_config(ReportConfig, {"metrics": ["aurok"]}, "parameters_report.yml: report")


def test_report_without_any_stage_output_still_renders():
    from autointerp.report import build_report, hookpoint_data

    cfg = ReportConfig()
    data = [hookpoint_data("layers.2", {}, cfg)]
    figures, site = build_report(data, cfg)
    assert list(figures) == ["no_data.png"]
    assert "No latent statistics for layers.2" in site["index.html"]
    # a lone examples table is enough for latent pages
    data = [hookpoint_data("layers.2", {"examples": stage_tables("layers.2")["examples"]}, cfg)]
    _, site = build_report(data, cfg)
    page = site["latents/layers_2/3.html"]()
    assert "tok on" in page and "not available yet: run `kedro run --pipelines explain`" in page


def test_calibration_verdicts_mark_uninformative_scorers(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    verdicts = {r.get_attribute("data-scorer"): r.text for r in b.find_elements("css selector", "#verdicts tbody tr")}
    assert "not informative with this model" in verdicts["detection"] and verdicts["fuzzing"].endswith("informative")
    assert "0.380 [0.300, 0.450]" in verdicts["fuzzing"]
    assert "default 1/2, tokens 2/2" in b.find_element("id", "hit-rates").text
    assert (
        b.find_element("id", "calibration-words").text
        == "Known-answer words: crown, sword; refused: thane (not_separable)."
    )
    assert "verbs ending in -ing" in b.find_element("id", "calibration-explanations").text
    # the index and the summary mark the scorer that the same run's calibration found not informative
    marked = b.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll('#latents th.uninformative'),"
        " function(h){return h.textContent;});"
    )
    assert marked and all(h.startswith("detection") and "⚠" in h for h in marked)
    rows = b.find_elements("css selector", "#summary tbody tr")
    det = [r for r in rows if "detection" in r.text]
    assert det and all("uninformative" in r.get_attribute("class") for r in det)
    assert not any("uninformative" in (r.get_attribute("class") or "") for r in rows if "fuzzing" in r.text)


def test_explainers_side_by_side_with_the_better_one_starred(report_run, browser):
    b = open_page(browser, report_run["site"] / "index.html")
    rows = [r.find_elements("tag name", "td") for r in b.find_elements("css selector", "#summary tbody tr")]
    table = {(c[0].text, c[1].text.replace(" ⚠", ""), c[2].text, c[3].text.replace(" ★", "")): c for c in rows}
    for metric in ("balanced_accuracy", "auroc"):
        # the statistical baseline beats the LLM on fuzzing, loses on detection (the fixture's numbers)
        assert "★" in table[("layers.2", "fuzzing", metric, "tokens")][3].text
        assert "★" in table[("layers.2", "detection", metric, "default")][3].text
        assert "★" not in table[("layers.2", "fuzzing", metric, "default")][3].text
        assert re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]", table[("layers.2", "fuzzing", metric, "tokens")][4].text)
    # the interval of the score stage's summary where it has one (the other rows are computed alike)
    assert table[("layers.2", "fuzzing", "auroc", "tokens")][4].text == "0.876 [0.801, 0.951]"
    # an old run's table (no explainer column) is read as `default`, with no star (nothing to compare)
    assert ("layers.2.mlp", "fuzzing", "auroc", "default") in table
    assert "★" not in table[("layers.2.mlp", "fuzzing", "auroc", "default")][3].text
    assert "explainers.png" in {p.name for p in report_run["plots"].glob("*.png")}
    b = open_page(browser, report_run["site"] / "latents" / "layers_2" / "11.html")
    shown = {p.get_attribute("data-explainer"): p.text for p in b.find_elements("css selector", "p.explanation")}
    assert set(shown) == {"default", "tokens"} and "royal speech #11" in shown["default"]
    scores = b.find_element("css selector", "table.scores").text
    assert "fuzzing tokens real" in scores and "fuzzing default real" in scores
