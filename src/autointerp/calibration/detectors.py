"""Known-answer latents: exact single-token detectors at the embedding output.

Latent ``j`` reads the embedding output (``embed_tokens``) and computes
``relu((x . w_j + b_j) * 2 / margin_j)``, where ``w_j`` is the unit direction of its token's
embedding row (or of that row minus the mean row, whichever separates better) and ``b_j`` lies
halfway between the token's own score and the highest score of every other row of the
embedding matrix. With ``margin_j`` (own minus best other) above 0 the latent is 1.0 on its
token and 0 on every other token of the vocabulary; a token whose margin is not positive is
refused. The detectors are written as a SAELens dictionary (``architecture: standard``, ReLU,
float32 arithmetic, so no low-precision path can blur the margin) and read back through
:func:`autointerp.dictionaries.load_dictionary` like any user's SAE.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from ..config import as_dict
from ..errors import AutointerpError
from ..jobs import array_digest, atomic_path, atomic_write_json, digest, read_meta, write_meta
from ..models import ModelConfig, load_model, resolve_module
from .config import CALIBRATION_HOOKPOINT, CalibrateConfig

log = logging.getLogger(__name__)

OK, REFUSED = "ok", "not_separable"
WORDS_FILE = "words.json"
WORD_COLUMNS = ["latent", "token_id", "word", "count", "windows", "margin", "direction", "status"]

# Function words (and Early Modern English ones: the default corpus has Shakespeare): a detector
# of "the" says nothing about whether a scorer reads meaning.
STOP_WORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing done down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just let like made make many may me might
more most much must my myself no nor not now of off on once one only or other our ours ourselves out over own
same say said see shall she should so some such than that the their theirs them themselves then there these
they this those through to too under until up upon very was we well were what when where which while who whom
why will with would yet you your yours yourself yourselves come came go went get got know take tell give good
thou thee thy thine hath doth art dost didst hast shalt wilt ye tis twas ere o oh ay nay aye sir enter exit
exeunt scene act
""".split()
)


def worked_example_words() -> set[str]:
    """Every word of the explainer's worked examples (examples, hints and answers), lower case:
    a known-answer word must not be one the explainer could echo."""
    from ..explainers import WORKED

    words: set[str] = set()
    for item in WORKED:
        for text in item:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", str(text)))
    return words


def _windows(positions: np.ndarray, ctx_len: int, window_len: int) -> int:
    """Non-overlapping windows of ``window_len`` inside contexts that hold one of ``positions``
    (flat, sorted): a greedy count, what the sampler can at most draw."""
    n, last_ctx, last = 0, -1, -(10**9)
    for p in positions.tolist():
        c = p // ctx_len
        if c != last_ctx or p - last >= window_len:
            n, last_ctx, last = n + 1, c, p
    return n


def choose_words(
    tokens: np.ndarray, tokenizer, cfg: CalibrateConfig, window_len: int, exclude: set[str] = frozenset()
) -> pd.DataFrame:
    """The known-answer words: ``cfg.n_words`` drawn (seeded) among the ``cfg.candidates`` most
    frequent eligible single-token words of the corpus (see :class:`CalibrateConfig`)."""
    flat = np.asarray(tokens).reshape(-1)
    ctx_len = np.asarray(tokens).shape[-1]
    need = cfg.n_train + cfg.n_test
    counts = np.bincount(flat)
    pattern = re.compile(rf"^ [a-z]{{{cfg.min_chars},}}$")
    eligible = []
    for tid in np.argsort(-counts, kind="stable"):
        if counts[tid] < need or len(eligible) >= cfg.candidates:
            break
        word = tokenizer.decode([int(tid)])
        if not pattern.match(word) or word.strip() in STOP_WORDS or word.strip() in exclude:
            continue
        w = _windows(np.flatnonzero(flat == tid), ctx_len, window_len)
        if w >= need:
            eligible.append({"token_id": int(tid), "word": word.strip(), "count": int(counts[tid]), "windows": w})
    advice = (
        f"each needs {need} windows of {window_len} tokens: lower calibrate.n_train or calibrate.n_test, "
        "or use a larger corpus (corpus.n_tokens)"
    )
    if len(eligible) < 2:
        raise AutointerpError(
            f"calibrate: {len(eligible)} words of the corpus qualify as known answers, at least 2 "
            f"are needed ({advice})."
        )
    if len(eligible) < cfg.n_words:
        log.warning(
            "calibrate: only %d words qualify as known answers, not n_words=%d (%s)", len(eligible), cfg.n_words, advice
        )
    pick = np.random.default_rng(cfg.seed).choice(len(eligible), size=min(cfg.n_words, len(eligible)), replace=False)
    chosen = sorted((eligible[i] for i in pick), key=lambda r: r["word"])
    return pd.DataFrame([{"latent": j, **r} for j, r in enumerate(chosen)])


