"""The shared job mechanics: one rule for a torn JSON-lines tail, atomic writes, meta.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autointerp import jobs


def test_torn_tail_is_not_data_and_repair_truncates(tmp_path):
    p = tmp_path / "rows.jsonl"
    jobs.append_jsonl(p, [{"latent": 0}, {"latent": 1}])
    with open(p, "ab") as f:
        f.write(b'{"latent": 2, "expl')  # a run killed mid-write
    assert [r["latent"] for r in jobs.read_jsonl(p)] == [0, 1]
    assert p.read_bytes().endswith(b"expl")  # reading alone changes nothing
    jobs.read_jsonl(p, repair=True)
    jobs.append_jsonl(p, [{"latent": 3}])
    assert [r["latent"] for r in jobs.read_jsonl(p)] == [0, 1, 3]


def test_a_complete_line_without_newline_counts_as_torn(tmp_path):
    # a valid JSON prefix (e.g. '{"a": 1}' of '{"a": 10}') must not be taken for a full row
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 1')
    assert jobs.read_jsonl(p) == [{"a": 1}]


def test_garbage_in_the_middle_stops_reading(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"a": 1}\nnot json\n{"a": 3}\n')
    assert jobs.read_jsonl(p, repair=True) == [{"a": 1}]
    assert p.read_bytes() == b'{"a": 1}\n'


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "out.json"
    jobs.atomic_write_json(p, {"v": 1})
    with pytest.raises(RuntimeError):
        with jobs.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(p.read_text()) == {"v": 1}
    assert not list(tmp_path.glob("*.tmp"))


def test_meta_and_completeness(tmp_path):
    assert jobs.read_meta(tmp_path) is None and not jobs.is_complete(tmp_path)
    jobs.write_meta(tmp_path, {"fingerprint": "abc", "complete": False})
    assert not jobs.is_complete(tmp_path)
    jobs.write_meta(tmp_path, {"fingerprint": "abc", "complete": True})
    assert jobs.is_complete(tmp_path) and jobs.is_complete(tmp_path, "abc")
    assert not jobs.is_complete(tmp_path, "other")
    (tmp_path / "meta.json").write_text("{torn")
    assert jobs.read_meta(tmp_path) is None


def test_digests_are_stable_and_sensitive(tmp_path):
    assert jobs.digest({"b": 1, "a": [1, 2]}) == jobs.digest({"a": [1, 2], "b": 1})
    assert jobs.digest({"a": 1}) != jobs.digest({"a": 2})
    a = np.arange(10, dtype=np.int32)
    assert jobs.array_digest(a) == jobs.array_digest(a.copy()) != jobs.array_digest(a[::-1].copy())
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 10)
    d1 = jobs.file_digest(f)
    f.write_bytes(b"x" * 5)  # truncated: the size changes
    assert jobs.file_digest(f) != d1
    assert jobs.file_digest(None) == ""
