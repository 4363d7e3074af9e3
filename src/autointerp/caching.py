"""Cache the sparse latent activations of one hookpoint over the corpus, streaming and resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import as_dict
from .dictionaries import DictionaryConfig, load_dictionary
from .errors import ConfigError
from .latent_cache import LatentCacheWriter
from .models import ModelConfig, load_model, run_to_capture

log = logging.getLogger(__name__)


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


def file_digest(path: str | Path | None) -> str:
    """A cheap identity of a file or folder: names, sizes and modification times."""
    if not path:
        return ""
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    h = hashlib.sha1()
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def tokens_digest(tokens: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(tokens).tobytes()).hexdigest()[:16]


@dataclass
class CacheJob:
    """Everything needed to (re)build one hookpoint's cache; run by the catalog's dataset."""

    hookpoint: str
    tokens: np.ndarray
    model: ModelConfig
    dictionary: DictionaryConfig
    cache: CacheConfig
    progress: bool = True

    def fingerprint(self) -> str:
        blob = json.dumps({"hookpoint": self.hookpoint, "model": as_dict(self.model) | {"batch_size": 0},
                           "dictionary": as_dict(self.dictionary), "files": file_digest(self.dictionary.path),
                           "tokens": tokens_digest(self.tokens), "cache": as_dict(self.cache)}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def run(self, root: str | Path) -> dict:
        return cache_hookpoint(root, self)


def cache_hookpoint(root: str | Path, job: CacheJob) -> dict:
    """Compute the missing chunks of the cache at ``root`` and finalise it; returns its meta."""
    n_ctx, ctx_len = job.tokens.shape
    cc = job.cache.chunk_contexts
    num_chunks = -(-n_ctx // cc)
    fp = job.fingerprint()
    meta_path = Path(root) / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("complete") and old.get("fingerprint") == fp:
            log.info("cache %s is complete and up to date", root)
            return old
    model, tokenizer = load_model(job.model)
    dictionary = load_dictionary(job.dictionary, job.hookpoint, model)
    points = [dictionary.reads]
    meta = {"hookpoint": job.hookpoint, "num_latents": dictionary.num_latents, "ctx_len": ctx_len,
            "n_contexts": n_ctx, "chunk_contexts": cc, "shard_size": job.cache.shard_size, "fingerprint": fp,
            "dictionary": {"format": job.dictionary.format, "path": job.dictionary.path,
                           "source": dictionary.source, "reads": list(dictionary.reads)},
            "model": job.model.name_or_path}
    writer = LatentCacheWriter(root, meta=meta, num_chunks=num_chunks)
    pending = writer.pending_chunks()
    bos = tokenizer.bos_token_id if job.cache.exclude_bos else None
    bs = job.model.batch_size
    seconds, done_tokens = 0.0, 0
    bar = tqdm(total=len(pending) * cc * ctx_len, unit="tok", unit_scale=True, desc=f"cache {job.hookpoint}",
               disable=not job.progress)
    for i in pending:
        t0 = time.perf_counter()
        chunk = torch.from_numpy(job.tokens[i * cc:(i + 1) * cc].astype(np.int64))
        vals, idxs = [], []
        for b in range(0, len(chunk), bs):
            ids = chunk[b:b + bs]
            acts = run_to_capture(model, ids, points)[dictionary.reads]
            x = acts.reshape(-1, acts.shape[-1])
            with torch.inference_mode():
                v, ix = dictionary.sparse_encode(x)
            if bos is not None:
                v = v.masked_fill((ids.reshape(-1) == bos).unsqueeze(1), 0)
            vals.append(v.float())
            idxs.append(ix)
        width = max(v.shape[1] for v in vals)
        vals = torch.cat([torch.nn.functional.pad(v, (0, width - v.shape[1])) for v in vals])
        idxs = torch.cat([torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in idxs])
        writer.write_chunk(i, vals, idxs)
        seconds += time.perf_counter() - t0
        done_tokens += chunk.numel()
        bar.update(chunk.numel())
        bar.set_postfix(tok_s=f"{done_tokens / max(seconds, 1e-9):,.0f}")
    bar.close()
    extra = {"tokens_per_s": done_tokens / seconds} if seconds else {}
    return writer.finalize(**extra)