@torch.no_grad()
def embedding_matrix(model) -> torch.Tensor:
    """Every vocabulary row as the embedding output gives it (float32 [V, d]); the module is
    called, so a model that scales its embeddings inside it is read as it runs."""
    emb = resolve_module(model, CALIBRATION_HOOKPOINT)
    n = emb.weight.shape[0] if hasattr(emb, "weight") else emb.num_embeddings
    return torch.cat([emb(torch.arange(s, min(s + 8192, n))).float() for s in range(0, n, 8192)])


def _scores(E: torch.Tensor, tid: int, w: torch.Tensor) -> tuple[float, float]:
    """(own score, best score of any other row) along the unit direction ``w``."""
    with torch.no_grad():
        s = E @ w
        own = float(s[tid])
        s[tid] = -torch.inf
        return own, float(s.max())


def _optimised(E: torch.Tensor, tid: int, w0: torch.Tensor, steps: int = 100, hard: int = 1024) -> torch.Tensor:
    """A unit direction that maximises a soft minimum of own-minus-other scores (Adam from
    ``w0``) over the ``hard`` rows scoring highest, re-drawn from the whole vocabulary after each
    round: for tokens whose own embedding direction is beaten by a near-duplicate row."""
    w = w0.clone()
    for _ in range(3):
        with torch.no_grad():
            s = E @ w
            s[tid] = -torch.inf
            rival = E[s.topk(min(hard, E.shape[0] - 1)).indices]
        w = w.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.02)
        for _ in range(steps):
            u = w / w.norm()
            loss = torch.logsumexp((rival @ u - E[tid] @ u) * 30.0, 0) / 30.0
            opt.zero_grad()
            loss.backward()
            opt.step()
        w = (w / w.norm()).detach()
    return w


def _separator(E: torch.Tensor, tid: int, mean: torch.Tensor) -> tuple[torch.Tensor, float, float, str]:
    """The best of: the token's embedding direction, that direction centred on the mean row,
    and (only when neither separates) a direction optimised over the whole vocabulary."""
    best = None
    for name, d in (("embedding", E[tid]), ("centred", E[tid] - mean)):
        w = d / d.norm().clamp_min(1e-12)
        own, other = _scores(E, tid, w)
        if best is None or own - other > best[1] - best[2]:
            best = (w, own, other, name)
    if best[1] - best[2] <= 0:
        with torch.enable_grad():
            w = _optimised(E, tid, best[0])
        own, other = _scores(E, tid, w)
        if own - other > best[1] - best[2]:
            best = (w, own, other, "optimised")
    return best


