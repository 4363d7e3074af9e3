"""User mistakes on the command line end in one ``Error:`` line and exit status 2 (no traceback)."""

from __future__ import annotations

def test_misspelt_pipeline_name_is_one_line_with_the_valid_names(kedro):
    r = kedro("--env", "test", "--pipelines", "sampel")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("Error: no pipeline named 'sampel'") and "Did you mean 'sample'?" in r.stderr
    assert "Valid names: __default__, cache, explain" in r.stderr and "Traceback" not in r.stdout + r.stderr


def test_misspelt_section_is_one_line_with_the_valid_keys(kedro):
    r = kedro("--env", "test", "--pipelines", "sample", "--params", "smaple.n_train=5")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "unknown top-level key 'smaple'" in r.stderr and "Valid keys: cache, corpus, data_root" in r.stderr
