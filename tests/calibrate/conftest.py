"""A corpus large enough for a few known-answer words (32k tokens of four Shakespeare plays, the
real tokenizer: four plays are tokenized, not all 42)."""

from __future__ import annotations

import pytest

CTX_LEN, N_TOKENS, PLAYS = 64, 32768, 4


@pytest.fixture(scope="session")
def calibration_corpus(model_and_tokenizer):
    from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus

    cfg = CorpusConfig(
        sources=[CorpusSource("shakespeare", max_documents=PLAYS)], ctx_len=CTX_LEN, n_tokens=N_TOKENS, seed=0
    )
    return tokenize_corpus(cfg, model_and_tokenizer[1])
