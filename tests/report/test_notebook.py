"""notebooks/explore_latent.ipynb runs cleanly on a test run and shows the latent."""

from __future__ import annotations

import json

import pytest

from .conftest import EVIL_TOKEN, PROJECT


def test_notebook_executes_on_a_test_run(report_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("AUTOINTERP_ENV", "test")
    monkeypatch.setenv("AUTOINTERP_DATA_ROOT", str(report_run["root"]))
    monkeypatch.setenv("AUTOINTERP_HOOKPOINT", "layers.2")
    monkeypatch.setenv("AUTOINTERP_LATENT", "7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", report_run["tracking_uri"])
    nb = nbformat.read(PROJECT / "notebooks" / "explore_latent.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(PROJECT / "notebooks")}}
    ).execute()
    outputs = json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])])
    assert '"output_type": "error"' not in outputs
    assert "latent: 7" in outputs
    # the latent's highlighted examples, read back through the catalog, with corpus markup escaped
    assert "tok on" in outputs
    escaped = EVIL_TOKEN.replace("<", "&lt;").replace(">", "&gt;")
    assert json.dumps(escaped)[1:-1].split("window")[0] in outputs
    assert json.dumps(EVIL_TOKEN)[1:-1] not in outputs
