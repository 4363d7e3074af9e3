"""Train TopK sparse autoencoders on several hookpoints at once, written in sparsify's layout.

One forward pass of the subject model per batch of contexts, stopped after the deepest
hookpoint, feeds every SAE being trained. The SAEs follow EleutherAI's sparsify and OpenAI's
TopK recipe: the encoder reads ``x - b_dec``, ReLU then TopK, decoder rows kept at unit norm
(the gradient component parallel to each row is removed before the step and rows are
renormalised after it), an AuxK loss that makes dead latents reconstruct the residual,
``b_dec`` initialised to the mean of the first batch and the decoder to the encoder's transpose.

With ``normalize`` (the default), inputs are divided by one scalar per hookpoint during training
(their RMS norm around the mean, so every hookpoint trains on the same scale and one learning
rate fits all; ``normalize: false`` trains on raw activations); the scale is
folded back into ``b_enc`` and ``b_dec`` when saving, so the saved SAE reads raw activations
and its latents are the trained ones multiplied by that scalar.

Output folder (``root``)::

    <hookpoint>/cfg.json            # sparsify config
    <hookpoint>/sae.safetensors     # encoder.weight, encoder.bias, W_dec, b_dec
    <hookpoint>/train_report.json   # written last: fingerprint, FVU, dead fraction, L0, loss curve

An SAE whose ``train_report.json`` carries the job's fingerprint, and whose files are whole and of
the configured shapes, is up to date and is not retrained (a truncated or mismatched
``sae.safetensors`` is retrained). Each SAE's initial weights depend only on the seed and its hookpoint, and every SAE
sees the same seeded token order, so training one hookpoint alone or with others gives the
same weights (on CPU, bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from .caching import tokens_digest
from .config import as_dict, parse_config
from .dictionaries import SparseCoder, save_sparsify
from .errors import AutointerpError, ConfigError
from .models import ModelConfig, hidden_size, load_model, resolve_module, run_to_capture

log = logging.getLogger(__name__)

REPORT = "train_report.json"
DEFAULT_HOOKPOINTS = ["layers.4", "layers.5", "layers.6", "layers.4.mlp", "layers.5.mlp", "layers.6.mlp"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train the SAEs (``parameters: train_sae``).

    ``n_tokens`` is the training budget; the training contexts are cycled (re-shuffled each
    epoch) until it is spent. ``holdout_contexts`` contexts of the corpus are never trained on
    and give the reported FVU. ``batch_contexts`` contexts go through the model together;
    the SAEs then take optimizer steps of ``sae_batch_tokens`` tokens each. ``lr`` None picks
    sparsify's default ``2e-4 / sqrt(num_latents / 2**14)`` (too low for
    the short runs this project can afford on a CPU). A latent is dead when it has not
    fired for ``dead_tokens`` training tokens; AuxK (weight ``auxk_alpha``) revives those.
    ``overrides`` maps a hookpoint to its own values of the per-SAE keys (``PER_SAE_KEYS``,
    e.g. ``{layers.4.mlp: {k: 64}}``): MLP outputs are less sparse than the residual stream.
    """

    hookpoints: list[str] = field(default_factory=lambda: list(DEFAULT_HOOKPOINTS))
    expansion_factor: int = 4
    num_latents: int | None = None
    k: int = 32
    n_tokens: int = 262144
    batch_contexts: int = 8
    sae_batch_tokens: int = 1024
    holdout_contexts: int = 32
    lr: float | None = 0.002
    lr_warmup_fraction: float = 0.05
    lr_decay_fraction: float = 0.2
    auxk_alpha: float = 1 / 32
    dead_tokens: int = 65536
    b_dec_init: str = "mean"
    normalize: bool = True
    exclude_bos: bool = True
    autocast: bool = True
    seed: int = 0
    log_every: int = 10
    overrides: dict[str, dict] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not self.hookpoints:
            raise ConfigError(f"{where}.hookpoints is empty: name at least one hookpoint to train an SAE on.")
        if len(set(self.hookpoints)) != len(self.hookpoints):
            raise ConfigError(f"{where}.hookpoints lists a hookpoint twice: {self.hookpoints}.")
        for name in ("expansion_factor", "k", "n_tokens", "batch_contexts", "sae_batch_tokens", "dead_tokens", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_latents is not None and self.num_latents < 1:
            raise ConfigError(f"{where}.num_latents must be at least 1 (or null to use expansion_factor).")
        if self.num_latents is not None and self.k > self.num_latents:
            raise ConfigError(f"{where}.k ({self.k}) is larger than num_latents ({self.num_latents}). Lower k or raise num_latents.")
        if self.holdout_contexts < 1:
            raise ConfigError(f"{where}.holdout_contexts must be at least 1: the FVU is measured on held-out contexts.")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"{where}.lr must be positive (or null for sparsify's default).")
        if not (0 <= self.lr_warmup_fraction <= 1 and 0 <= self.lr_decay_fraction <= 1
                and self.lr_warmup_fraction + self.lr_decay_fraction <= 1):
            raise ConfigError(f"{where}: lr_warmup_fraction and lr_decay_fraction must be in [0, 1] and sum to at most 1.")
        if self.auxk_alpha < 0:
            raise ConfigError(f"{where}.auxk_alpha must be >= 0.")
        if self.b_dec_init not in ("mean", "geometric_median", "zeros"):
            raise ConfigError(f"{where}.b_dec_init: use mean, geometric_median or zeros, got '{self.b_dec_init}'.")
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"{where}.overrides: expected a mapping hookpoint -> {{key: value}}, got {self.overrides!r}.")
        for h, over in self.overrides.items():
            if h not in self.hookpoints:
                raise ConfigError(f"{where}.overrides: '{h}' is not one of the hookpoints {self.hookpoints}. "
                                  "Add it to hookpoints or remove its override.")
            if not isinstance(over, dict):
                raise ConfigError(f"{where}.overrides.{h}: expected a mapping of keys, got {over!r}.")
            bad = [k for k in over if k not in PER_SAE_KEYS]
            if bad:
                raise ConfigError(f"{where}.overrides.{h}: '{bad[0]}' cannot differ per hookpoint. "
                                  f"Keys allowed there: {', '.join(PER_SAE_KEYS)}.")
            # the merged config checks the values' types and ranges
            parse_config(TrainConfig, as_dict(self) | {"overrides": {}} | over, f"{where}.overrides.{h}")

    def for_hookpoint(self, hookpoint: str) -> TrainConfig:
        """This config with ``hookpoint``'s overrides applied (and no overrides left)."""
        return replace(self, **self.overrides.get(hookpoint, {}), overrides={})

    def latents_for(self, d_in: int) -> int:
        return self.num_latents or self.expansion_factor * d_in


