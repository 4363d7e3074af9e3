"""Known-answer detectors on the real model: chosen words, separation over the whole
vocabulary, a real SAELens folder read back by the normal loader, and exactness of the real
cache on the corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from autointerp.caching import CacheConfig, CacheJob
from autointerp.calibration import (
    CALIBRATION_HOOKPOINT,
    CalibrateConfig,
    build_detectors,
    choose_words,
    embedding_matrix,
    exactness,
    save_known_answers,
    worked_example_words,
)
from autointerp.calibration.detectors import STOP_WORDS
from autointerp.dictionaries import DictionaryConfig, load_dictionary
from autointerp.errors import AutointerpError
from autointerp.latent_cache import LatentCache
from autointerp.models import ModelConfig

CFG = CalibrateConfig(n_words=4, candidates=24, n_train=5, n_test=5)


@pytest.fixture(scope="module")
def detectors(model_and_tokenizer, calibration_corpus, tmp_path_factory):
    model, tokenizer = model_and_tokenizer
    words = choose_words(calibration_corpus, tokenizer, CFG, window_len=16, exclude=worked_example_words())
    E = embedding_matrix(model)
    tensors, info = build_detectors(E, words["token_id"].tolist())
    words = words.assign(**{k: [r[k] for r in info] for k in ("margin", "direction", "status")})
    folder = save_known_answers(tmp_path_factory.mktemp("known_answers"), tensors, words, "smollm2")
    return words, E, folder


def test_words_are_frequent_content_words_and_reproducible(detectors, model_and_tokenizer, calibration_corpus):
    words, _, _ = detectors
    tokenizer = model_and_tokenizer[1]
    assert len(words) == 4 and words["token_id"].is_unique
    worked = worked_example_words()
    assert "king" in worked  # the worked examples' words are excluded ...
    for r in words.itertuples():
        assert tokenizer.decode([r.token_id]) == " " + r.word  # a leading-space single token
        assert r.word not in STOP_WORDS and r.word not in worked
        assert r.windows >= CFG.n_train + CFG.n_test
        assert (calibration_corpus == r.token_id).sum() == r.count
    again = choose_words(calibration_corpus, tokenizer, CFG, window_len=16, exclude=worked)
    other = choose_words(calibration_corpus, tokenizer, CalibrateConfig(**{**CFG.__dict__, "seed": 1}), 16, worked)
    assert again["word"].tolist() == words["word"].tolist() and other["word"].tolist() != words["word"].tolist()
    with pytest.raises(AutointerpError, match="calibrate.n_train"):
        choose_words(calibration_corpus[:2], tokenizer, CFG, 16, worked)


def test_the_dictionary_reads_back_and_separates_the_whole_vocabulary(detectors, model_and_tokenizer):
    words, E, folder = detectors
    coder = load_dictionary(
        DictionaryConfig(format="saelens", path=str(folder)), CALIBRATION_HOOKPOINT, model_and_tokenizer[0]
    )
    assert coder.num_latents == 4 and coder.reads == (CALIBRATION_HOOKPOINT, "output")
    assert (words["status"] == "ok").all() and (words["margin"] > 0).all()
    with torch.no_grad():
        fires = coder.encode(E) > 0  # every row of the vocabulary, through the loaded coder
    want = torch.zeros_like(fires)
    want[torch.tensor(words["token_id"].tolist()), torch.arange(4)] = True
    assert torch.equal(fires, want)


def test_cached_latents_fire_exactly_on_their_token(detectors, calibration_corpus, tmp_path):
    words, _, folder = detectors
    job = CacheJob(
        hookpoint=CALIBRATION_HOOKPOINT,
        tokens=calibration_corpus,
        model=ModelConfig(),
        dictionary=DictionaryConfig(format="saelens", path=str(folder)),
        cache=CacheConfig(),
        progress=False,
    )
    job.run(tmp_path / "cache")
    checked = exactness(words, LatentCache(tmp_path / "cache"), calibration_corpus)
    assert checked["exact"].all() and (checked["status"] == "ok").all()
    assert (checked["fired"] == checked["count"]).all() and (checked["false_alarms"] == 0).all()
    # a detector that misses its token is caught: shift one latent's expected token
    wrong = words.assign(token_id=words["token_id"].where(words["latent"] != 0, words["token_id"].iloc[1]))
    bad = exactness(wrong, LatentCache(tmp_path / "cache"), calibration_corpus)
    assert not bad["exact"].iloc[0] and bad["status"].iloc[0] == "not_exact" and bad["exact"].iloc[1:].all()


def test_a_token_that_cannot_be_separated_is_refused():
    g = torch.Generator().manual_seed(0)
    E = torch.randn(50, 8, generator=g)
    E[7] = E[3]  # two tokens with one embedding: no linear separator exists
    E[9] = 0.5 * E[3] + 0.5 * E[5]  # a mix of two rows never scores above both
    tensors, info = build_detectors(E, [3, 5, 9, 11])
    status = [r["status"] for r in info]
    assert status[0] == status[2] == "not_separable" and status[3] == "ok"
    x = E @ tensors["W_enc"] + tensors["b_enc"]
    assert (x[:, 0] <= 0).all()  # a refused latent never fires
    assert torch.equal((x[:, 3] > 0).nonzero().flatten(), torch.tensor([11]))
    pd.testing.assert_series_equal(pd.Series([r["margin"] > 0 for r in info]), pd.Series(np.array(status) == "ok"))
