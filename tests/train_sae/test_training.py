"""train_sae: a tiny TopK SAE trained on the real model, saved in sparsify's layout."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch

from autointerp.config import parse_config
from autointerp.corpus import CorpusConfig, CorpusSource, tokenize_corpus
from autointerp.dictionaries import load_sparsify, random_topk_coder, save_sparsify
from autointerp.errors import AutointerpError, ConfigError
from autointerp.training import (
    TopKSAE,
    TrainConfig,
    TrainJob,
    coder_fvu,
    fit_saes,
    holdout_activations,
    hookpoint_seed,
    job_autocast,
    read_reports,
    save_trained,
    train_saes,
)

HOOK = "layers.2"
TINY = dict(
    hookpoints=[HOOK],
    expansion_factor=2,
    k=16,
    n_tokens=8192,
    batch_contexts=8,
    sae_batch_tokens=128,
    holdout_contexts=8,
    lr=0.002,
    dead_tokens=2048,
    seed=0,
)


@pytest.fixture(scope="module")
def tokens(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    return tokenize_corpus(
        CorpusConfig(sources=[CorpusSource("shakespeare")], ctx_len=64, n_tokens=4096, seed=0), tokenizer
    )


def job_for(tokens, model_cfg, **overrides) -> TrainJob:
    return TrainJob(tokens, model_cfg, parse_config(TrainConfig, TINY | overrides, "test"), progress=False)


@pytest.fixture(scope="module")
def trained(tokens, model_cfg, tmp_path_factory):
    job = job_for(tokens, model_cfg)
    root = tmp_path_factory.mktemp("saes")
    coders, reports = fit_saes(job)  # what train_saes does, keeping the trained coder in memory
    save_trained(root / HOOK, coders[HOOK], reports[HOOK])
    return job, root, reports, coders


def heldout(job, model, tokenizer):
    perm = np.random.default_rng(job.train.seed).permutation(len(job.tokens))
    hold = np.sort(perm[: job.train.holdout_contexts])
    acts = holdout_activations(
        model,
        job.tokens,
        hold,
        [(HOOK, "output")],
        tokenizer.bos_token_id,
        8,
        job_autocast(job),  # as training evaluated it: bf16 only where the CPU has it natively
    )
    return acts[(HOOK, "output")]


def test_fvu_falls_well_below_one_and_below_initial(trained, model_and_tokenizer):
    job, root, reports, coders = trained
    model, tokenizer = model_and_tokenizer
    r = reports[HOOK]
    x = heldout(job, model, tokenizer)
    # the SAE's own initial weights (same seed), with b_dec at the data mean as training starts
    init = TopKSAE(x.shape[1], r["num_latents"], r["k"], torch.Generator().manual_seed(hookpoint_seed(0, HOOK)))
    scale = r["input_scale"]
    with torch.no_grad():
        init.b_dec.copy_(x.mean(0) / scale)
    fvu_init = coder_fvu(init.to_coder(scale, HOOK), x)
    print(f"held-out FVU {r['fvu']:.3f}, initial {fvu_init:.3f}")
    assert r["fvu"] < 0.5, r["fvu"]
    assert r["fvu"] < 0.6 * fvu_init, (r["fvu"], fvu_init)
    assert r["mean_l0"] == pytest.approx(16, abs=0.5)
    assert 0 <= r["dead_fraction"] < 0.5
    assert r["train_tokens"] > 3000 and r["holdout_tokens"] > 400
    assert len(r["curve"]["loss"]) >= 1 and all(math.isfinite(v) for v in r["curve"]["loss"])


def test_saved_folder_loads_back_and_reproduces_the_encoder(trained, model_and_tokenizer):
    job, root, reports, coders = trained
    model, tokenizer = model_and_tokenizer
    coder = load_sparsify(root, HOOK)  # the run folder; the loader picks root/layers.2
    assert (root / HOOK / "cfg.json").is_file() and (root / HOOK / "sae.safetensors").is_file()
    assert coder.k == 16 and coder.num_latents == 2 * 576 and coder.reads == (HOOK, "output")
    x = heldout(job, model, tokenizer)
    assert coder_fvu(coder, x) == pytest.approx(reports[HOOK]["fvu"], rel=1e-5)
    with torch.inference_mode():
        assert torch.allclose(coders[HOOK].encode(x[:64]), coder.encode(x[:64]), atol=1e-5)
    assert read_reports(root)[HOOK]["fingerprint"] == job.fingerprint(HOOK)


def test_up_to_date_saes_are_not_retrained(trained):
    job, root, _, _ = trained
    before = (root / HOOK / "sae.safetensors").stat().st_mtime_ns
    assert job.pending(root) == []
    train_saes(root, job)
    assert (root / HOOK / "sae.safetensors").stat().st_mtime_ns == before
    other = dataclasses.replace(job, train=dataclasses.replace(job.train, k=8))
    assert other.pending(root) == [HOOK]


def test_broken_saved_sae_is_not_up_to_date(trained, tmp_path, caplog):
    job, root, _, _ = trained
    copy = tmp_path / "saes"
    shutil.copytree(root, copy)
    assert job.pending(copy) == []
    weights = copy / HOOK / "sae.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated (a killed copy, a full disk)
    with caplog.at_level("WARNING", logger="autointerp.training"):
        assert job.pending(copy) == [HOOK]
    assert "is truncated or malformed" in caplog.text and "re-training it" in caplog.text
    weights.write_bytes(data[:6])  # not even a header
    assert job.pending(copy) == [HOOK]
    # whole files of the wrong shape (another SAE copied over this one)
    report = (copy / HOOK / "train_report.json").read_text()
    save_sparsify(random_topk_coder(576, 100, 16), copy / HOOK)
    (copy / HOOK / "train_report.json").write_text(report)
    with caplog.at_level("WARNING", logger="autointerp.training"):
        assert job.pending(copy) == [HOOK]
    assert "encoder.weight has shape (100, 576), expected (1152, 576)" in caplog.text


def test_normalize_false_trains_on_raw_activations(tokens, model_cfg, trained):
    _, _, reports, _ = trained
    assert reports[HOOK]["input_scale"] != pytest.approx(1.0, abs=0.05)  # the default divides by the RMS norm
    job = job_for(tokens, model_cfg, n_tokens=512, normalize=False)
    coders, raw = fit_saes(job)
    assert raw[HOOK]["input_scale"] == 1.0 and raw[HOOK]["config"]["normalize"] is False
    assert job.fingerprint(HOOK) != job_for(tokens, model_cfg, n_tokens=512).fingerprint(HOOK)


def test_same_seed_same_weights_other_seed_differs(tokens, model_cfg):
    small = dict(n_tokens=512, holdout_contexts=8)
    a, _ = fit_saes(job_for(tokens, model_cfg, **small))
    b, _ = fit_saes(job_for(tokens, model_cfg, **small))
    c, _ = fit_saes(job_for(tokens, model_cfg, **small, seed=1))
    assert torch.equal(a[HOOK].W_enc, b[HOOK].W_enc) and torch.equal(a[HOOK].b_dec, b[HOOK].b_dec)
    assert not torch.equal(a[HOOK].W_enc, c[HOOK].W_enc)


def test_unknown_hookpoint(tokens, model_cfg, tmp_path):
    with pytest.raises(AutointerpError, match="unknown hookpoint 'layers.99'.*valid hookpoints"):
        train_saes(tmp_path, job_for(tokens, model_cfg, hookpoints=["layers.99"]))


def test_k_larger_than_num_latents(tokens, model_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"train_sae.k \(2000\) is larger than the number of latents .*1152"):
        train_saes(tmp_path, job_for(tokens, model_cfg, k=2000))
    with pytest.raises(ConfigError, match=r"k \(64\) is larger than num_latents \(32\)"):
        parse_config(TrainConfig, TINY | {"k": 64, "num_latents": 32}, "parameters: train_sae")


def test_token_budget_smaller_than_one_batch(tokens, model_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"n_tokens \(100\) is smaller than one batch .* 512 tokens"):
        train_saes(tmp_path, job_for(tokens, model_cfg, n_tokens=100))


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'expansion'"):
        parse_config(TrainConfig, {"expansion": 4}, "parameters: train_sae")


def test_per_hookpoint_overrides_change_only_that_sae(tokens, model_cfg):
    mlp = "layers.2.mlp"
    small = dict(hookpoints=[HOOK, mlp], n_tokens=512, holdout_contexts=8)
    job = job_for(tokens, model_cfg, **small, overrides={mlp: {"k": 24, "expansion_factor": 3}})
    coders, reports = fit_saes(job)
    assert coders[mlp].k == 24 and coders[mlp].num_latents == 3 * 576 and reports[mlp]["config"]["k"] == 24
    assert coders[HOOK].k == 16 and coders[HOOK].num_latents == 2 * 576
    assert reports[mlp]["mean_l0"] > 16.5  # the overridden k is the one used
    plain = job_for(tokens, model_cfg, **small)
    # the fingerprint covers the SAE's own overrides and ignores other hookpoints'
    assert job.fingerprint(mlp) != plain.fingerprint(mlp)
    assert job.fingerprint(HOOK) == plain.fingerprint(HOOK)
    # the residual SAE trains exactly as without the override on the MLP
    alone, _ = fit_saes(job_for(tokens, model_cfg, **small), [HOOK])
    assert torch.equal(alone[HOOK].W_enc, coders[HOOK].W_enc)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"layers.9": {"k": 8}}, r"overrides: 'layers.9' is not one of the hookpoints"),
        (
            {HOOK: {"n_tokens": 8}},
            r"overrides.layers.2: 'n_tokens' cannot differ per hookpoint. Keys allowed there: k,",
        ),
        ({HOOK: {"k": "many"}}, r"overrides.layers.2.k: expected a number"),
        ({HOOK: {"k": 5000}}, r"overrides.layers.2.k .*is larger than the number of latents"),
        ({HOOK: 8}, r"overrides.layers.2: expected a mapping"),
    ],
)
def test_bad_overrides_are_named(tokens, model_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_saes(tmp_path, job_for(tokens, model_cfg, overrides=overrides))
