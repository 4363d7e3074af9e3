"""Several hookpoints cached from one forward pass: same caches as alone, per-chunk resume per
hookpoint, and every dictionary checked before the first forward."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from autointerp.caching import CacheConfig, CacheJob, HookpointCaches
from autointerp.dictionaries import DictionaryConfig, random_topk_coder, save_sparsify, topk_blocks
from autointerp.errors import ConfigError
from autointerp.latent_cache import LatentCache, LatentCacheWriter
from autointerp.models import ModelConfig

HOOKPOINTS = ("layers.0", "layers.1", "layers.1.mlp")


@pytest.fixture(scope="module")
def tokens(model_and_tokenizer):
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus

    _, tok = model_and_tokenizer
    return tokenize_corpus(
        CorpusConfig(sources=[CorpusSource("python_docs", max_documents=200)], ctx_len=32, n_tokens=24 * 32), tok
    )


@pytest.fixture(scope="module")
def saes(tmp_path_factory):
    root = tmp_path_factory.mktemp("saes")
    for i, h in enumerate(HOOKPOINTS):
        save_sparsify(random_topk_coder(576, 128 + 64 * i, 8, seed=i), root / h)
    return root


def jobs(tokens, saes, hookpoints=HOOKPOINTS, **dicts):
    return {
        h.replace(".", "_"): CacheJob(
            h,
            tokens,
            ModelConfig(batch_size=4),
            dicts.get(h.replace(".", "_"), DictionaryConfig("sparsify", str(saes))),
            CacheConfig(chunk_contexts=8, shard_size=100),
            progress=False,
        )
        for h in hookpoints
    }


class Forwards:
    """Counts the model's forward passes (a real hook on the real model)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_pre_hook(self._count)

    def _count(self, *_):
        self.n += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def assert_same_cache(a: LatentCache, b: LatentCache):
    assert a.meta["fingerprint"] == b.meta["fingerprint"]
    for sa, sb in zip(a.iter_shards(), b.iter_shards(), strict=True):
        np.testing.assert_array_equal(sa.tokens, sb.tokens)
        np.testing.assert_array_equal(sa.latents, sb.latents)
        np.testing.assert_array_equal(sa.values, sb.values)


