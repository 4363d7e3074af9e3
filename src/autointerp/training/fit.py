"""Training: one forward of the subject model per batch feeds every SAE; held-out evaluation."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import as_dict
from ..dictionaries import SparseCoder
from ..errors import AutointerpError, ConfigError
from ..models import hidden_size, load_model, resolve_module, run_to_capture
from .config import TrainConfig
from .job import TrainJob, hookpoint_seed, read_reports, save_trained
from .sae import TopKSAE, coder_fvu, geometric_median

log = logging.getLogger(__name__)


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
            raise ConfigError(
                f"{where}.{key} ({hcfg.k}) is larger than the number of latents of the '{h}' SAE ({n}). "
                "Lower k or raise expansion_factor / num_latents."
            )
    n_ctx, ctx_len = job.tokens.shape
    if cfg.holdout_contexts + cfg.batch_contexts > n_ctx:
        raise ConfigError(
            f"{where}: the corpus has {n_ctx} contexts, fewer than holdout_contexts ({cfg.holdout_contexts}) "
            f"+ batch_contexts ({cfg.batch_contexts}). Lower them or raise corpus.n_tokens."
        )
    batch_tokens = cfg.batch_contexts * ctx_len
    if cfg.n_tokens < batch_tokens:
        raise ConfigError(
            f"{where}.n_tokens ({cfg.n_tokens}) is smaller than one batch (batch_contexts {cfg.batch_contexts} "
            f"x ctx_len {ctx_len} = {batch_tokens} tokens). Raise n_tokens or lower batch_contexts."
        )
    return widths


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
    holdout, train_ctx = np.sort(perm[: cfg.holdout_contexts]), perm[cfg.holdout_contexts :]
    bos = tokenizer.bos_token_id if cfg.exclude_bos else None
    points = [(h, "output") for h in todo]
    n_batches = cfg.n_tokens // (cfg.batch_contexts * ctx_len)
    batches = _batches(train_ctx, cfg, n_batches)
    autocast = job_autocast(job)

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
        lrs[h] = hcfg.lr or 2e-4 / math.sqrt(sae.num_latents / 2**14)
        opts[h] = torch.optim.Adam(sae.parameters(), lr=lrs[h], eps=6.25e-10, fused=True)
    since_fired = {h: torch.zeros(saes[h].num_latents, dtype=torch.long) for h in todo}
    curves = {h: {"tokens": [], "loss": [], "fvu": [], "auxk": [], "dead_fraction": []} for h in todo}
    running = {h: [0.0, 0.0, 0.0, 0] for h in todo}  # loss, fvu, auxk sums, count

    total_steps_est = n_batches * max(1, math.ceil((cfg.batch_contexts * ctx_len) / cfg.sae_batch_tokens))
    bar = tqdm(
        total=n_batches * cfg.batch_contexts * ctx_len,
        unit="tok",
        unit_scale=True,
        desc=f"train {len(todo)} SAE{'s' * (len(todo) > 1)}",
        disable=not job.progress,
    )
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
                x = acts[(h, "output")][s : s + cfg.sae_batch_tokens] / scales[h]
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
                bar.set_postfix(
                    loss=f"{np.mean([curves[h]['loss'][-1] for h in todo]):.3f}",
                    fvu=f"{np.mean([curves[h]['fvu'][-1] for h in todo]):.3f}",
                )
        seen += n_tok
        bar.update(len(batch_ids) * ctx_len)
    if running[todo[0]][3]:
        _log_point(curves, running, since_fired, hcfgs, seen)
    bar.close()
    seconds = time.perf_counter() - t_start

    return evaluate(job, model, bos, saes, scales, holdout, curves, seen, seconds)


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
        yield np.asarray(order[b * cfg.batch_contexts : (b + 1) * cfg.batch_contexts])


def _activations(model, ids: np.ndarray, points, bos: int | None) -> tuple[dict, torch.Tensor]:
    """Flattened activations per point for the token ids, with the non-BOS mask."""
    t = torch.from_numpy(np.ascontiguousarray(ids).astype(np.int64))
    acts = run_to_capture(model, t, points)
    keep = torch.ones(t.numel(), dtype=torch.bool) if bos is None else t.reshape(-1) != bos
    return {p: a.reshape(-1, a.shape[-1])[keep].float() for p, a in acts.items()}, keep


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


def job_autocast(job: TrainJob) -> torch.autocast:
    """The bf16 autocast the job trains and evaluates under (off where the CPU lacks native bf16)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=job.train.autocast and job.model.device == "cpu")


def holdout_activations(
    model, tokens: np.ndarray, holdout: np.ndarray, points, bos, batch_contexts: int, autocast
) -> dict:
    out: dict = {p: [] for p in points}
    for b in range(0, len(holdout), batch_contexts):
        with autocast:
            acts, _ = _activations(model, tokens[holdout[b : b + batch_contexts]], points, bos)
        for p in points:
            out[p].append(acts[p])
    return {p: torch.cat(v) for p, v in out.items()}


def evaluate(
    job: TrainJob, model, bos, saes: dict, scales: dict, holdout: np.ndarray, curves: dict, seen: int, seconds: float
) -> tuple[dict[str, SparseCoder], dict[str, dict]]:
    cfg = job.train
    points = [(h, "output") for h in saes]
    autocast = job_autocast(job)
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
        log.info(
            "SAE %s: FVU %.3f, dead %.1f%%, L0 %.1f",
            h,
            reports[h]["fvu"],
            100 * reports[h]["dead_fraction"],
            reports[h]["mean_l0"],
        )
    return coders, reports