def build_detectors(E: torch.Tensor, token_ids: list[int]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """SAELens tensors of the detectors of ``token_ids`` (one latent each, in order) and one
    record per token: ``margin`` (own score minus the best other row's, over the whole
    vocabulary) and ``status`` (``not_separable`` when the margin is not positive: that latent
    gets zero weights and never fires)."""
    d = E.shape[1]
    mean = E.mean(0)
    W_enc, b_enc, W_dec, info = (
        torch.zeros(d, len(token_ids)),
        torch.zeros(len(token_ids)),
        torch.zeros(len(token_ids), d),
        [],
    )
    for j, tid in enumerate(token_ids):
        w, own, other, name = _separator(E, int(tid), mean)
        margin = own - other
        ok = margin > 1e-4 * max(abs(own), 1.0)
        if ok:
            scale = 2.0 / margin
            W_enc[:, j] = w * scale
            b_enc[j] = -(own + other) / 2 * scale
            W_dec[j] = w
        else:
            b_enc[j] = -1.0
        info.append({"margin": margin, "direction": name, "status": OK if ok else REFUSED})
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": torch.zeros(d)}, info


def save_known_answers(
    folder: str | Path, tensors: dict[str, torch.Tensor], words: pd.DataFrame, model_name: str
) -> Path:
    """Write the detectors as a SAELens folder (``cfg.json``, ``sae_weights.safetensors``) with
    the words table beside them (``words.json``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "sae_weights.safetensors") as tmp:
        save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(tmp))
    d, n = tensors["W_enc"].shape
    atomic_write_json(
        folder / "cfg.json",
        {
            "architecture": "standard",
            "d_in": int(d),
            "d_sae": int(n),
            "hook_name": CALIBRATION_HOOKPOINT,
            "apply_b_dec_to_input": False,
            "model_name": model_name,
            "dtype": "float32",
            "autointerp": "known-answer detectors: latent j fires exactly on token words[j]",
        },
    )
    atomic_write_json(folder / WORDS_FILE, words[WORD_COLUMNS].to_dict("records"))
    return folder


@dataclass
class KnownAnswerDictionary:
    """A known-answer dictionary folder: its SAELens files and the words table."""

    path: Path
    words: pd.DataFrame = field(repr=False)


def read_known_answers(path: str | Path) -> KnownAnswerDictionary:
    p = Path(path)
    f = p / WORDS_FILE
    if not f.exists():
        raise AutointerpError(f"'{f}' does not exist yet: run `kedro run --pipelines calibrate`.")
    return KnownAnswerDictionary(p, pd.DataFrame(json.loads(f.read_text()), columns=WORD_COLUMNS))


@dataclass
class KnownAnswerJob:
    """Choose the words and write their detectors into a folder (skipped when up to date)."""

    tokens: np.ndarray
    model: ModelConfig
    config: CalibrateConfig
    window_len: int

    def fingerprint(self) -> str:
        c = self.config
        return digest(
            {
                "tokens": array_digest(self.tokens),
                "model": self.model.name_or_path,
                "window_len": self.window_len,
                "exclude": sorted(worked_example_words()),
                "config": {
                    k: v
                    for k, v in as_dict(c).items()
                    if k in ("n_words", "seed", "candidates", "min_chars", "n_train", "n_test")
                },
            }
        )

    def run(self, root: str | Path) -> dict:
        root = Path(root)
        fp = self.fingerprint()
        old = read_meta(root)
        if old is not None and old.get("fingerprint") == fp and old.get("complete"):
            return old
        model, tokenizer = load_model(self.model)
        words = choose_words(self.tokens, tokenizer, self.config, self.window_len, worked_example_words())
        tensors, info = build_detectors(embedding_matrix(model), words["token_id"].tolist())
        words = words.assign(**{k: [r[k] for r in info] for k in ("margin", "direction", "status")})
        for r in words[words["status"] != OK].itertuples():
            log.warning(
                "calibrate: the token %r cannot be separated from the rest of the vocabulary at %s "
                "(margin %.3g); refused",
                r.word,
                CALIBRATION_HOOKPOINT,
                r.margin,
            )
        write_meta(root, {"fingerprint": fp, "complete": False})
        save_known_answers(root, tensors, words, self.model.name_or_path)
        meta = {
            "fingerprint": fp,
            "complete": True,
            "words": words["word"].tolist(),
            "refused": words.loc[words["status"] != OK, "word"].tolist(),
        }
        write_meta(root, meta)
        return meta


def exactness(words: pd.DataFrame, cache, tokens: np.ndarray) -> pd.DataFrame:
    """``words`` with, per latent, the corpus positions holding its token (``expected``), those
    where the cached latent fires (``fired``), the false alarms and misses, and ``exact``."""
    flat = np.asarray(tokens).reshape(-1)
    fired: dict[int, np.ndarray] = {}
    for s in range(len(cache.shard_ranges)):
        sh = cache.load_shard(s)
        for lat, sl in sh.latent_slices().items():
            fired[lat] = np.unique(sh.tokens[sl])
    rows = []
    for r in words.to_dict("records"):
        want = np.flatnonzero(flat == r["token_id"])
        got = fired.get(int(r["latent"]), np.zeros(0, np.int64))
        fp, miss = len(np.setdiff1d(got, want)), len(np.setdiff1d(want, got))
        rows.append(
            {
                **r,
                "expected": len(want),
                "fired": len(got),
                "false_alarms": fp,
                "missed": miss,
                "exact": bool(fp == 0 and miss == 0 and len(want) > 0),
            }
        )
    out = pd.DataFrame(rows)
    out.loc[(out["status"] == OK) & ~out["exact"], "status"] = "not_exact"
    return out


def true_explanations(words: pd.DataFrame, hookpoint: str = CALIBRATION_HOOKPOINT) -> pd.DataFrame:
    """Rows of the explanations table (docs/formats.md) with the true explanation of each latent."""
    from .config import TRUE_EXPLAINER

    return pd.DataFrame(
        [
            {
                "hookpoint": hookpoint,
                "latent": int(r.latent),
                "explanation": f'the word "{r.word}"',
                "explainer": TRUE_EXPLAINER,
                "model": "known answer",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "seconds": 0.0,
                "failure": None,
                "raw": "",
            }
            for r in words.itertuples()
        ]
    )
