"""On-disk response cache: a re-run or a resumed run makes no request it has made before.

One SQLite file (``responses.sqlite`` in the configured folder, WAL journal), safe across
threads and processes. Keys are SHA-256 digests of the canonical JSON of everything that
determines an answer (backend, model, server, method, messages or texts, sampling parameters);
values are JSON. Only successful results are stored, so failures are retried by the next run.

Writes are grouped: :class:`CacheWriter` collects answers as requests finish and commits them
in one transaction every ``flush_every`` answers or ``flush_seconds`` (one commit per answer
costs a disk sync each). A run killed in the middle loses at most the answers of the last
unflushed group; every committed entry is whole (SQLite transactions are atomic).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


def cache_key(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: dict):
        return self.get_many([key])[0]

    def get_many(self, keys: list[dict]) -> list:
        """The stored values of ``keys`` (None where absent), in one query per 500 keys."""
        digests = [cache_key(k) for k in keys]
        found: dict[str, str] = {}
        with self._lock:
            for b in range(0, len(digests), 500):
                part = digests[b : b + 500]
                q = f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})"
                found.update(self._db.execute(q, part).fetchall())
        return [json.loads(found[d]) if d in found else None for d in digests]

    def put(self, key: dict, value) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: list[tuple[dict, object]]) -> None:
        """Store ``(key, value)`` pairs in one transaction."""
        if not items:
            return
        rows = [(cache_key(k), json.dumps(v)) for k, v in items]
        with self._lock:
            with self._db:  # one transaction, committed (or rolled back) as a whole
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)", rows)

    def writer(self, flush_every: int = 64, flush_seconds: float = 0.25) -> CacheWriter:
        return CacheWriter(self, flush_every, flush_seconds)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CacheWriter:
    """Buffers ``add``-ed answers and commits them in groups; ``flush`` (or leaving a ``with``
    block) commits the rest. Thread-safe."""

    def __init__(self, cache: ResponseCache, flush_every: int, flush_seconds: float):
        self.cache, self.flush_every, self.flush_seconds = cache, flush_every, flush_seconds
        self._buf: list[tuple[dict, object]] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def add(self, key: dict, value) -> None:
        with self._lock:
            self._buf.append((key, value))
            due = len(self._buf) >= self.flush_every or time.monotonic() - self._last >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._buf = self._buf, []
            self._last = time.monotonic()
        self.cache.put_many(items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.flush()