def test_one_forward_per_batch_gives_the_caches_of_separate_runs(tmp_path, tokens, saes, model_and_tokenizer):
    model, _ = model_and_tokenizer
    together = jobs(tokens, saes)
    with Forwards(model) as fw:
        HookpointCaches(together).run(tmp_path / "together")
    batches = 3 * (8 // 4)  # 3 chunks of 8 contexts, batches of 4
    assert fw.n == batches
    with Forwards(model) as fw:
        for name, job in together.items():
            job.run(tmp_path / "alone" / name)
    assert fw.n == len(HOOKPOINTS) * batches
    for name in together:
        assert_same_cache(LatentCache(tmp_path / "together" / name), LatentCache(tmp_path / "alone" / name))
    # a re-run is a no-op: nothing is loaded or computed
    with Forwards(model) as fw:
        HookpointCaches(together).run(tmp_path / "together")
    assert fw.n == 0


def test_interrupted_run_resumes_at_first_unfinished_chunk_of_any_hookpoint(
    tmp_path, tokens, saes, model_and_tokenizer, monkeypatch
):
    model, _ = model_and_tokenizer
    todo = jobs(tokens, saes)
    # layers_0 is complete from an earlier run; the run of all three is stopped while writing
    # chunk 1 of layers_1_mlp (layers_1 has written chunk 1 already)
    todo["layers_0"].run(tmp_path / "layers_0")
    done_0 = {p: p.stat().st_mtime_ns for p in (tmp_path / "layers_0").rglob("*")}
    orig = LatentCacheWriter.write_chunk

    def stop(self, i, values, indices):
        if i == 1 and self.root.name == "layers_1_mlp":
            raise KeyboardInterrupt
        return orig(self, i, values, indices)

    monkeypatch.setattr(LatentCacheWriter, "write_chunk", stop)
    with pytest.raises(KeyboardInterrupt):
        HookpointCaches(todo).run(tmp_path)
    monkeypatch.setattr(LatentCacheWriter, "write_chunk", orig)
    assert sorted(p.name for p in (tmp_path / "layers_1" / "chunks").iterdir()) == ["c00000", "c00001"]
    assert sorted(p.name for p in (tmp_path / "layers_1_mlp" / "chunks").iterdir()) == ["c00000"]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("c0000[01]/*")}
    with Forwards(model) as fw:
        HookpointCaches(todo).run(tmp_path)
    assert fw.n == 2 * 2  # chunks 1 and 2 (chunk 0 was done for every hookpoint)
    assert before == {p: p.stat().st_mtime_ns for p in before}  # finished chunks kept
    assert done_0 == {p: p.stat().st_mtime_ns for p in (tmp_path / "layers_0").rglob("*")}
    for name, job in todo.items():
        job.run(tmp_path / "ref" / name)
        assert_same_cache(LatentCache(tmp_path / name), LatentCache(tmp_path / "ref" / name))


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        ({"format": "sparsify", "width": 512}, ["hookpoints.layers.1.mlp", "width 512", "width 576", "Fix or remove"]),
        ({"format": "sparsify", "path": "missing"}, ["hookpoints.layers.1.mlp", "does not exist"]),
        ({"format": "neurons", "hookpoint": "layers.77"}, ["hookpoints.layers.1.mlp", "unknown hookpoint 'layers.77'"]),
        ({"format": "sparsify", "truncated": True}, ["hookpoints.layers.1.mlp", "truncated", "sae.safetensors"]),
    ],
)
def test_a_wrong_dictionary_fails_before_the_first_forward(tmp_path, tokens, saes, model_and_tokenizer, bad, fragments):
    model, _ = model_and_tokenizer
    path = tmp_path / "bad"
    if bad.get("width"):
        save_sparsify(random_topk_coder(bad["width"], 64, 8), path / "layers.1.mlp")
    if bad.get("truncated"):
        save_sparsify(random_topk_coder(576, 64, 8), path / "layers.1.mlp")
        f = path / "layers.1.mlp" / "sae.safetensors"
        f.write_bytes(f.read_bytes()[:1000])
    cfg = DictionaryConfig(
        bad["format"],
        None if bad["format"] == "neurons" else str(bad.get("path") and tmp_path / bad["path"] or path),
        hookpoint=bad.get("hookpoint"),
    )
    todo = jobs(tokens, saes, layers_1_mlp=cfg)  # the last of three hookpoints is wrong
    with Forwards(model) as fw, pytest.raises(ConfigError) as e:
        HookpointCaches(todo).run(tmp_path / "caches")
    assert fw.n == 0
    for f in fragments:
        assert f in str(e.value), str(e.value)
    assert not (tmp_path / "caches").exists() or not any((tmp_path / "caches").rglob("c0*"))


def test_topk_blocks_is_exact():
    g = torch.Generator().manual_seed(0)
    for n, k, dtype in ((4608, 32, torch.bfloat16), (1000, 7, torch.float32), (64, 16, torch.float32)):
        x = torch.randn(50, n, generator=g).to(dtype)
        v, i = topk_blocks(x, k)
        rv, ri = x.topk(k, dim=-1)
        torch.testing.assert_close(v.sort(-1).values, rv.sort(-1).values, rtol=0, atol=0)
        torch.testing.assert_close(torch.gather(x, 1, i), v, rtol=0, atol=0)
        if dtype == torch.float32:  # no ties: the same latents (bfloat16 ties may pick others)
            assert torch.equal(i.sort(-1).values, ri.sort(-1).values)


def test_changed_fingerprint_is_rebuilt_in_a_shared_run(tmp_path, tokens, saes):
    todo = jobs(tokens, saes, hookpoints=HOOKPOINTS[:2])
    HookpointCaches(todo).run(tmp_path)
    changed = dict(
        todo, layers_1=dataclasses.replace(todo["layers_1"], cache=CacheConfig(chunk_contexts=8, shard_size=50))
    )
    HookpointCaches(changed).run(tmp_path)
    assert json.loads((tmp_path / "layers_1" / "meta.json").read_text())["shard_size"] == 50
    assert LatentCache(tmp_path / "layers_1").meta["fingerprint"] == changed["layers_1"].fingerprint()
