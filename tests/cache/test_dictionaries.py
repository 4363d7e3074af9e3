"""Real dictionary files in every supported layout, written here and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from autointerp.dictionaries import (
    DictionaryConfig,
    SparseCoder,
    load_dictionary,
    save_sparsify,
)
from autointerp.errors import AutointerpError

D, N = 576, 96


def weights(seed=0, d=D, n=N):
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d, n, generator=g) / d**0.5,
        "W_dec": torch.randn(n, d, generator=g),
        "b_enc": torch.randn(n, generator=g) * 0.1,
        "b_dec": torch.randn(d, generator=g) * 0.1,
        "threshold": torch.rand(n, generator=g) * 0.2,
    }


def x_batch(seed=1):
    return torch.randn(32, D, generator=torch.Generator().manual_seed(seed))


def np_reference(w, x, arch, k=None, subtract=True):
    """Independent numpy re-statement of each architecture's encoder."""
    W, b, bd = (w[n].numpy().astype(np.float64) for n in ("W_enc", "b_enc", "b_dec"))
    x = x.numpy().astype(np.float64)
    pre = (x - bd if subtract else x) @ W + b
    if arch == "relu":
        return np.maximum(pre, 0)
    if arch == "jumprelu":
        return np.where(pre > w["threshold"].numpy(), np.maximum(pre, 0), 0)
    if arch == "topk":
        out = np.zeros_like(pre)
        r = np.maximum(pre, 0)
        idx = np.argsort(-r, axis=1)[:, :k]
        np.put_along_axis(out, idx, np.take_along_axis(r, idx, 1), 1)
        return out
    raise ValueError(arch)


def test_sparsify_roundtrip(tmp_path, model_and_tokenizer):
    model, _ = model_and_tokenizer
    w = weights()
    coder = SparseCoder(
        w["W_enc"],
        w["b_enc"],
        w["W_dec"],
        w["b_dec"],
        k=8,
        hookpoint="layers.3",
        reads=("layers.3", "output"),
        writes=("layers.3", "output"),
    )
    save_sparsify(coder, tmp_path / "layers.3")
    cfg = json.loads((tmp_path / "layers.3" / "cfg.json").read_text())
    assert cfg["k"] == 8 and cfg["num_latents"] == N
    # the run folder (one subfolder per hookpoint) and the hookpoint folder both load
    for path in (tmp_path, tmp_path / "layers.3"):
        d = load_dictionary(DictionaryConfig("sparsify", str(path)), "layers.3", model)
        x = x_batch()
        np.testing.assert_allclose(d.encode(x).numpy(), np_reference(w, x, "topk", k=8), rtol=1e-4, atol=1e-4)
        assert ((d.encode(x) > 0).sum(-1) <= 8).all()


def test_sparsify_skip_transcoder_reads_mlp_input(tmp_path, model_and_tokenizer):
    model, _ = model_and_tokenizer
    w = weights()
    tensors = {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"],
        "W_dec": w["W_dec"],
        "b_dec": w["b_dec"],
        "W_skip": torch.eye(D) * 0.5,
    }
    folder = tmp_path / "layers.3.mlp"
    folder.mkdir()
    save_file(tensors, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"k": 4, "num_latents": N, "transcode": True, "skip_connection": True}))
    d = load_dictionary(DictionaryConfig("sparsify", str(tmp_path)), "layers.3.mlp", model)
    assert d.reads == ("layers.3.mlp", "input") and d.writes == ("layers.3.mlp", "output")
    x = x_batch()
    # transcoders do not subtract b_dec from their input
    np.testing.assert_allclose(
        d.encode(x).numpy(), np_reference(w, x, "topk", k=4, subtract=False), rtol=1e-4, atol=1e-4
    )
    recon = d.decode(d.encode(x), x)
    assert torch.allclose(recon - d.decode(d.encode(x)), 0.5 * x, atol=1e-4)


