"""The trainable TopK SAE (sparse gradients through the top-k latents) and its measures."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..dictionaries import SparseCoder


def _scatter_rows(idx: torch.Tensor, weights: torch.Tensor, dense: torch.Tensor, n: int) -> torch.Tensor:
    """``S^T @ dense`` for the sparse [B, n] matrix S with ``weights`` at ``idx``: [n, d]."""
    rows = torch.arange(idx.shape[0]).repeat_interleave(idx.shape[1])
    s = torch.sparse_coo_tensor(
        torch.stack([idx.reshape(-1), rows]),
        weights.reshape(-1).float(),
        (n, idx.shape[0]),
        is_coalesced=False,
        check_invariants=False,
    )
    return torch.sparse.mm(s, dense.float())


def _gather_dot(rows_of: torch.Tensor, idx: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """out[b, j] = rows_of[idx[b, j]] . g[b]  ([B, k]), through one dense bf16 product (on CPU
    faster than gathering B*k rows)."""
    return (g.to(torch.bfloat16) @ rows_of.to(torch.bfloat16).T).gather(1, idx).float()


class _Encode(torch.autograd.Function):
    """Selected latent activations ``relu(xc . W_enc[idx] + b_enc[idx])`` (values given), with a
    sparse backward: only the selected latents get encoder gradients."""

    @staticmethod
    def forward(ctx, xc, W_enc, b_enc, idx, vals):
        ctx.save_for_backward(xc, W_enc, idx, vals)
        return vals

    @staticmethod
    def backward(ctx, g):
        xc, W_enc, idx, vals = ctx.saved_tensors
        g = g * (vals > 0)
        n = W_enc.shape[0]
        gW = _scatter_rows(idx, g, xc, n)
        gb = torch.zeros(n, dtype=g.dtype).index_add_(0, idx.reshape(-1), g.reshape(-1))
        gxc = F.embedding_bag(idx, W_enc, per_sample_weights=g, mode="sum")
        return gxc, gW, gb, None, None


class _Decode(torch.autograd.Function):
    """``sum_j vals[b, j] W_dec[idx[b, j]]`` with a sparse backward."""

    @staticmethod
    def forward(ctx, vals, W_dec, idx):
        ctx.save_for_backward(vals, W_dec, idx)
        return F.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")

    @staticmethod
    def backward(ctx, g):
        vals, W_dec, idx = ctx.saved_tensors
        g_vals = _gather_dot(W_dec, idx, g) if ctx.needs_input_grad[0] else None
        return g_vals, _scatter_rows(idx, vals, g, W_dec.shape[0]), None


class TopKSAE(torch.nn.Module):
    """A trainable TopK SAE (fp32 parameters): ``W_enc`` [n, d] (sparsify's ``encoder.weight``),
    ``W_dec`` [n, d] with unit rows. Only the k selected latents (and the AuxK ones) of a token
    get gradients, computed sparsely; the one dense product is the encoder's forward (bf16)."""

    def __init__(self, d_in: int, num_latents: int, k: int, generator: torch.Generator):
        super().__init__()
        bound = 1 / math.sqrt(d_in)  # nn.Linear's default init, as sparsify
        w = (torch.rand(num_latents, d_in, generator=generator) * 2 - 1) * bound
        self.W_enc = torch.nn.Parameter(w.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(num_latents))
        self.W_dec = torch.nn.Parameter(w.clone())
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.k = k
        self.normalize_decoder()

    @property
    def num_latents(self) -> int:
        return self.W_enc.shape[0]

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad.sub_(parallel * self.W_dec)

    def forward(self, x: torch.Tensor, dead: torch.Tensor | None, auxk_alpha: float, low_precision: bool = True):
        """(loss, fvu, auxk, latent indices fired) for a batch x [B, d] (already normalised)."""
        xc = x - self.b_dec
        with torch.no_grad():
            dt = torch.bfloat16 if low_precision else torch.float32
            pre = torch.relu(xc.detach().to(dt) @ self.W_enc.detach().to(dt).T + self.b_enc.detach().to(dt))
            vals, idx = pre.topk(self.k, dim=-1, sorted=False)
        vals = _Encode.apply(xc, self.W_enc, self.b_enc, idx, vals.float())
        recon = _Decode.apply(vals, self.W_dec, idx) + self.b_dec
        err = x - recon
        total_var = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
        fvu = err.pow(2).sum() / total_var
        auxk = torch.zeros((), dtype=fvu.dtype)
        if dead is not None and auxk_alpha > 0:
            dead_idx = dead.nonzero().squeeze(1)
            if len(dead_idx):
                k_aux = min(x.shape[1] // 2, len(dead_idx))
                scale = min(len(dead_idx) / (x.shape[1] // 2), 1.0)
                with torch.no_grad():
                    a_vals, a_idx = pre[:, dead_idx].topk(k_aux, dim=-1, sorted=False)
                # the dead latents as a small dictionary of their own: cheap when few are dead
                a_vals = _Encode.apply(xc, self.W_enc[dead_idx], self.b_enc[dead_idx], a_idx, a_vals.float())
                e_hat = _Decode.apply(a_vals, self.W_dec[dead_idx], a_idx)
                auxk = scale * (e_hat - err.detach()).pow(2).sum() / total_var
        loss = fvu + auxk_alpha * auxk
        return loss, fvu, auxk, idx, vals

    def to_coder(self, scale: float, hookpoint: str) -> SparseCoder:
        """The inference coder in raw activation units (scale folded into the biases)."""
        return SparseCoder(
            self.W_enc.detach().T.contiguous(),
            self.b_enc.detach() * scale,
            self.W_dec.detach().clone(),
            self.b_dec.detach() * scale,
            activation="topk",
            k=self.k,
            hookpoint=hookpoint,
            reads=(hookpoint, "output"),
            writes=(hookpoint, "output"),
            source=f"trained {hookpoint}",
        )


def geometric_median(x: torch.Tensor, iters: int = 50, eps: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm."""
    y = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - y).norm(dim=1).clamp_min(eps)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if (y_new - y).norm() < eps * (1 + y.norm()):
            return y_new
        y = y_new
    return y


def coder_fvu(coder, x: torch.Tensor) -> float:
    """FVU of a SparseCoder on raw activations x [N, d]."""
    with torch.inference_mode():
        x = x.float()
        recon = coder.decode(coder.encode(x), x)
        return float((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12))
