"""The resumable sampling job of one hookpoint (see the package docstring for the folder layout)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..config import as_dict
from ..dictionaries import DictionaryConfig
from ..errors import AutointerpError, ConfigError
from ..examples import EXAMPLE_SCHEMA, read_examples
from ..jobs import array_digest, atomic_path, digest, file_digest, read_meta, write_meta
from ..latent_cache import LatentCache
from ..models import ModelConfig
from .config import LATENT_GROUP, OK, SampleConfig
from .sampler import LATENT_COLUMNS, Sampler, latent_row
from .selection import select_latents

log = logging.getLogger(__name__)
ROWS_PER_WRITE = 8192  # example rows gathered before they are written (one parquet row group)


@dataclass
class SampleJob:
    """Everything needed to sample one hookpoint; run by the catalog's dataset (resumable).

    The ``sample`` node returns one job for both the examples and the latents table (one
    folder): ``run`` does the work once per folder and answers a second call from memory."""

    hookpoint: str
    tokens: np.ndarray
    cache: LatentCache
    model: ModelConfig
    dictionary: DictionaryConfig
    config: SampleConfig
    progress: bool = True
    matched: list[int] | None = None  # selection.mode matched: the hookpoint's matched latents
    _done: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        config = as_dict(self.config)  # this hookpoint's notion of "active" only, not the others'
        config.update(active_threshold=as_dict(self.config.threshold_for(self.hookpoint)), active_thresholds=None)
        if self.config.selection.mode == "matched":  # other modes keep their fingerprints
            config["selection"]["matched"] = sorted(int(i) for i in self.matched or [])
        return digest(
            {
                "hookpoint": self.hookpoint,
                "tokens": array_digest(self.tokens),
                "cache": self.cache.meta.get("fingerprint"),
                "model": self.model.name_or_path,
                "dictionary": as_dict(self.dictionary),
                "files": file_digest(self.dictionary.path) if self.config.negatives.uses_neighbours else "",
                "config": config,
            }
        )

    def run(self, root: str | Path) -> dict:
        key = str(Path(root).resolve())
        if key not in self._done:
            self._done[key] = sample_hookpoint(root, self)
        return self._done[key]


def _decoder_directions(job: SampleJob, model) -> np.ndarray | None:
    from ..dictionaries import load_dictionary

    d = load_dictionary(job.dictionary, job.hookpoint, model)
    W = getattr(d, "W_dec", None)
    if W is None:
        return None
    W = W.detach().float().numpy()
    return W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)


def _part_name(start: int, end: int) -> str:
    return f"latents_{start:06d}_{end - 1:06d}.parquet"


def _check(job: SampleJob) -> None:
    cfg, cache = job.config, job.cache
    if cfg.window_len > cache.ctx_len:
        raise ConfigError(
            f"parameters: sample.window_len ({cfg.window_len}) is longer than the cached contexts "
            f"({cache.ctx_len} tokens). Lower sample.window_len or raise corpus.ctx_len."
        )
    if job.tokens.shape != (cache.n_contexts, cache.ctx_len):
        raise AutointerpError(
            f"corpus_tokens has shape {job.tokens.shape} but the latent cache of {job.hookpoint} was "
            f"built on {cache.n_contexts} x {cache.ctx_len} tokens. Rebuild it: `kedro run --pipelines cache`."
        )


def _sample_shard(root: Path, sampler: Sampler, s: int, todo: list[int], bar) -> None:
    """Sample the latents ``todo`` of cache shard ``s`` into its two partitions (examples, status)."""
    sh = sampler.load_shard(s)
    slices = sh.latent_slices()
    name = _part_name(sh.start, sh.end)
    status_rows = []
    with atomic_path(root / "examples" / name) as tmp:
        writer = pq.ParquetWriter(tmp, EXAMPLE_SCHEMA)
        blocks: list[dict] = []
        n_rows = 0
        for b in range(0, len(todo), LATENT_GROUP):
            group = todo[b : b + LATENT_GROUP]
            items = [
                (lat, sh.tokens[slices.get(lat, slice(0, 0))], sh.values[slices.get(lat, slice(0, 0))]) for lat in group
            ]
            for latent, (block, info) in zip(group, sampler.sample_latents(items)):
                status_rows.append(sampler.latent_row(latent, info["status"], info))
                if block is not None:
                    blocks.append(block)
                    n_rows += len(block["latent"])
            if n_rows >= ROWS_PER_WRITE:  # rows stream out: memory holds one group of rows, not the shard's
                writer.write_table(sampler.table(blocks))
                blocks, n_rows = [], 0
            bar.update(len(group))
        if blocks:
            writer.write_table(sampler.table(blocks))
        writer.close()
    with atomic_path(root / "status" / name) as tmp:
        pd.DataFrame(status_rows, columns=LATENT_COLUMNS).to_parquet(tmp, index=False)


def sample_hookpoint(root: str | Path, job: SampleJob) -> dict:
    """Sample every selected latent of one hookpoint into ``root`` (see the package docstring)."""
    root = Path(root)
    cfg, cache = job.config, job.cache
    _check(job)
    fp = job.fingerprint()
    old = read_meta(root)
    if old is not None and old.get("fingerprint") == fp and old.get("complete"):
        log.info("examples %s are complete and up to date", root)
        return old
    if (old is None or old.get("fingerprint") != fp) and root.exists():
        shutil.rmtree(root)  # another configuration's (or unidentifiable) partitions
    for d in ("examples", "status"):
        (root / d).mkdir(parents=True, exist_ok=True)
        for tmp in (root / d).glob("*.tmp"):
            tmp.unlink()
    write_meta(root, {"hookpoint": job.hookpoint, "fingerprint": fp, "complete": False})

    stats = cache.stats()
    selected, skipped = select_latents(stats, cache.num_latents, cfg.selection, cfg.seed, job.hookpoint, job.matched)
    by_shard: dict[int, list[int]] = {}
    for latent in selected:
        by_shard.setdefault(latent // cache.shard_size, []).append(latent)
    pending = [s for s in sorted(by_shard) if not (root / "status" / _part_name(*cache.shard_ranges[s])).exists()]

    t0 = time.perf_counter()
    n_done = sum(len(by_shard[s]) for s in pending)
    if pending:
        from ..models import load_model

        model, tokenizer = load_model(job.model)
        decoder = None
        if cfg.negatives.uses_neighbours and cfg.negatives.neighbour_source == "decoder":
            decoder = _decoder_directions(job, model)
            if decoder is None:
                log.info("%s: the dictionary has no decoder; neighbours by co-occurrence", job.hookpoint)
        sampler = Sampler(job, tokenizer, decoder)
        sampler.build_pool(set(pending))
        with tqdm(total=n_done, unit="latent", desc=f"sample {job.hookpoint}", disable=not job.progress) as bar:
            for s in pending:
                _sample_shard(root, sampler, s, by_shard[s], bar)
    seconds = time.perf_counter() - t0

    # the latents table: sampled latents (from the partitions) and the ones skipped before sampling
    parts = [pd.read_parquet(f) for f in sorted((root / "status").glob("*.parquet"))]
    if skipped:
        parts.append(
            pd.DataFrame(
                [latent_row(job.hookpoint, stats, cache.num_latents, i, r) for i, r in skipped.items()],
                columns=LATENT_COLUMNS,
            )
        )
    latents = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LATENT_COLUMNS)
    latents = latents.sort_values("latent", kind="stable").reset_index(drop=True)
    if not any((root / "examples").glob("*.parquet")):
        pq.write_table(EXAMPLE_SCHEMA.empty_table(), root / "examples" / "empty.parquet")
    with atomic_path(root / "latents.parquet") as tmp:
        latents.to_parquet(tmp, index=False)
    meta = {
        "hookpoint": job.hookpoint,
        "fingerprint": fp,
        "complete": True,
        "n_latents": int(len(latents)),
        "n_ok": int((latents["status"] == OK).sum()) if len(latents) else 0,
        "seconds": seconds,
    }
    if n_done and seconds:
        meta["latents_per_s"] = n_done / seconds
    write_meta(root, meta)
    return meta


def read_latents(root: str | Path) -> pd.DataFrame:
    p = Path(root) / "latents.parquet"
    if not p.exists():
        raise AutointerpError(f"no latents table at '{p}'. Run `kedro run --pipelines sample` first.")
    return pd.read_parquet(p)


def read_sampled_examples(root: str | Path) -> pd.DataFrame:
    return read_examples(Path(root) / "examples")
