"""dvc.yaml's code dependencies cannot drift from the imports: every project module that a
stage's pipeline imports (transitively, lazy imports included) is covered by a dep of that stage,
so ``dvc repro`` reruns a stage whenever code it runs has changed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "autointerp"
# Modules every stage loads through Kedro, not through the stage's code: not stage deps.
FRAMEWORK = {"autointerp", "autointerp.settings", "autointerp.hooks", "autointerp.pipeline_registry",
             "autointerp.cli", "autointerp.__main__", "autointerp.pipelines"}


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (absolute and relative imports)."""
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n == PACKAGE or n.startswith(PACKAGE + "."):
                # the longest prefix that is a module of the project
                parts = n.split(".")
                while parts and module_file(".".join(parts)) is None:
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
    return found


def closure(start: list[Path]) -> set[Path]:
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for name in imports_of(p):
            # a package's __init__ runs on import of any of its modules
            parts = name.split(".")
            for i in range(2, len(parts) + 1):
                f = module_file(".".join(parts[:i]))
                if f is not None and ".".join(parts[:i]) not in FRAMEWORK:
                    todo.append(f)
    return seen


def stages() -> dict[str, list[str]]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    out = {}
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        out[name] = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
    return out


def pipeline_stages() -> list[str]:
    return sorted(p.name for p in (SRC / PACKAGE / "pipelines").iterdir()
                  if (p / "pipeline.py").exists() and p.name in stages())


@pytest.mark.parametrize("stage", pipeline_stages())
def test_stage_code_deps_cover_its_imports(stage):
    deps = [ROOT / d for d in stages()[stage] if d.startswith("src/")]
    folder = SRC / PACKAGE / "pipelines" / stage
    used = closure(sorted(folder.glob("*.py")))
    missing = sorted(str(p.relative_to(ROOT)) for p in used
                     if not any(p == d or d in p.parents for d in deps))
    assert not missing, f"dvc.yaml stage '{stage}' misses code deps it imports: {missing}"


def test_every_pipeline_with_outputs_has_a_dvc_stage():
    names = {p.name for p in (SRC / PACKAGE / "pipelines").iterdir() if (p / "pipeline.py").exists()}
    assert names - set(stages()) <= {"namespaces"}, sorted(names - set(stages()))
