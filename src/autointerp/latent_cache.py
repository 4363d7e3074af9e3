"""On-disk sparse latent activations: streamed, compact, resumable.

Layout of one hookpoint's cache (``root``)::

    meta.json                      # written first; ``complete: true`` only after the last chunk
    stats.safetensors              # per latent: firing_count, max_activation, sum_activation
    chunks/c00000/s0000.safetensors  # token chunk 0, latents [0, shard_size)
    chunks/c00000/s0001.safetensors  # token chunk 0, latents [shard_size, 2*shard_size)
    chunks/c00000/stats.safetensors
    ...

Each shard file is token-major CSR over the chunk's tokens: ``counts`` (uint16, non-zeros per
token), ``latents`` (uint16, relative to the shard's first latent) and ``values``
(float16). That is 4 bytes per non-zero plus 2 per token and shard, and the token ids are stored
once for the whole corpus, not per shard. A chunk is written into ``c00000.tmp`` and renamed
when complete, so a killed run never leaves a chunk that looks complete but is not; a
re-run only computes the missing chunks.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from .errors import AutointerpError
from .jobs import atomic_path, read_meta, write_meta

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FP16_MAX = 65504.0


@dataclass
class ShardActivations:
    """The non-zero activations of a latent range, sorted by latent then token.

    ``tokens`` are flat token positions (context * ctx_len + position), ``latents`` absolute
    latent indices, ``values`` float32.
    """

    start: int
    end: int
    tokens: np.ndarray
    latents: np.ndarray
    values: np.ndarray

    def latent_slices(self) -> dict[int, slice]:
        """Latent -> slice into the arrays, for every latent of the range that fires."""
        if len(self.latents) == 0:
            return {}
        bounds = np.flatnonzero(np.diff(self.latents)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(self.latents)]])
        return {int(self.latents[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}


class LatentCacheWriter:
    def __init__(self, root: str | Path, *, meta: dict, num_chunks: int):
        self.root = Path(root)
        self.meta = dict(meta, format_version=FORMAT_VERSION, num_chunks=num_chunks, complete=False)
        old = read_meta(self.root)
        if old is not None and old.get("fingerprint") != meta.get("fingerprint"):
            log.warning("cache %s was built with another configuration; rebuilding it", self.root)
            shutil.rmtree(self.root)
        (self.root / "chunks").mkdir(parents=True, exist_ok=True)
        for tmp in (self.root / "chunks").glob("*.tmp"):
            shutil.rmtree(tmp)  # left by a killed run
        if old is None or not (self.root / "meta.json").exists():
            write_meta(self.root, self.meta)
        else:
            self.meta = dict(old, complete=False) if old.get("complete") is False else old

    @property
    def shard_size(self) -> int:
        return self.meta["shard_size"]

    def chunk_dir(self, i: int) -> Path:
        return self.root / "chunks" / f"c{i:05d}"

    def pending_chunks(self) -> list[int]:
        return [i for i in range(self.meta["num_chunks"]) if not self.chunk_dir(i).is_dir()]

    def write_chunk(self, i: int, values: torch.Tensor, indices: torch.Tensor) -> int:
        """Store chunk ``i`` from per-token padded sparse latents [n_tokens, m]; returns non-zeros."""
        n_tok = values.shape[0]
        num_latents, shard_size = self.meta["num_latents"], self.shard_size
        vals = values.detach().float().cpu().numpy()
        mask = vals > 0
        lat = indices.detach().cpu().numpy()[mask].astype(np.int64)  # token-major order
        val = np.minimum(vals[mask], FP16_MAX)
        tok = np.repeat(np.arange(n_tok), mask.sum(1))
        stats = {
            "firing_count": np.bincount(lat, minlength=num_latents),
            "max_activation": torch.zeros(num_latents)
            .scatter_reduce_(0, torch.from_numpy(lat), torch.from_numpy(val), "amax")
            .numpy(),
            "sum_activation": np.bincount(lat, weights=val, minlength=num_latents),
        }
        # split by shard, keeping token order inside each shard (a stable sort on small keys)
        n_shards = -(-num_latents // shard_size)
        bounds = [0, len(lat)]
        if n_shards > 1:
            shard = (lat // shard_size).astype(np.uint16 if n_shards < 65535 else np.int64)
            order = np.argsort(shard, kind="stable")
            tok, lat, val, shard = tok[order], lat[order], val[order], shard[order]
            bounds = np.searchsorted(shard, np.arange(n_shards + 1, dtype=shard.dtype))
        tmp = self.root / "chunks" / f"c{i:05d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for s in range(n_shards):
            a, b = int(bounds[s]), int(bounds[s + 1])
            save_numpy(
                {
                    "counts": np.bincount(tok[a:b], minlength=n_tok).astype(np.uint16),
                    "latents": (lat[a:b] - s * shard_size).astype(np.uint16),
                    "values": val[a:b].astype(np.float16),
                },
                str(tmp / f"s{s:04d}.safetensors"),
            )
        save_numpy(stats, str(tmp / "stats.safetensors"))
        tmp.rename(self.chunk_dir(i))
        return len(val)

    def finalize(self, **extra) -> dict:
        """Aggregate chunk statistics and mark the cache complete."""
        if self.pending_chunks():
            raise AutointerpError(f"cache {self.root} still misses chunks {self.pending_chunks()[:5]}.")
        n = self.meta["num_latents"]
        count = torch.zeros(n, dtype=torch.int64)
        vmax = torch.zeros(n)
        vsum = torch.zeros(n, dtype=torch.float64)
        for i in range(self.meta["num_chunks"]):
            st = load_file(str(self.chunk_dir(i) / "stats.safetensors"))
            count += st["firing_count"]
            vmax = torch.maximum(vmax, st["max_activation"])
            vsum += st["sum_activation"]
        with atomic_path(self.root / "stats.safetensors") as tmp:
            save_file({"firing_count": count, "max_activation": vmax, "sum_activation": vsum}, str(tmp))
        self.meta.update(extra, complete=True)
        write_meta(self.root, self.meta)
        return self.meta


class LatentCache:
    """Read side of a complete cache."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = read_meta(self.root)
        if meta is None:
            raise AutointerpError(f"no latent cache at '{self.root}'. Run `kedro run --pipelines cache` first.")
        self.meta = meta
        if not self.meta.get("complete"):
            raise AutointerpError(
                f"the latent cache at '{self.root}' is incomplete (a run stopped half-way). "
                "Run `kedro run --pipelines cache` again: it resumes where it stopped."
            )

    hookpoint = property(lambda self: self.meta["hookpoint"])
    num_latents = property(lambda self: self.meta["num_latents"])
    ctx_len = property(lambda self: self.meta["ctx_len"])
    n_contexts = property(lambda self: self.meta["n_contexts"])
    shard_size = property(lambda self: self.meta["shard_size"])
    chunk_contexts = property(lambda self: self.meta["chunk_contexts"])

    @property
    def n_tokens(self) -> int:
        return self.n_contexts * self.ctx_len

    @property
    def shard_ranges(self) -> list[tuple[int, int]]:
        n, s = self.num_latents, self.shard_size
        return [(a, min(a + s, n)) for a in range(0, n, s)]

    def stats(self) -> dict[str, np.ndarray]:
        st = load_file(str(self.root / "stats.safetensors"))
        out = {k: v.numpy() for k, v in st.items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_activation"] = np.where(
                out["firing_count"] > 0, out["sum_activation"] / np.maximum(out["firing_count"], 1), 0.0
            )
        out["frequency"] = out["firing_count"] / self.n_tokens
        return out

    def _chunks(self):
        for i in range(self.meta["num_chunks"]):
            yield i, self.root / "chunks" / f"c{i:05d}"

    def load_shard(self, s: int) -> ShardActivations:
        """All non-zeros of latent shard ``s``, sorted by latent then token."""
        start, end = self.shard_ranges[s]
        toks, lats, vals = [], [], []
        tokens_per_chunk = self.chunk_contexts * self.ctx_len
        for i, d in self._chunks():
            f = load_file(str(d / f"s{s:04d}.safetensors"))
            counts = f["counts"].to(torch.int32).long()
            toks.append(torch.repeat_interleave(torch.arange(len(counts)), counts) + i * tokens_per_chunk)
            lats.append(f["latents"].to(torch.int32).long() + start)
            vals.append(f["values"].float())
        tok = torch.cat(toks) if toks else torch.zeros(0, dtype=torch.long)
        lat = torch.cat(lats) if lats else torch.zeros(0, dtype=torch.long)
        val = torch.cat(vals) if vals else torch.zeros(0)
        order = torch.argsort(lat * self.n_tokens + tok)
        return ShardActivations(start, end, tok[order].numpy(), lat[order].numpy(), val[order].numpy())

    def shard_chunks(self, s: int):
        """Per token chunk, (absolute latents, values) of latent shard ``s``, one chunk file at a
        time: for passes over a shard too dense to hold whole (``load_shard``), such as the raw
        neurons of a wide MLP."""
        start, _ = self.shard_ranges[s]
        for _, d in self._chunks():
            f = load_file(str(d / f"s{s:04d}.safetensors"))
            yield f["latents"].to(torch.int32).numpy().astype(np.int64) + start, f["values"].float().numpy()

    def iter_shards(self):
        for s in range(len(self.shard_ranges)):
            yield self.load_shard(s)

    def latent_activations(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat token positions, values) where ``latent`` fires."""
        if not 0 <= latent < self.num_latents:
            raise AutointerpError(
                f"latent {latent} is out of range: hookpoint {self.hookpoint} has {self.num_latents} latents."
            )
        sh = self.load_shard(latent // self.shard_size)
        sl = sh.latent_slices().get(latent, slice(0, 0))
        return sh.tokens[sl], sh.values[sl]

    def chunk_rows(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token-major CSR of chunk ``i`` over all latents: (indptr [tokens+1], latents, values),
        latents absolute, each token's row ordered by shard."""
        d = self.root / "chunks" / f"c{i:05d}"
        toks, lats, vals = [], [], []
        for s, (start, _) in enumerate(self.shard_ranges):
            f = load_file(str(d / f"s{s:04d}.safetensors"))
            counts = f["counts"].to(torch.int32).numpy()
            toks.append(np.repeat(np.arange(len(counts)), counts))
            lats.append(f["latents"].to(torch.int32).numpy().astype(np.int64) + start)
            vals.append(f["values"].float().numpy())
        n_tok = len(counts)
        tok, lat, val = np.concatenate(toks), np.concatenate(lats), np.concatenate(vals)
        order = np.argsort(tok, kind="stable")
        indptr = np.zeros(n_tok + 1, dtype=np.int64)
        np.cumsum(np.bincount(tok, minlength=n_tok), out=indptr[1:])
        return indptr, lat[order], val[order]

    def dense(self, flat_tokens: np.ndarray) -> np.ndarray:
        """Dense activations [len(flat_tokens), num_latents] for a few tokens (for checks)."""
        flat_tokens = np.asarray(flat_tokens)
        out = np.zeros((len(flat_tokens), self.num_latents), dtype=np.float32)
        tokens_per_chunk = self.chunk_contexts * self.ctx_len
        for row, t in enumerate(flat_tokens):
            i, local = divmod(int(t), tokens_per_chunk)
            indptr, lat, val = self.chunk_rows(i)
            out[row, lat[indptr[local] : indptr[local + 1]]] = val[indptr[local] : indptr[local + 1]]
        return out

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "chunks").rglob("s*.safetensors"))
