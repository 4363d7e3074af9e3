"""The mechanics every resumable stage shares, written once.

- ``digest(obj)``: the fingerprint of a JSON-able configuration (sha1 of its canonical JSON,
  16 hex digits); ``file_digest(path)`` and ``array_digest(a)`` for files and arrays.
- ``atomic_write_text`` / ``atomic_write_json`` / ``atomic_write_bytes``: write to a temporary
  sibling, then rename, so a reader never sees half a file.
- ``atomic_path(path)``: a context manager yielding the temporary sibling to write (for
  writers that want a path, such as parquet or safetensors); renamed on success, removed on error.
- ``read_meta(root)`` / ``write_meta(root, meta)`` / ``is_complete(root)``: the ``meta.json`` of a
  job folder, whose ``complete: true`` flag is set only once everything is written.
- ``read_jsonl(path, repair=False)`` / ``append_jsonl(path, rows)``: JSON-lines files grown
  row by row. One rule for a torn file (a run killed mid-write): reading stops at the first
  line that does not parse as JSON (the torn tail and anything after it is not data);
  ``repair=True`` truncates the file there so the next append starts on a clean line.
- ``llm_order(latents, first)``: the order in which a capped job (``explain.max_latents``,
  ``score.max_llm_latents``) takes latents: those of ``first`` (the matched latents) ahead.

This module imports nothing from Kedro or torch: it serves the domain modules and the catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

META = "meta.json"


# ---------------------------------------------------------------- fingerprints


def digest(obj: Any) -> str:
    """16 hex digits of sha1 over ``obj`` as canonical JSON (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def array_digest(a: np.ndarray) -> str:
    """16 hex digits of sha1 over an array's bytes (C order)."""
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def file_digest(path: str | Path | None) -> str:
    """A cheap identity of a file or of every file under a folder: names, sizes and
    modification times (contents are not read: dictionaries can be gigabytes);
    ``""`` for ``None``."""
    if not path:
        return ""
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    h = hashlib.sha1()
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- atomic writes


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield ``<path>.tmp`` to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str))


# ---------------------------------------------------------------- meta.json


def read_meta(root: str | Path) -> dict | None:
    """The folder's ``meta.json``, or ``None`` when there is none (or it is unreadable)."""
    p = Path(root) / META
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def write_meta(root: str | Path, meta: dict) -> None:
    atomic_write_json(Path(root) / META, meta)


def is_complete(root: str | Path, fingerprint: str | None = None) -> bool:
    """True when ``meta.json`` says ``complete`` (and, if given, carries ``fingerprint``)."""
    meta = read_meta(root)
    if not meta or not meta.get("complete"):
        return False
    return fingerprint is None or meta.get("fingerprint") == fingerprint


# ---------------------------------------------------------------- JSON lines


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict]:
    """Rows of a JSON-lines file up to its first line that does not parse (a torn tail);
    with ``repair`` the file is truncated there. A missing file has no rows."""
    path = Path(path)
    rows: list[dict] = []
    if not path.exists():
        return rows
    good = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a last line without its newline was cut mid-write
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good += len(line)
    if repair and good < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good)
    return rows


def append_jsonl(path: str | Path, rows: Iterable[dict], fsync: bool = False) -> None:
    """Append rows, one JSON object per line, flushed before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Replace a JSON-lines file atomically (compaction)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")


# ---------------------------------------------------------------- capped jobs


def llm_order(latents: list[int], first: list[int] | None) -> list[int]:
    """``latents`` with those of ``first`` (in its order) ahead of the rest (by id)."""
    present = set(latents)
    head = [lat for lat in dict.fromkeys(int(x) for x in first or []) if lat in present]
    taken = set(head)
    return head + [lat for lat in latents if lat not in taken]
