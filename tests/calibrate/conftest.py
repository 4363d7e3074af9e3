"""A corpus large enough for a few known-answer words (32k Shakespeare tokens, the real tokenizer)."""

from __future__ import annotations

import pytest

CTX_LEN, N_TOKENS = 64, 32768


@pytest.fixture(scope="session")
def calibration_corpus(model_and_tokenizer):
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus

    cfg = CorpusConfig(sources=[CorpusSource("shakespeare")], ctx_len=CTX_LEN, n_tokens=N_TOKENS, seed=0)
    return tokenize_corpus(cfg, model_and_tokenizer[1])