@pytest.mark.parametrize("arch,ref", [("standard", "relu"), ("jumprelu", "jumprelu"), ("topk", "topk")])
def test_saelens_architectures(tmp_path, model_and_tokenizer, arch, ref):
    model, _ = model_and_tokenizer
    w = weights(seed=3)
    save_file({k: v.contiguous() for k, v in w.items()}, str(tmp_path / "sae_weights.safetensors"))
    cfg = {
        "architecture": arch,
        "d_in": D,
        "d_sae": N,
        "hook_name": "blocks.3.hook_resid_post",
        "apply_b_dec_to_input": True,
        "activation_fn_kwargs": {"k": 6} if arch == "topk" else {},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    d = load_dictionary(DictionaryConfig("saelens", str(tmp_path)), "layers.3", model)
    x = x_batch()
    np.testing.assert_allclose(d.encode(x).numpy(), np_reference(w, x, ref, k=6), rtol=1e-4, atol=1e-4)


def test_saelens_gated(tmp_path):
    w = weights(seed=4)
    g = torch.Generator().manual_seed(5)
    extra = {
        "b_gate": torch.randn(N, generator=g) * 0.1,
        "r_mag": torch.randn(N, generator=g) * 0.1,
        "b_mag": torch.randn(N, generator=g) * 0.1,
    }
    save_file({**{k: v for k, v in w.items() if k != "b_enc"}, **extra}, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "gated", "apply_b_dec_to_input": True}))
    d = load_dictionary(DictionaryConfig("saelens", str(tmp_path)), "layers.3")
    x = x_batch().double()
    xin = x - w["b_dec"].double()
    gate = (xin @ w["W_enc"].double() + extra["b_gate"].double()) > 0
    mag = torch.relu(xin @ (w["W_enc"].double() * torch.exp(extra["r_mag"].double())) + extra["b_mag"].double())
    np.testing.assert_allclose(d.encode(x.float()).numpy(), (mag * gate).numpy(), rtol=1e-4, atol=1e-4)


def test_gemmascope_npz(tmp_path, model_and_tokenizer):
    model, _ = model_and_tokenizer
    w = weights(seed=7)
    np.savez(tmp_path / "params.npz", **{k: v.numpy() for k, v in w.items()})
    d = load_dictionary(DictionaryConfig("gemmascope", str(tmp_path)), "layers.3", model)
    x = x_batch()
    np.testing.assert_allclose(
        d.encode(x).numpy(), np_reference(w, x, "jumprelu", subtract=False), rtol=1e-4, atol=1e-4
    )


def test_gemmascope_refuses_pickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "params.npz", W_enc=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(AutointerpError, match="malformed"):
        load_dictionary(DictionaryConfig("gemmascope", str(tmp_path / "params.npz")), "layers.3")


def test_neurons_topk(model_and_tokenizer):
    model, _ = model_and_tokenizer
    d = load_dictionary(DictionaryConfig("neurons", k=5), "layers.3.mlp", model)
    assert d.reads == ("layers.3.mlp.down_proj", "input") and d.num_latents == 1536
    x = torch.randn(4, 1536)
    acts = d.encode(x)
    assert ((acts > 0).sum(-1) <= 5).all() and (acts >= 0).all()
    assert torch.allclose(acts.max(-1).values, x.max(-1).values.clamp(min=0))
    dense = load_dictionary(DictionaryConfig("neurons"), "layers.3", model).encode(x)
    assert torch.equal(dense, torch.relu(x))


def test_width_mismatch_is_a_clear_error(tmp_path, model_and_tokenizer):
    model, _ = model_and_tokenizer
    w = weights(d=512)
    coder = SparseCoder(w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"], k=4)
    save_sparsify(coder, tmp_path / "layers.3")
    with pytest.raises(AutointerpError, match="width 512.*width 576"):
        load_dictionary(DictionaryConfig("sparsify", str(tmp_path)), "layers.3", model)


def test_truncated_and_malformed_files(tmp_path):
    w = weights()
    coder = SparseCoder(w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"], k=4)
    folder = save_sparsify(coder, tmp_path / "layers.3")
    blob = (folder / "sae.safetensors").read_bytes()
    (folder / "sae.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(AutointerpError, match="truncated or malformed"):
        load_dictionary(DictionaryConfig("sparsify", str(tmp_path)), "layers.3")
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(AutointerpError, match="not valid JSON"):
        load_dictionary(DictionaryConfig("sparsify", str(tmp_path)), "layers.3")
    with pytest.raises(AutointerpError, match="does not exist"):
        load_dictionary(DictionaryConfig("sparsify", str(tmp_path / "nowhere")), "layers.3")


def test_unknown_hookpoint_lists_valid_ones(model_and_tokenizer):
    from autointerp.models import run_to_capture

    model, tok = model_and_tokenizer
    with pytest.raises(AutointerpError, match=r"layers\.0 \.\. layers\.29"):
        run_to_capture(model, torch.tensor([[1, 2, 3]]), [("layers.99", "output")])


def test_forward_stops_after_deepest_hookpoint(model_and_tokenizer):
    from autointerp.models import base_model, run_to_capture

    model, _ = model_and_tokenizer
    ran = []
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
        for i, layer in enumerate(base_model(model).layers)
    ]
    try:
        out = run_to_capture(model, torch.tensor([[1, 2, 3, 4]]), [("layers.2", "output"), ("layers.1.mlp", "input")])
    finally:
        for h in handles:
            h.remove()
    assert ran == [0, 1, 2]
    full = model(torch.tensor([[1, 2, 3, 4]]), output_hidden_states=True).hidden_states[3]
    assert torch.allclose(out[("layers.2", "output")].float(), full.float(), atol=1e-2)
