"""On-disk response cache: a re-run or a resumed run makes no request it has made before.

One SQLite file (``responses.sqlite`` in the configured folder), safe across threads and
processes. Keys are SHA-256 digests of the canonical JSON of everything that determines an
answer (backend, model, server, method, messages or texts, sampling parameters); values are
JSON. Only successful results are stored, so failures are retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
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
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: dict):
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (cache_key(key),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: dict, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (cache_key(key), json.dumps(value)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
