"""The latent cache: sparse shards equal a dense recomputation; a killed run resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from autointerp.caching import CacheConfig, CacheJob
from autointerp.dictionaries import DictionaryConfig, load_dictionary, random_topk_coder, save_sparsify
from autointerp.errors import AutointerpError
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig, run_to_capture


def random_sae(folder, d=576, n=512, k=16, seed=0):
    return save_sparsify(random_topk_coder(d, n, k, seed), folder)


@pytest.fixture(scope="module")
def tokens(model_and_tokenizer):
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus

    _, tok = model_and_tokenizer
    return tokenize_corpus(
        CorpusConfig(sources=[CorpusSource("python_docs", max_documents=300)], ctx_len=32, n_tokens=48 * 32), tok
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, tokens):
    root = tmp_path_factory.mktemp("cache")
    random_sae(root / "saes" / "layers.1")
    job = CacheJob(
        "layers.1",
        tokens,
        ModelConfig(batch_size=8),
        DictionaryConfig("sparsify", str(root / "saes")),
        CacheConfig(chunk_contexts=16, shard_size=100),
        progress=False,
    )
    job.run(root / "cache")
    return job, LatentCache(root / "cache")


def test_sparse_shards_equal_dense_recomputation(built, model_and_tokenizer):
    job, cache = built
    model, tok = model_and_tokenizer
    assert cache.n_contexts == 48 and cache.num_latents == 512 and len(cache.shard_ranges) == 6
    rng = np.random.default_rng(0)
    contexts = rng.choice(cache.n_contexts, 4, replace=False)
    sae = load_dictionary(job.dictionary, "layers.1", model)
    acts = run_to_capture(model, torch.from_numpy(job.tokens[contexts].astype(np.int64)), [sae.reads])[sae.reads]
    dense = sae.encode(acts.reshape(-1, acts.shape[-1]).float()).numpy()
    dense[job.tokens[contexts].reshape(-1) == tok.bos_token_id] = 0  # BOS is excluded
    flat = (contexts[:, None] * cache.ctx_len + np.arange(cache.ctx_len)).reshape(-1)
    stored = cache.dense(flat)
    # the cache encodes in the model's bfloat16: values agree to storage precision, and the top-k
    # sets differ only by swaps of near-ties at the k-th value
    both = (stored > 0) & (dense > 0)
    np.testing.assert_allclose(stored[both], dense[both], rtol=2e-2, atol=2e-2)
    assert ((stored > 0) == (dense > 0)).mean() > 0.999
    np.testing.assert_array_equal((stored > 0).sum(1), (dense > 0).sum(1))
    kth = np.where(dense > 0, dense, np.inf).min(1, keepdims=True)
    swapped = (stored > 0) != (dense > 0)
    assert np.all(np.abs(np.maximum(stored, dense) - kth)[swapped] <= 0.02 * kth.repeat(dense.shape[1], 1)[swapped])


def test_shards_and_stats_agree(built):
    _, cache = built
    st = cache.stats()
    total = 0
    for shard in cache.iter_shards():
        assert np.all(np.diff(shard.latents) >= 0)
        for latent, sl in shard.latent_slices().items():
            assert st["firing_count"][latent] == sl.stop - sl.start
            assert np.isclose(st["max_activation"][latent], shard.values[sl].max(), rtol=1e-2)
            assert np.all(np.diff(shard.tokens[sl]) > 0)
        total += len(shard.values)
    assert total == st["firing_count"].sum() > 0
    # BOS positions never carry an activation
    assert not np.any(np.concatenate([s.tokens for s in cache.iter_shards()]) % cache.ctx_len == 0)
    tok, val = cache.latent_activations(int(np.argmax(st["firing_count"])))
    assert len(tok) == st["firing_count"].max()
    with pytest.raises(AutointerpError, match="out of range"):
        cache.latent_activations(512)


def test_rerun_is_a_no_op_and_config_change_rebuilds(built, tmp_path):
    job, cache = built
    mtimes = {p: p.stat().st_mtime_ns for p in cache.root.rglob("*.safetensors")}
    job.run(cache.root)
    assert mtimes == {p: p.stat().st_mtime_ns for p in cache.root.rglob("*.safetensors")}
    import dataclasses
    import shutil

    shutil.copytree(cache.root, tmp_path / "copy")
    dataclasses.replace(job, cache=CacheConfig(chunk_contexts=16, shard_size=256)).run(tmp_path / "copy")
    rebuilt = LatentCache(tmp_path / "copy")
    assert rebuilt.shard_size == 256 and len(rebuilt.shard_ranges) == 2
    np.testing.assert_array_equal(rebuilt.stats()["firing_count"], cache.stats()["firing_count"])


def test_incomplete_cache_is_refused(tmp_path):
    with pytest.raises(AutointerpError, match="pipelines cache"):
        LatentCache(tmp_path / "nothing")
    (tmp_path / "meta.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(AutointerpError, match="resumes"):
        LatentCache(tmp_path)


RESUME_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from autointerp.caching import CacheConfig, CacheJob
    from autointerp.dictionaries import DictionaryConfig
    from autointerp.models import ModelConfig
    import autointerp.latent_cache as lc
    tokens = np.load(sys.argv[1])
    if len(sys.argv) > 3:  # slow down each chunk so the parent can kill us half-way
        import time
        orig = lc.LatentCacheWriter.write_chunk
        def slow(self, i, v, x):
            n = orig(self, i, v, x); print("chunk", i, flush=True); time.sleep(1.5); return n
        lc.LatentCacheWriter.write_chunk = slow
    job = CacheJob("layers.1", tokens, ModelConfig(), DictionaryConfig("sparsify", sys.argv[2] + "/saes"),
                   CacheConfig(chunk_contexts=8, shard_size=128), progress=False)
    job.run(sys.argv[2] + "/cache")
    print("done", flush=True)
""")


def test_killed_run_resumes_without_redoing_finished_chunks(tmp_path, tokens):
    np.save(tmp_path / "tokens.npy", tokens)
    random_sae(tmp_path / "saes" / "layers.1")
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "tokens.npy"), str(tmp_path), "slow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if len(seen) == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    chunks = tmp_path / "cache" / "chunks"
    done_before = {p.name: p.stat().st_mtime_ns for p in chunks.iterdir() if not p.name.endswith(".tmp")}
    assert 2 <= len(done_before) < 6
    with pytest.raises(AutointerpError, match="incomplete"):
        LatentCache(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "tokens.npy"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "done" in out.stdout
    cache = LatentCache(tmp_path / "cache")
    after = {p.name: p.stat().st_mtime_ns for p in chunks.iterdir()}
    assert len(after) == 6 and not any(n.endswith(".tmp") for n in after)
    assert all(after[n] == t for n, t in done_before.items())  # finished chunks were not redone
    # and the resumed cache equals one built in a single go (in this process)
    fresh = tmp_path / "fresh"
    CacheJob(
        "layers.1",
        tokens,
        ModelConfig(),
        DictionaryConfig("sparsify", str(tmp_path / "saes")),
        CacheConfig(chunk_contexts=8, shard_size=128),
        progress=False,
    ).run(fresh)
    ref = LatentCache(fresh)
    for a, b in zip(cache.iter_shards(), ref.iter_shards(), strict=True):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_array_equal(a.values, b.values)
