"""Cache the sparse latent activations of hookpoints over the corpus, streaming and resumable.

Several hookpoints are cached together from one forward pass per batch (stopped after the
deepest of them); each hookpoint keeps its own cache folder, fingerprint and per-chunk resume,
so a killed run resumes at the first chunk still missing for any hookpoint, and hookpoints
already complete are neither reloaded nor recomputed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import as_dict
from .dictionaries import DictionaryConfig, load_dictionary
from .errors import AutointerpError, ConfigError
from .jobs import array_digest, digest, file_digest, is_complete, read_meta
from .latent_cache import LatentCacheWriter
from .models import ModelConfig, load_model, run_to_capture

log = logging.getLogger(__name__)

__all__ = ["CacheConfig", "CacheJob", "HookpointCaches", "cache_hookpoints"]


@dataclass(frozen=True)
class CacheConfig:
    """``chunk_contexts`` contexts are computed and written together (the unit of resume);
    ``shard_size`` latents share a shard file."""

    chunk_contexts: int = 64
    shard_size: int = 2048
    exclude_bos: bool = True

    def validate(self, where: str) -> None:
        if self.chunk_contexts < 1:
            raise ConfigError(f"{where}.chunk_contexts must be at least 1.")
        if not 1 <= self.shard_size <= 65535:
            raise ConfigError(f"{where}.shard_size must be between 1 and 65535 (latents are stored as 2-byte offsets).")


@dataclass
class CacheJob:
    """Everything needed to (re)build one hookpoint's cache; run by the catalog's dataset.

    ``hookpoint`` is the key of the ``hookpoints`` parameter (the dictionary may read elsewhere,
    see :class:`DictionaryConfig.hookpoint`)."""

    hookpoint: str
    tokens: np.ndarray
    model: ModelConfig
    dictionary: DictionaryConfig
    cache: CacheConfig
    progress: bool = True

    def fingerprint(self) -> str:
        return digest(
            {
                "hookpoint": self.hookpoint,
                "model": as_dict(self.model) | {"batch_size": 0},
                "dictionary": as_dict(self.dictionary),
                "files": file_digest(self.dictionary.path),
                "tokens": array_digest(self.tokens),
                "cache": as_dict(self.cache),
            }
        )

    def run(self, root: str | Path) -> dict:
        return cache_hookpoints({Path(root): self})[Path(root)]


@dataclass
class HookpointCaches:
    """The caches of several hookpoints, built together: ``jobs`` maps a folder name (relative
    to the root the catalog gives) to its hookpoint's job."""

    jobs: dict[str, CacheJob]

    def run(self, root: str | Path) -> dict[str, dict]:
        metas = cache_hookpoints({Path(root) / name: job for name, job in self.jobs.items()})
        return {name: metas[Path(root) / name] for name in self.jobs}


def load_checked_dictionary(job: CacheJob, model):
    """The job's dictionary, checked against the model (hookpoint exists, files and layout
    readable, width matches); any problem is one ConfigError naming the ``hookpoints`` key."""
    try:
        return load_dictionary(job.dictionary, job.hookpoint, model)
    except AutointerpError as e:
        raise ConfigError(
            f"parameters: hookpoints.{job.hookpoint} ({job.dictionary.format}, path {job.dictionary.path}): {e} "
            f"Fix or remove the entry hookpoints.{job.hookpoint}; no hookpoint was cached."
        ) from None


def cache_hookpoints(targets: dict[Path, CacheJob]) -> dict[Path, dict]:
    """Compute the missing chunks of every cache in ``targets`` (folder -> job) and finalise
    them; returns each folder's meta. Jobs over the same tokens and model share one forward."""
    metas, pending = {}, {}
    for root, job in targets.items():
        if is_complete(root, job.fingerprint()):
            log.info("cache %s is complete and up to date", root)
            metas[root] = read_meta(root)
        else:
            pending[root] = job
    groups: dict[tuple, dict[Path, CacheJob]] = {}
    for root, job in pending.items():
        key = (id(job.tokens), job.model, job.cache.chunk_contexts, job.cache.exclude_bos)
        groups.setdefault(key, {})[root] = job
    for group in groups.values():
        metas.update(_cache_group(group))
    return {root: metas[root] for root in targets}