PER_SAE_KEYS = ("k", "expansion_factor", "num_latents", "lr", "auxk_alpha", "dead_tokens", "b_dec_init")


# ---------------------------------------------------------------- the trainable SAE


def _scatter_rows(idx: torch.Tensor, weights: torch.Tensor, dense: torch.Tensor, n: int) -> torch.Tensor:
    """``S^T @ dense`` for the sparse [B, n] matrix S with ``weights`` at ``idx``: [n, d]."""
    rows = torch.arange(idx.shape[0]).repeat_interleave(idx.shape[1])
    s = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), rows]), weights.reshape(-1).float(), (n, idx.shape[0]),
                                is_coalesced=False, check_invariants=False)
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
        return SparseCoder(self.W_enc.detach().T.contiguous(), self.b_enc.detach() * scale, self.W_dec.detach().clone(),
                           self.b_dec.detach() * scale, activation="topk", k=self.k, hookpoint=hookpoint,
                           reads=(hookpoint, "output"), writes=(hookpoint, "output"), source=f"trained {hookpoint}")


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


# ---------------------------------------------------------------- the job


def hookpoint_seed(seed: int, hookpoint: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{hookpoint}".encode()).digest()[:6], "little")


@dataclass
class TrainJob:
    """Everything needed to (re)train the SAEs; run by the catalog's dataset (``run(root)``)."""

    tokens: np.ndarray
    model: ModelConfig
    train: TrainConfig
    progress: bool = True

    def fingerprint(self, hookpoint: str) -> str:
        """Identity of one SAE: what it was trained on and how (not which others trained along)."""
        train = as_dict(self.train.for_hookpoint(hookpoint))  # only this SAE's own overrides count
        for key in ("hookpoints", "log_every", "overrides"):
            train.pop(key)
        blob = json.dumps({"hookpoint": hookpoint, "train": train, "tokens": tokens_digest(self.tokens),
                           "model": as_dict(self.model) | {"batch_size": 0}}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def pending(self, root: str | Path) -> list[str]:
        """Hookpoints whose saved SAE is missing, broken or was trained with another configuration."""
        out = []
        for h in self.train.hookpoints:
            report = read_report(Path(root) / h)
            if report is None or report.get("fingerprint") != self.fingerprint(h):
                out.append(h)
            elif (problem := saved_sae_problem(Path(root) / h, report, self.train.for_hookpoint(h))) is not None:
                log.warning("SAE %s: %s; re-training it", h, problem)
                out.append(h)
        return out

    def run(self, root: str | Path) -> dict[str, dict]:
        return train_saes(root, self)


def read_report(folder: str | Path) -> dict | None:
    p = Path(folder) / REPORT
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def saved_sae_problem(folder: Path, report: dict, cfg: TrainConfig) -> str | None:
    """Why the SAE saved in ``folder`` cannot be used (None: its files are whole and of the
    configured shapes). Reads only the safetensors header, which also checks the file's size."""
    path = folder / "sae.safetensors"
    if not path.is_file():
        return f"{path} is missing"
    try:
        with safe_open(str(path), "pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        return f"{path} is truncated or malformed ({e})"
    d_in = int(report.get("d_in") or 0)
    n = cfg.latents_for(d_in)
    want = {"encoder.weight": (n, d_in), "encoder.bias": (n,), "W_dec": (n, d_in), "b_dec": (d_in,)}
    for name, shape in want.items():
        if shapes.get(name) != shape:
            return f"{path}: {name} has shape {shapes.get(name)}, expected {shape}"
    try:
        k = json.loads((folder / "cfg.json").read_text()).get("k")
    except (OSError, ValueError, AttributeError) as e:
        return f"{folder / 'cfg.json'} is missing or malformed ({e})"
    if k != cfg.k:
        return f"{folder / 'cfg.json'}: k is {k}, expected {cfg.k}"
    return None


def read_reports(root: str | Path) -> dict[str, dict]:
    """Training reports of every SAE under ``root`` (hookpoint -> report); {} when none."""
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for p in sorted(root.rglob(REPORT)):
        report = read_report(p.parent)
        if report is not None:
            out[report.get("hookpoint", p.parent.name)] = report
    return out


def check_job(job: TrainJob, model) -> dict[str, int]:
    """Validate the job against the model and corpus; returns hookpoint -> width."""
    cfg, where = job.train, "parameters: train_sae"
    widths = {}
    for h in cfg.hookpoints:
        try:
            resolve_module(model, h)
        except AutointerpError as e:
            raise AutointerpError(f"{where}.hookpoints: {e}") from None
        widths[h] = hidden_size(model, h, "output")
        hcfg = cfg.for_hookpoint(h)
        n = hcfg.latents_for(widths[h])
        if hcfg.k > n:
            key = f"overrides.{h}.k" if "k" in cfg.overrides.get(h, {}) else "k"
            raise ConfigError(f"{where}.{key} ({hcfg.k}) is larger than the number of latents of the '{h}' SAE ({n}). "
                              "Lower k or raise expansion_factor / num_latents.")
    n_ctx, ctx_len = job.tokens.shape
    if cfg.holdout_contexts + cfg.batch_contexts > n_ctx:
        raise ConfigError(f"{where}: the corpus has {n_ctx} contexts, fewer than holdout_contexts ({cfg.holdout_contexts}) "
                          f"+ batch_contexts ({cfg.batch_contexts}). Lower them or raise corpus.n_tokens.")
    batch_tokens = cfg.batch_contexts * ctx_len
    if cfg.n_tokens < batch_tokens:
        raise ConfigError(f"{where}.n_tokens ({cfg.n_tokens}) is smaller than one batch (batch_contexts {cfg.batch_contexts} "
                          f"x ctx_len {ctx_len} = {batch_tokens} tokens). Raise n_tokens or lower batch_contexts.")
    return widths


def _lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(int(total * cfg.lr_warmup_fraction), 1)
    decay = int(total * cfg.lr_decay_fraction)
    if step < warm:
        return (step + 1) / warm
    if decay and step >= total - decay:
        return max((total - step) / decay, 0.0)
    return 1.0


def _batches(train_ctx: np.ndarray, cfg: TrainConfig, n_batches: int):
    """Seeded order of training contexts: each epoch a fresh permutation; n_batches batches."""
    order: list[int] = []
    epoch = 0
    need = n_batches * cfg.batch_contexts
    while len(order) < need:
        rng = np.random.default_rng([cfg.seed, epoch])
        order.extend(train_ctx[rng.permutation(len(train_ctx))].tolist())
        epoch += 1
    for b in range(n_batches):
        yield np.asarray(order[b * cfg.batch_contexts:(b + 1) * cfg.batch_contexts])


def _activations(model, ids: np.ndarray, points, bos: int | None) -> tuple[dict, torch.Tensor]:
    """Flattened activations per point for the token ids, with the non-BOS mask."""
    t = torch.from_numpy(np.ascontiguousarray(ids).astype(np.int64))
    acts = run_to_capture(model, t, points)
    keep = torch.ones(t.numel(), dtype=torch.bool) if bos is None else t.reshape(-1) != bos
    return {p: a.reshape(-1, a.shape[-1])[keep].float() for p, a in acts.items()}, keep


def train_saes(root: str | Path, job: TrainJob) -> dict[str, dict]:
    """Train the SAEs of every pending hookpoint under ``root``; returns every report there."""
    root = Path(root)
    todo = job.pending(root)
    if not todo:
        log.info("SAEs in %s are up to date", root)
        return read_reports(root)
    coders, reports = fit_saes(job, todo)
    for h, coder in coders.items():
        save_trained(root / h, coder, reports[h])
    return read_reports(root)


def fit_saes(job: TrainJob, hookpoints: list[str] | None = None) -> tuple[dict[str, SparseCoder], dict[str, dict]]:
    """Train SAEs on ``hookpoints`` (default: the job's) in one pass over the data, in memory;
    returns (hookpoint -> inference coder in raw units, hookpoint -> report)."""
    cfg = job.train
    todo = list(hookpoints or cfg.hookpoints)
    model, tokenizer = load_model(job.model)
    widths = check_job(job, model)
    torch.manual_seed(cfg.seed)
    n_ctx, ctx_len = job.tokens.shape
    perm = np.random.default_rng(cfg.seed).permutation(n_ctx)
    holdout, train_ctx = np.sort(perm[:cfg.holdout_contexts]), perm[cfg.holdout_contexts:]
    bos = tokenizer.bos_token_id if cfg.exclude_bos else None
    points = [(h, "output") for h in todo]
    n_batches = cfg.n_tokens // (cfg.batch_contexts * ctx_len)
    batches = _batches(train_ctx, cfg, n_batches)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.autocast and job.model.device == "cpu")

    first = next(batches)
    with autocast:
        acts, _ = _activations(model, job.tokens[first], points, bos)
    saes, opts, scales, lrs = {}, {}, {}, {}
    hcfgs = {h: cfg.for_hookpoint(h) for h in todo}
    for h in todo:
        hcfg = hcfgs[h]
        g = torch.Generator().manual_seed(hookpoint_seed(cfg.seed, h))
        sae = TopKSAE(widths[h], hcfg.latents_for(widths[h]), hcfg.k, g)
        x = acts[(h, "output")]
        mean = x.mean(0)
        # one scalar per hookpoint: RMS distance to the mean becomes 1 per dimension (normalize: false: raw units)
        scales[h] = float((x - mean).pow(2).sum(1).mean().sqrt() / math.sqrt(x.shape[1])) if cfg.normalize else 1.0
        xn = x / scales[h]
        with torch.no_grad():
            if hcfg.b_dec_init == "mean":
                sae.b_dec.copy_(xn.mean(0))
            elif hcfg.b_dec_init == "geometric_median":
                sae.b_dec.copy_(geometric_median(xn))
        saes[h] = sae
        lrs[h] = hcfg.lr or 2e-4 / math.sqrt(sae.num_latents / 2 ** 14)
        opts[h] = torch.optim.Adam(sae.parameters(), lr=lrs[h], eps=6.25e-10, fused=True)
    since_fired = {h: torch.zeros(saes[h].num_latents, dtype=torch.long) for h in todo}
    curves = {h: {"tokens": [], "loss": [], "fvu": [], "auxk": [], "dead_fraction": []} for h in todo}
    running = {h: [0.0, 0.0, 0.0, 0] for h in todo}  # loss, fvu, auxk sums, count

    total_steps_est = n_batches * max(1, math.ceil((cfg.batch_contexts * ctx_len) / cfg.sae_batch_tokens))
    bar = tqdm(total=n_batches * cfg.batch_contexts * ctx_len, unit="tok", unit_scale=True,
               desc=f"train {len(todo)} SAE{'s' * (len(todo) > 1)}", disable=not job.progress)
    step, seen, t_start = 0, 0, time.perf_counter()
    batch_ids = first
    for b in range(n_batches):
        if b > 0:
            batch_ids = next(batches)
            with autocast:
                acts, _ = _activations(model, job.tokens[batch_ids], points, bos)
        n_tok = next(iter(acts.values())).shape[0]
        for s in range(0, n_tok, cfg.sae_batch_tokens):
            factor = _lr_factor(step, total_steps_est, cfg)
            for h in todo:
                sae, opt = saes[h], opts[h]
                x = acts[(h, "output")][s:s + cfg.sae_batch_tokens] / scales[h]
                dead = since_fired[h] > hcfgs[h].dead_tokens
                for group in opt.param_groups:
                    group["lr"] = lrs[h] * factor
                loss, fvu, auxk, idx, _ = sae(x, dead, hcfgs[h].auxk_alpha, low_precision=cfg.autocast)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                sae.remove_parallel_grad()
                opt.step()
                sae.normalize_decoder()
                fired = torch.zeros(sae.num_latents, dtype=torch.bool)
                fired[idx.reshape(-1)] = True
                since_fired[h] += x.shape[0]
                since_fired[h][fired] = 0
                r = running[h]
                r[0] += loss.item()
                r[1] += fvu.item()
                r[2] += auxk.item()
                r[3] += 1
            step += 1
            if step % cfg.log_every == 0:
                _log_point(curves, running, since_fired, hcfgs, seen + s + x.shape[0])
                bar.set_postfix(loss=f"{np.mean([curves[h]['loss'][-1] for h in todo]):.3f}",
                                fvu=f"{np.mean([curves[h]['fvu'][-1] for h in todo]):.3f}")
        seen += n_tok
        bar.update(len(batch_ids) * ctx_len)
    if running[todo[0]][3]:
        _log_point(curves, running, since_fired, hcfgs, seen)
    bar.close()
    seconds = time.perf_counter() - t_start

    return evaluate(job, model, bos, saes, scales, holdout, curves, seen, seconds)


def _log_point(curves: dict, running: dict, since_fired: dict, hcfgs: dict[str, TrainConfig], tokens: int) -> None:
    """Append the running means since the last point to every SAE's loss curve."""
    for h, r in running.items():
        c = curves[h]
        c["tokens"].append(int(tokens))
        c["loss"].append(r[0] / r[3])
        c["fvu"].append(r[1] / r[3])
        c["auxk"].append(r[2] / r[3])
        c["dead_fraction"].append(float((since_fired[h] > hcfgs[h].dead_tokens).float().mean()))
        running[h] = [0.0, 0.0, 0.0, 0]


def holdout_activations(model, tokens: np.ndarray, holdout: np.ndarray, points, bos, batch_contexts: int,
                        autocast) -> dict:
    out: dict = {p: [] for p in points}
    for b in range(0, len(holdout), batch_contexts):
        with autocast:
            acts, _ = _activations(model, tokens[holdout[b:b + batch_contexts]], points, bos)
        for p in points:
            out[p].append(acts[p])
    return {p: torch.cat(v) for p, v in out.items()}


def evaluate(job: TrainJob, model, bos, saes: dict, scales: dict, holdout: np.ndarray, curves: dict, seen: int,
             seconds: float) -> tuple[dict[str, SparseCoder], dict[str, dict]]:
    cfg = job.train
    points = [(h, "output") for h in saes]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.autocast and job.model.device == "cpu")
    held = holdout_activations(model, job.tokens, holdout, points, bos, cfg.batch_contexts, autocast)
    coders, reports = {}, {}
    for h, sae in saes.items():
        coder = sae.to_coder(scales[h], h)
        x = held[(h, "output")]
        with torch.inference_mode():
            vals, idx = coder.encode_topk(x)
            fired = torch.zeros(coder.num_latents, dtype=torch.bool)
            fired[idx[vals > 0]] = True
        coders[h] = coder
        reports[h] = {
            "hookpoint": h,
            "fingerprint": job.fingerprint(h),
            "fvu": coder_fvu(coder, x),
            "dead_fraction": float(1 - fired.float().mean()),
            "mean_l0": float((vals > 0).sum(-1).float().mean()),
            "final_loss": curves[h]["loss"][-1] if curves[h]["loss"] else float("nan"),
            "num_latents": coder.num_latents,
            "d_in": coder.d_in,
            "k": coder.k,
            "train_tokens": seen,
            "holdout_tokens": int(x.shape[0]),
            "tokens_per_s": seen / seconds if seconds else None,
            "input_scale": scales[h],
            "seconds": seconds,
            "config": as_dict(cfg.for_hookpoint(h)) | {"hookpoints": [h]},
            "model": job.model.name_or_path,
            "curve": curves[h],
        }
        log.info("SAE %s: FVU %.3f, dead %.1f%%, L0 %.1f", h, reports[h]["fvu"], 100 * reports[h]["dead_fraction"],
                 reports[h]["mean_l0"])
    return coders, reports


def save_trained(folder: Path, coder: SparseCoder, report: dict) -> None:
    """Write one SAE in sparsify's layout; its report goes last and marks it complete."""
    old = folder / REPORT
    if old.exists():
        old.unlink()
    save_sparsify(coder, folder, {"hookpoint": report["hookpoint"], "trained_by": "autointerp"})
    tmp = folder / (REPORT + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(folder / REPORT)
