"""dvc.yaml's code dependencies, computed from the imports.

Every project module that a stage's pipeline folder imports (transitively, lazy imports
included) must be a dep of that stage, so ``dvc repro`` reruns a stage whenever code it runs
changed. ``python scripts/dvc_deps.py`` prints what is missing or extra per stage;
``--write`` rewrites the ``src/`` lines of each stage's deps in dvc.yaml (other lines and
comments stay). A package whose every module is used is listed as its folder.
tests/test_dvc_deps.py fails when dvc.yaml drifts.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "autointerp"
# Loaded by Kedro for every stage, not by the stage's code: not stage deps.
FRAMEWORK = {
    "autointerp",
    "autointerp.settings",
    "autointerp.hooks",
    "autointerp.pipeline_registry",
    "autointerp.cli",
    "autointerp.__main__",
    "autointerp.pipelines",
}


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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
                parts = n.split(".")
                while parts and module_file(".".join(parts)) is None:
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
    return found


def closure(start: list[Path]) -> set[Path]:
    """Every project file that importing ``start`` runs (package ``__init__``s included)."""
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for name in imports_of(p):
            parts = name.split(".")
            for i in range(2, len(parts) + 1):
                sub = ".".join(parts[:i])
                f = module_file(sub)
                if f is not None and sub not in FRAMEWORK:
                    todo.append(f)
    return seen


def stage_files(stage: str) -> set[Path]:
    return closure(sorted((SRC / PACKAGE / "pipelines" / stage).glob("*.py")))


def collapse(files: set[Path]) -> list[str]:
    """Repo-relative deps: a folder when every .py file under it is used, else the files."""
    out: set[Path] = set(files)
    changed = True
    while changed:
        changed = False
        folders = {f.parent for f in out if f.is_file()}
        for d in sorted(folders, key=lambda p: -len(p.parts)):
            if d == SRC / PACKAGE or d == SRC / PACKAGE / "pipelines":
                continue
            members = set(d.rglob("*.py"))
            inside = {f for f in out if d in f.parents}
            covered = {f for f in members if f in out or any(g.is_dir() and (g == f or g in f.parents) for g in inside)}
            if members and covered == members:
                out = (out - inside) | {d}
                changed = True
    return sorted(str(p.relative_to(ROOT)) for p in out)


def dvc_stages(text: str | None = None) -> dict[str, list[str]]:
    """Each stage's deps as written in dvc.yaml (or in ``text``)."""
    spec = yaml.safe_load(text if text is not None else (ROOT / "dvc.yaml").read_text())
    out = {}
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        out[name] = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
    return out


def pipeline_stages() -> list[str]:
    return sorted(p.name for p in (SRC / PACKAGE / "pipelines").iterdir() if (p / "pipeline.py").exists())


def missing(stage: str, stages: dict[str, list[str]] | None = None) -> list[str]:
    """Files the stage's code runs that none of its deps covers."""
    deps = [ROOT / d for d in (stages or dvc_stages()).get(stage, []) if d.startswith("src/")]
    return sorted(
        str(p.relative_to(ROOT)) for p in stage_files(stage) if not any(p == d or d in p.parents for d in deps)
    )


def write() -> None:
    text = (ROOT / "dvc.yaml").read_text().splitlines(keepends=True)
    out, stage, in_deps = [], None, False
    for line in text:
        m = re.match(r"^  (\w+):\s*$", line)
        if m:
            stage = m.group(1)
        if re.match(r"^\s+deps:\s*$", line):
            in_deps = True
            indent = re.match(r"^(\s*)", line).group(1) + "  "
            out.append(line)
            if stage in pipeline_stages():
                out.extend(f"{indent}- {d}\n" for d in collapse(stage_files(stage)))
            continue
        if in_deps and re.match(r"^\s+- src/", line) and stage in pipeline_stages():
            continue  # replaced above
        if in_deps and not re.match(r"^\s+- ", line):
            in_deps = False
        out.append(line)
    (ROOT / "dvc.yaml").write_text("".join(out))


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    bad = {s: missing(s) for s in pipeline_stages() if s in dvc_stages()}
    for s, m in bad.items():
        print(f"{s}: {'ok' if not m else 'missing ' + ', '.join(m)}")
    sys.exit(1 if any(bad.values()) else 0)