def _cache_group(targets: dict[Path, CacheJob]) -> dict[Path, dict]:
    first = next(iter(targets.values()))
    tokens, cc, bs = first.tokens, first.cache.chunk_contexts, first.model.batch_size
    n_ctx, ctx_len = tokens.shape
    num_chunks = -(-n_ctx // cc)
    model, tokenizer = load_model(first.model)
    # every dictionary is loaded and checked before the first forward
    dictionaries = {root: load_checked_dictionary(job, model) for root, job in targets.items()}
    writers = {}
    for root, job in targets.items():
        d = dictionaries[root]
        meta = {
            "hookpoint": job.hookpoint,
            "num_latents": d.num_latents,
            "ctx_len": ctx_len,
            "n_contexts": n_ctx,
            "chunk_contexts": cc,
            "shard_size": job.cache.shard_size,
            "fingerprint": job.fingerprint(),
            "dictionary": {
                "format": job.dictionary.format,
                "path": job.dictionary.path,
                "source": d.source,
                "reads": list(d.reads),
            },
            "model": job.model.name_or_path,
        }
        writers[root] = LatentCacheWriter(root, meta=meta, num_chunks=num_chunks)
    todo = {root: set(w.pending_chunks()) for root, w in writers.items()}
    chunks = sorted(set().union(*todo.values()))
    bos = tokenizer.bos_token_id if first.cache.exclude_bos else None
    names = ", ".join(job.hookpoint for job in targets.values())
    seconds, done_tokens = 0.0, 0
    bar = tqdm(
        total=len(chunks) * cc * ctx_len, unit="tok", unit_scale=True, desc=f"cache {names}", disable=not first.progress
    )
    for i in chunks:
        t0 = time.perf_counter()
        roots = [r for r in targets if i in todo[r]]
        chunk = torch.from_numpy(tokens[i * cc : (i + 1) * cc].astype(np.int64))
        encoded = encode_chunk(model, chunk, [dictionaries[r] for r in roots], bs, bos)
        for r, (vals, idxs) in zip(roots, encoded, strict=True):
            writers[r].write_chunk(i, vals, idxs)
        seconds += time.perf_counter() - t0
        done_tokens += chunk.numel()
        bar.update(chunk.numel())
        bar.set_postfix(tok_s=f"{done_tokens / max(seconds, 1e-9):,.0f}")
    bar.close()
    extra = {"tokens_per_s": done_tokens / seconds} if seconds else {}
    return {root: w.finalize(**extra) for root, w in writers.items()}


def encode_chunk(
    model, chunk: torch.Tensor, dictionaries: list, batch_size: int, bos: int | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per dictionary, the chunk's sparse latents (values [tokens, m], indices [tokens, m]),
    from one forward per batch that stops after the deepest point any dictionary reads."""
    points = list(dict.fromkeys(d.reads for d in dictionaries))
    out: list[tuple[list, list]] = [([], []) for _ in dictionaries]
    for b in range(0, len(chunk), batch_size):
        ids = chunk[b : b + batch_size]
        acts = run_to_capture(model, ids, points)
        is_bos = (ids.reshape(-1) == bos).unsqueeze(1) if bos is not None else None
        with torch.inference_mode():
            for d, (vals, idxs) in zip(dictionaries, out, strict=True):
                a = acts[d.reads]
                v, ix = d.sparse_encode(a.reshape(-1, a.shape[-1]))
                if is_bos is not None:
                    v = v.masked_fill(is_bos, 0)
                vals.append(v)
                idxs.append(ix)
    result = []
    for vals, idxs in out:
        width = max(v.shape[1] for v in vals)
        if any(v.shape[1] != width for v in vals):
            vals = [torch.nn.functional.pad(v, (0, width - v.shape[1])) for v in vals]
            idxs = [torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in idxs]
        result.append((torch.cat(vals), torch.cat(idxs)))
    return result
