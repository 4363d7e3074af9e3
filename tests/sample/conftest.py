"""A real small latent cache (real model, random sparsify SAE) shared by the sample tests."""

from __future__ import annotations

import pytest
import torch

from autointerp.caching import CacheConfig, CacheJob
from autointerp.dictionaries import DictionaryConfig, SparseCoder, save_sparsify
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig

HOOKPOINT = "layers.2"


def random_sae(folder, d=576, n=384, k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, d, generator=g)
    W /= W.norm(dim=1, keepdim=True)
    coder = SparseCoder(W.T.clone(), torch.randn(n, generator=g) * 0.05, W.clone(), torch.zeros(d), k=k)
    return save_sparsify(coder, folder)


@pytest.fixture(scope="session")
def sample_tokens(model_and_tokenizer):
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus

    _, tok = model_and_tokenizer
    return tokenize_corpus(CorpusConfig(sources=[CorpusSource("shakespeare")], ctx_len=64, n_tokens=64 * 64), tok)


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory, sample_tokens):
    """(root, tokens, LatentCache, DictionaryConfig) for hookpoint layers.2."""
    root = tmp_path_factory.mktemp("sample_cache")
    random_sae(root / "saes" / HOOKPOINT)
    dictionary = DictionaryConfig("sparsify", str(root / "saes"))
    job = CacheJob(HOOKPOINT, sample_tokens, ModelConfig(batch_size=8), dictionary,
                   CacheConfig(chunk_contexts=32, shard_size=128), progress=False)
    job.run(root / "cache")
    return root, sample_tokens, LatentCache(root / "cache"), dictionary
