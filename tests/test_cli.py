"""User mistakes on the command line end in one ``Error:`` line and exit status 2 (no traceback)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_misspelt_pipeline_name_is_one_line_with_the_valid_names(kedro):
    r = kedro("--env", "test", "--pipelines", "sampel")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("Error: no pipeline named 'sampel'") and "Did you mean 'sample'?" in r.stderr
    names = r.stderr.split("Valid names: ")[1].strip().rstrip(".").split(", ")
    assert {"__default__", "train_sae", "cache", "sample", "explain", "score", "report"} <= set(names)
    assert names == sorted(names) and "Traceback" not in r.stdout + r.stderr


def test_misspelt_section_is_one_line_with_the_valid_keys(kedro):
    r = kedro("--env", "test", "--pipelines", "sample", "--params", "smaple.n_train=5")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    keys = r.stderr.split("Valid keys: ")[1].strip().rstrip(".").split(", ")
    assert "unknown top-level key 'smaple'" in r.stderr and {"sample", "data_root", "hookpoints"} <= set(keys)


NOISE = (
    "Replacing dataset",
    "No typed parameter requirements found",
    "contain '.' characters",
    "Add type hints",
    "Loading data from",
    "Saving data to",
    "Running node:",
    "MLflow database tables",
    "Kedro project autointerp",
)


def test_console_shows_nodes_and_the_log_file_the_chatter(kedro, tmp_path):
    log_file = tmp_path / "autointerp.log"
    config = (
        (ROOT / "conf" / "logging.yml").read_text().replace("filename: data/autointerp.log", f"filename: {log_file}")
    )
    assert str(log_file) in config
    (tmp_path / "logging.yml").write_text(config)
    r = kedro(
        "--env",
        "test",
        "--pipelines",
        "report",
        "--params",
        f"data_root={tmp_path / 'data'}",
        env={"KEDRO_LOGGING_CONFIG": str(tmp_path / "logging.yml")},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    console = " ".join((r.stdout + r.stderr).split())  # rich wraps long lines
    assert "[1/1] make_report -> report_plots, report_site" in console and "Done: 1 node" in console
    assert re.search(r"Time per stage: report \d+ s", console), console[-2000:]  # where the time went
    assert [n for n in NOISE if n in console] == []
    log = log_file.read_text()
    assert "Loading data from" in log and "Saving data to report_site" in log and "Running node: make_report" in log
    assert "Replacing dataset" in log and "Add type hints" in log  # library warnings are kept, in the file
    assert "contain '.' characters" not in log  # Kedro's note on the namespaced names the project uses


def test_the_gguf_dtype_notice_of_the_projects_default_is_dropped(caplog):
    import logging

    import autointerp.settings  # noqa: F401  (installs the filter)

    logger = logging.getLogger("transformers.quantizers.quantizer_gguf")
    with caplog.at_level(logging.WARNING):
        for dtype in ("torch.bfloat16", "torch.float16"):
            logger.warning(
                f"Loading a GGUF checkpoint with its weights packed is fastest in float32, and this one was "
                f"asked for in {dtype}. The kernels compute in float32."
            )
    assert [r.getMessage().split("asked for in ")[1][:13] for r in caplog.records] == ["torch.float16"]
