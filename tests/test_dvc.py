"""The whole chain under real `dvc repro` on the test configuration, and a local DVC remote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(*args, cwd, check=True, timeout=1500):
    env = dict(
        os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", KEDRO_DISABLE_TELEMETRY="true", HF_HUB_OFFLINE="1"
    )
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh git + DVC checkout of the project (code, conf, dvc.yaml), outputs empty."""
    dst = tmp_path_factory.mktemp("dvc") / "project"
    dst.mkdir()
    for name in ("pyproject.toml", "dvc.yaml", ".dvcignore", ".gitignore", ".telemetry", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "conf", dst / "conf", ignore=shutil.ignore_patterns("local"))
    (dst / "conf" / "local").mkdir()
    (dst / "conf" / "local" / ".gitkeep").touch()
    (dst / "data").mkdir()
    sh("git", "init", "-q", cwd=dst)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A", cwd=dst)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init", cwd=dst)
    sh("dvc", "init", "-q", cwd=dst)
    return dst


def test_dvc_repro_runs_the_chain_then_nothing(project):
    first = sh("dvc", "repro", "report@test", cwd=project)
    for stage in (
        "corpus@test",
        "train_sae@test",
        "cache@test",
        "sample@test",
        "explain@test",
        "score@test",
        "similarity@test",
        "report@test",
    ):
        assert f"Running stage '{stage}'" in first.stdout, first.stdout[-2000:]
    root = project / "data" / "test"
    assert (root / "06_models" / "saes" / "layers.2" / "sae.safetensors").exists()
    assert (root / "03_primary" / "latents" / "layers_2" / "meta.json").exists()
    assert (root / "08_reporting" / "site" / "index.html").exists()
    assert (project / "dvc.lock").exists()
    second = sh("dvc", "repro", "report@test", cwd=project)
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout.lower()
    status = sh("dvc", "status", "report@test", cwd=project)
    assert "changed" not in status.stdout


def test_local_remote_round_trip(project, tmp_path):
    remote = tmp_path / "remote"
    sh("dvc", "remote", "add", "-d", "local", str(remote), cwd=project)
    sh("dvc", "push", "cache@test", cwd=project)
    latents = project / "data" / "test" / "03_primary" / "latents"
    before = sorted(p.relative_to(latents) for p in latents.rglob("*") if p.is_file())
    shutil.rmtree(latents)
    shutil.rmtree(project / ".dvc" / "cache")
    sh("dvc", "pull", "cache@test", cwd=project)
    after = sorted(p.relative_to(latents) for p in latents.rglob("*") if p.is_file())
    assert before == after and len(after) > 4
