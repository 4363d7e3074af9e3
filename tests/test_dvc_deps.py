"""dvc.yaml's code dependencies cannot drift from the imports: every project module that a
stage's pipeline imports (transitively, lazy imports included) is covered by a dep of that stage,
so ``dvc repro`` reruns a stage whenever code it runs has changed (``scripts/dvc_deps.py --write``
regenerates them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "dvc_deps", Path(__file__).resolve().parents[1] / "scripts" / "dvc_deps.py"
)
dvc_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dvc_deps)


@pytest.mark.parametrize("stage", dvc_deps.pipeline_stages())
def test_stage_code_deps_cover_its_imports(stage):
    assert stage in dvc_deps.dvc_stages(), f"dvc.yaml has no stage '{stage}'"
    missing = dvc_deps.missing(stage)
    assert not missing, (
        f"dvc.yaml stage '{stage}' misses code deps it imports: {missing} (python scripts/dvc_deps.py --write)"
    )


def test_the_check_finds_a_missing_module():
    # the check itself can fail: the sample stage without jobs.py in its deps
    text = (dvc_deps.ROOT / "dvc.yaml").read_text().replace("        - src/autointerp/jobs.py\n", "")
    assert "src/autointerp/jobs.py" in dvc_deps.missing("sample", dvc_deps.dvc_stages(text))
