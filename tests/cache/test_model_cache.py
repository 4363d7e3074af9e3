"""The dequantized copy of a GGUF model (autointerp.models.converted_copy): written on the first
load, read on the next, the same tensors and tokenizer as the GGUF itself."""

from __future__ import annotations

import os

import torch

from autointerp import models
from autointerp.models import ModelConfig, converted_copy, resolve_model_source


def test_second_load_reads_the_copy_and_computes_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv(models.MODEL_CACHE_ENV, str(tmp_path / "models"))
    cfg = ModelConfig()
    source, gguf = resolve_model_source(cfg)
    folder = converted_copy(source, gguf, cfg.dtype)
    assert folder.parent == tmp_path / "models" and not folder.exists()

    load = models._load.__wrapped__  # past the per-process cache: two real loads
    m1, t1 = load(source, gguf, cfg.dtype, cfg.device)  # from the GGUF; writes the copy
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    m2, t2 = load(source, gguf, cfg.dtype, cfg.device)  # from the copy
    assert m2.config._name_or_path == str(folder) != m1.config._name_or_path

    text = "To be, or not to be: that is the question.\ndef f(x):\n    return x ** 2  # squared"
    assert t1(text).input_ids == t2(text).input_ids
    chat = [{"role": "user", "content": "Explain this latent."}]
    assert t1.apply_chat_template(chat, tokenize=False) == t2.apply_chat_template(chat, tokenize=False)
    assert (t1.bos_token_id, t1.eos_token_id, t1.pad_token_id) == (t2.bos_token_id, t2.eos_token_id, t2.pad_token_id)
    ids = t1(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        a, b = m1(ids, output_hidden_states=True), m2(ids, output_hidden_states=True)
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states, strict=True))
    assert next(m2.parameters()).dtype == models.DTYPES[cfg.dtype]

    # a copy damaged on disk is not an error: the GGUF is read again and the copy rewritten
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    m3, _ = load(source, gguf, cfg.dtype, cfg.device)
    assert m3.config._name_or_path == m1.config._name_or_path  # from the GGUF
    assert (folder / "model.safetensors").stat().st_size > 1_000_000
    with torch.inference_mode():
        assert torch.equal(m3(ids).logits, a.logits)


def test_copy_follows_the_file_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(models.MODEL_CACHE_ENV, str(tmp_path / "models"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    first = converted_copy(str(tmp_path), f.name, "bfloat16")
    assert converted_copy(str(tmp_path), f.name, "float32") != first  # one copy per dtype
    os.utime(f, ns=(1, 1))  # the file changed: a new copy, never the stale one
    assert converted_copy(str(tmp_path), f.name, "bfloat16") != first
    monkeypatch.setenv(models.MODEL_CACHE_ENV, "off")
    assert converted_copy(str(tmp_path), f.name, "bfloat16") is None
