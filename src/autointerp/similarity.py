"""How alike are two dictionaries (SAEs)? Match their latents, then measure the matched pairs.

Following the paper's SAE-similarity section (Paulo et al. 2024, arXiv 2410.13928), with the
choices it leaves open made explicit as parameters (see ``SimilarityConfig``):

1. **Matching.** The latents of dictionary A are matched one-to-one to those of B (Hungarian
   assignment, ``scipy.optimize.linear_sum_assignment``) maximising the *co-activation* of the
   pair over the same cached tokens (both caches are built on the same ``corpus_tokens``),
   measured by the Jaccard index ``|A∩B| / (|A| + |B| - |A∩B|)`` of the sets of tokens where
   each latent fires. Dictionaries of different width are matched on the smaller one; the
   rest are reported as unmatched.
2. **Semantic agreement** of each matched pair, from their explanations: the cosine of the
   explanations' sentence embeddings (all-MiniLM-L6-v2), on the matched pairs where both
   latents have one, and, optionally, cross-scoring (:class:`CrossScorer`: A's explanation
   scored by the detection scorer on B's test examples, and back), on the matched pairs where
   A's latent has an explanation and B's has examples. Explanations and examples exist only for
   the sampled latents, so both report how many pairs they cover.
3. **Baselines**, so that a reader sees what explanations add: decoder-direction cosine
   matching (its own Hungarian assignment, only where both dictionaries write to the same
   space) and the co-activation Jaccard alone.

The SAE-level figure for each (matching, measure) is the distribution and mean of matched-pair
similarity, and the fraction of pairs whose similarity passes the measure's threshold, next
to the chance level (the same measure over a random one-to-one pairing).

The co-activation matrix is accumulated token-chunk by token-chunk from the sparse cache
(binary CSR ``tokens x latents`` per chunk, ``A^T B`` summed), never densifying the whole cache.
This module imports nothing from Kedro.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from .errors import AutointerpError, ConfigError
from .latent_cache import LatentCache

log = logging.getLogger(__name__)

MEASURES = ("jaccard", "explanation_cosine", "decoder_cosine", "cross_score")
DECODER_BASELINE = ("auto", "always", "never")


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Thresholds:
    """A matched pair 'agrees' under a measure when its similarity is at least the threshold."""

    jaccard: float = 0.5
    explanation_cosine: float = 0.7
    decoder_cosine: float = 0.7
    cross_score: float = 0.7


CROSS_METRICS = ("auroc", "balanced_accuracy")
FEW_PAIRS = ("report", "skip", "error")


@dataclass(frozen=True)
class CrossScoringConfig:
    """Cross-scoring: A's explanation judged by the detection scorer on B's test examples.

    Explanations and examples exist only for the *sampled* latents, and the sample stage draws
    them independently per hookpoint, so few matched pairs have both A's explanation and B's
    examples (the *eligible* pairs; the summary always reports how many). ``max_pairs``: at most
    this many eligible pairs are scored, highest co-activation first. ``both_ways``: also score
    B's explanation on A's examples where that exists. ``metric``: which per-pair number is the
    pair's ``cross_score`` (``auroc`` of P(yes), or ``balanced_accuracy``). ``min_pairs`` and
    ``on_few_pairs``: with fewer eligible pairs than ``min_pairs``, ``report`` scores them and
    flags the summary row (``note``) and the log, ``skip`` scores none and says so, ``error``
    stops with how to sample the matched latents.
    Off by default: one detection prompt per example (``score.n_activating + n_non_activating``
    per pair and direction).
    """

    enabled: bool = False
    max_pairs: int = 50
    both_ways: bool = True
    metric: str = "auroc"
    min_pairs: int = 10
    on_few_pairs: str = "report"

    def validate(self, where: str) -> None:
        if self.max_pairs < 1:
            raise ConfigError(f"{where}.max_pairs must be at least 1.")
        if self.metric not in CROSS_METRICS:
            raise ConfigError(f"{where}.metric: '{self.metric}' is not one of {', '.join(CROSS_METRICS)}.")
        if self.on_few_pairs not in FEW_PAIRS:
            raise ConfigError(f"{where}.on_few_pairs: '{self.on_few_pairs}' is not one of {', '.join(FEW_PAIRS)}.")


@dataclass(frozen=True)
class SimilarityConfig:
    """``pairs``: list of ``[hookpoint_a, hookpoint_b]`` to compare.

    ``decoder_baseline``: ``auto`` runs decoder-cosine matching when both dictionaries have
    decoders of the same width writing to the same kind of stream (both residual or both MLP
    outputs); ``always`` whenever the widths agree; ``never`` skips it.
    ``heatmap_latents``: how many matched latents (the most frequent) the heatmaps show.
    ``explanations``: read each hookpoint's explanations (the explain stage) for the
    explanation measures; false compares co-activation and decoders only.
    ``score_comparison``: also compare the score distributions of the configured hookpoints
    (the latents-vs-neurons experiment; needs the ``score`` stage).
    """

    pairs: list[list[str]] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)
    decoder_baseline: str = "auto"
    explanations: bool = True
    embedding_model: str = "all-MiniLM-L6-v2"
    cross_scoring: CrossScoringConfig = field(default_factory=CrossScoringConfig)
    heatmap_latents: int = 128
    seed: int = 0
    score_comparison: bool = False
    score_metric: str = "balanced_accuracy"
    bootstrap: int = 1000

    def validate(self, where: str) -> None:
        for i, p in enumerate(self.pairs or []):
            if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(h, str) for h in p):
                raise ConfigError(f"{where}.pairs[{i}]: expected [hookpoint_a, hookpoint_b], got {p!r}.")
            if p[0] == p[1]:
                raise ConfigError(f"{where}.pairs[{i}]: compares '{p[0]}' with itself; name two hookpoints.")
        if self.decoder_baseline not in DECODER_BASELINE:
            raise ConfigError(f"{where}.decoder_baseline: '{self.decoder_baseline}' is not one of {', '.join(DECODER_BASELINE)}.")
        if self.heatmap_latents < 2:
            raise ConfigError(f"{where}.heatmap_latents must be at least 2.")
        self.cross_scoring.validate(f"{where}.cross_scoring")

    def check_hookpoints(self, hookpoints: dict, where: str) -> None:
        for i, (a, b) in enumerate(self.pairs or []):
            for h in (a, b):
                if h not in (hookpoints or {}):
                    raise ConfigError(
                        f"{where}.pairs[{i}]: hookpoint '{h}' is not in parameters: hookpoints "
                        f"({', '.join(hookpoints or {}) or 'none'}). Add it there or fix the pair."
                    )


# ------------------------------------------------------------------ co-activation


def chunk_csr(cache: LatentCache, i: int) -> sp.csr_matrix:
    """Binary CSR ``[tokens of chunk i, num_latents]``: 1 where a latent fires on a token."""
    indptr, latents, _ = cache.chunk_rows(i)
    data = np.ones(len(latents), dtype=np.float32)
    return sp.csr_matrix((data, latents, indptr), shape=(len(indptr) - 1, cache.num_latents))


def _token_blocks(cache: LatentCache, bounds: np.ndarray):
    """CSR row blocks of ``cache`` for the token ranges ``bounds[j]:bounds[j+1]``."""
    per_chunk = cache.chunk_contexts * cache.ctx_len
    current, current_i = None, -1
    for a, b in zip(bounds[:-1], bounds[1:]):
        i = int(a) // per_chunk
        if i != current_i:
            current, current_i = chunk_csr(cache, i), i
        yield current[int(a) - i * per_chunk:int(b) - i * per_chunk]


@dataclass
class Coactivation:
    """``both[i, j]``: tokens where latent i of A and latent j of B both fire; ``count_a/b``:
    tokens where each fires; ``n_tokens`` compared."""

    both: np.ndarray
    count_a: np.ndarray
    count_b: np.ndarray
    n_tokens: int

    def jaccard(self) -> np.ndarray:
        both = self.both.astype(np.float32)
        union = self.count_a[:, None].astype(np.float32) + self.count_b[None, :].astype(np.float32) - both
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, both / np.maximum(union, 1), 0.0).astype(np.float32)


def check_same_corpus(cache_a: LatentCache, cache_b: LatentCache) -> None:
    if (cache_a.n_contexts, cache_a.ctx_len) != (cache_b.n_contexts, cache_b.ctx_len):
        raise AutointerpError(
            f"the caches of '{cache_a.hookpoint}' ({cache_a.n_contexts}x{cache_a.ctx_len} tokens) and "
            f"'{cache_b.hookpoint}' ({cache_b.n_contexts}x{cache_b.ctx_len}) were built on different corpora. "
            "Rebuild both with `kedro run --pipelines cache`."
        )


def coactivation(cache_a: LatentCache, cache_b: LatentCache, progress: bool = True) -> Coactivation:
    """Co-activation counts of every latent pair, from the sparse caches, chunk by chunk.

    Sparse chunks multiply as sparse matrices (``A^T B``); a chunk dense enough that a dense
    product is cheaper (raw MLP neurons) is densified on its own, never the whole cache.
    """
    check_same_corpus(cache_a, cache_b)
    na, nb = cache_a.num_latents, cache_b.num_latents
    n_tok = cache_a.n_tokens
    pa, pb = cache_a.chunk_contexts * cache_a.ctx_len, cache_b.chunk_contexts * cache_b.ctx_len
    bounds = np.unique(np.concatenate([np.arange(0, n_tok, pa), np.arange(0, n_tok, pb), [n_tok]]))
    both = np.zeros((na, nb), dtype=np.int32)
    count_a = np.zeros(na, dtype=np.int64)
    count_b = np.zeros(nb, dtype=np.int64)
    bar = tqdm(total=n_tok, unit="tok", unit_scale=True, desc=f"co-activation {cache_a.hookpoint} x {cache_b.hookpoint}",
               disable=not progress)
    for A, B in zip(_token_blocks(cache_a, bounds), _token_blocks(cache_b, bounds)):
        count_a += np.asarray(A.sum(0)).ravel().astype(np.int64)
        count_b += np.asarray(B.sum(0)).ravel().astype(np.int64)
        t = A.shape[0]
        sparse_work = A.nnz * B.nnz / max(t, 1)
        dense_work = t * na * nb
        if sparse_work * 30 > dense_work:
            both += np.rint(A.toarray().T @ B.toarray()).astype(np.int32)
        else:
            prod = (A.T.tocsr() @ B).tocoo()
            both[prod.row, prod.col] += np.rint(prod.data).astype(np.int32)  # no duplicate indices in a product
        bar.update(t)
    bar.close()
    return Coactivation(both, count_a, count_b, n_tok)


# ------------------------------------------------------------------ matching and measures


def match(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment maximising total similarity; ``min(na, nb)`` pairs, sorted by A's latent."""
    rows, cols = linear_sum_assignment(sim, maximize=True)
    order = np.argsort(rows)
    return rows[order], cols[order]


def decoder_cosine(W_a: np.ndarray, W_b: np.ndarray) -> np.ndarray:
    """Cosine of every pair of decoder directions (``W_dec`` rows, [n, d])."""
    a = np.asarray(W_a, dtype=np.float32)
    b = np.asarray(W_b, dtype=np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def stream_kind(hookpoint: str) -> str:
    """``mlp`` for MLP outputs, ``residual`` otherwise (sparsify names)."""
    return "mlp" if hookpoint.endswith(".mlp") else "residual"


def pair_kind(a: str, b: str) -> str:
    ka, kb = stream_kind(a), stream_kind(b)
    return ka if ka == kb else "mixed"


def shares_decoder_space(W_a, W_b, a: str, b: str, mode: str) -> bool:
    if mode == "never" or W_a is None or W_b is None or W_a.shape[1] != W_b.shape[1]:
        return False
    return mode == "always" or stream_kind(a) == stream_kind(b)


def explanation_table(explanations: pd.DataFrame | None, hookpoint: str) -> dict[int, str]:
    """latent -> explanation (failures and empty explanations dropped)."""
    if explanations is None:
        return {}
    if not isinstance(explanations, pd.DataFrame) or not {"latent", "explanation"} <= set(explanations.columns):
        raise AutointerpError(
            f"the explanations of '{hookpoint}' lack the columns latent and explanation (docs/formats.md). "
            "Re-run `kedro run --pipelines explain`."
        )
    df = explanations
    if "hookpoint" in df.columns:
        df = df[df["hookpoint"] == hookpoint] if (df["hookpoint"] == hookpoint).any() else df
    out = {}
    for lat, text in zip(df["latent"], df["explanation"]):
        if isinstance(text, str) and text.strip():
            out[int(lat)] = text.strip()
    return out


def _summary_row(matching: str, measure: str, values: np.ndarray, threshold: float, chance: float | None,
                 seed: int, bootstrap: int, **extra) -> dict:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    row = {"matching": matching, "measure": measure, "n": int(len(values)), "threshold": threshold,
           "mean": np.nan, "median": np.nan, "std": np.nan, "ci_low": np.nan, "ci_high": np.nan,
           "frac_above": np.nan, "chance": np.nan if chance is None else float(chance)}
    if len(values):
        lo, hi = bootstrap_ci(values, seed=seed, n=bootstrap)
        row.update(mean=float(values.mean()), median=float(np.median(values)), std=float(values.std()),
                   ci_low=lo, ci_high=hi, frac_above=float((values >= threshold).mean()))
    row.update(extra)
    return row


def bootstrap_ci(values, seed: int = 0, n: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1 or n < 1:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


@dataclass
class SimilarityResult:
    matched: pd.DataFrame          # one row per matched pair (co-activation matching)
    summary: pd.DataFrame          # one row per (matching, measure)
    matrices: dict[str, np.ndarray]  # measure -> [na, nb] (or the explained subset)
    unmatched: int
    decoder_matched: pd.DataFrame | None = None


def compare(cache_a: LatentCache, cache_b: LatentCache, *, cfg: SimilarityConfig | None = None,
            explanations_a: pd.DataFrame | None = None, explanations_b: pd.DataFrame | None = None,
            W_dec_a: np.ndarray | None = None, W_dec_b: np.ndarray | None = None,
            cross_score: Callable[[pd.DataFrame, CrossScoringConfig], "CrossScores"] | None = None,
            embed_fn: Callable[[list[str]], np.ndarray] | None = None, progress: bool = True) -> SimilarityResult:
    """Compare the dictionaries behind two caches of the same corpus (see the module docstring).

    ``cross_score`` (optional, usually a :class:`CrossScorer`) takes the matched pairs (with
    ``explanation_a/b``) and the cross-scoring config and returns :class:`CrossScores`;
    ``embed_fn`` defaults to :func:`autointerp.embeddings.embed`.
    """
    cfg = cfg or SimilarityConfig()
    a, b = cache_a.hookpoint, cache_b.hookpoint
    rng = np.random.default_rng(cfg.seed)
    th = cfg.thresholds
    co = coactivation(cache_a, cache_b, progress=progress)
    jac = co.jaccard()
    rows, cols = match(jac)
    unmatched = abs(cache_a.num_latents - cache_b.num_latents)
    matched = pd.DataFrame({
        "hookpoint_a": a, "latent_a": rows, "hookpoint_b": b, "latent_b": cols,
        "jaccard": jac[rows, cols], "coactivations": co.both[rows, cols],
        "count_a": co.count_a[rows], "count_b": co.count_b[cols],
    })
    matrices = {"jaccard": jac}
    perm_b = rng.permutation(cache_b.num_latents)[:len(rows)]
    live = (co.count_a[rows] > 0) & (co.count_b[cols] > 0)
    summary = [_summary_row("coactivation", "jaccard", matched["jaccard"].to_numpy(), th.jaccard,
                            float(jac[rows, perm_b].mean()), cfg.seed, cfg.bootstrap,
                            unmatched=unmatched, live_pairs=int(live.sum()))]

    # decoder directions: cosine of the co-activation matches, and the decoder-matching baseline
    decoder_matched = None
    if shares_decoder_space(W_dec_a, W_dec_b, a, b, cfg.decoder_baseline):
        dec = decoder_cosine(W_dec_a, W_dec_b)
        matrices["decoder_cosine"] = dec
        matched["decoder_cosine"] = dec[rows, cols]
        chance = float(dec[rows, perm_b].mean())
        summary.append(_summary_row("coactivation", "decoder_cosine", matched["decoder_cosine"].to_numpy(),
                                    th.decoder_cosine, chance, cfg.seed, cfg.bootstrap, unmatched=unmatched))
        drows, dcols = match(dec)
        decoder_matched = pd.DataFrame({"hookpoint_a": a, "latent_a": drows, "hookpoint_b": b, "latent_b": dcols,
                                        "decoder_cosine": dec[drows, dcols], "jaccard": jac[drows, dcols]})
        summary.append(_summary_row("decoder", "decoder_cosine", decoder_matched["decoder_cosine"].to_numpy(),
                                    th.decoder_cosine, chance, cfg.seed, cfg.bootstrap, unmatched=unmatched))
        summary.append(_summary_row("decoder", "jaccard", decoder_matched["jaccard"].to_numpy(), th.jaccard,
                                    float(jac[rows, perm_b].mean()), cfg.seed, cfg.bootstrap, unmatched=unmatched))
        dmap = dict(zip(drows.tolist(), dcols.tolist()))
        summary[-1]["agreement_with_coactivation"] = float(np.mean([dmap.get(int(r)) == int(c) for r, c in zip(rows, cols)]))

    # explanations: semantic agreement of matched pairs where both have one
    ex_a, ex_b = explanation_table(explanations_a, a), explanation_table(explanations_b, b)
    matched["explanation_a"] = [ex_a.get(int(r)) for r in rows]
    matched["explanation_b"] = [ex_b.get(int(c)) for c in cols]
    if ex_a and ex_b:
        embed_fn = embed_fn or _default_embed(cfg.embedding_model)
        la, lb = sorted(ex_a), sorted(ex_b)
        ea = embed_fn([ex_a[i] for i in la])
        eb = embed_fn([ex_b[j] for j in lb])
        cos = (ea @ eb.T).astype(np.float32)
        matrices["explanation_cosine"] = cos
        ia = {lat: i for i, lat in enumerate(la)}
        ib = {lat: j for j, lat in enumerate(lb)}
        both_mask = np.array([int(r) in ia and int(c) in ib for r, c in zip(rows, cols)], dtype=bool)
        ec = np.full(len(rows), np.nan, dtype=np.float32)
        if both_mask.any():
            ec[both_mask] = [cos[ia[int(r)], ib[int(c)]] for r, c in zip(rows[both_mask], cols[both_mask])]
        matched["explanation_cosine"] = ec
        # chance: the same explanations paired at random (both explained, different pairing)
        k = min(len(la), len(lb), 10000)
        chance = float(cos[rng.permutation(len(la))[:k], rng.permutation(len(lb))[:k]].mean())
        summary.append(_summary_row("coactivation", "explanation_cosine", ec, th.explanation_cosine, chance,
                                    cfg.seed, cfg.bootstrap, explained_a=len(ex_a), explained_b=len(ex_b),
                                    unmatched=unmatched))
        if decoder_matched is not None:
            dec_ec = np.array([cos[ia[int(r)], ib[int(c)]] if int(r) in ia and int(c) in ib else np.nan
                               for r, c in zip(decoder_matched["latent_a"], decoder_matched["latent_b"])], dtype=np.float32)
            decoder_matched["explanation_cosine"] = dec_ec
            summary.append(_summary_row("decoder", "explanation_cosine", dec_ec, th.explanation_cosine, chance,
                                        cfg.seed, cfg.bootstrap, unmatched=unmatched))
    else:
        log.warning("no explanations for %s: explanation-based similarity skipped",
                    " and ".join(h for h, e in ((a, ex_a), (b, ex_b)) if not e))
    if cross_score is not None:
        summary.extend(_cross_summary(matched, cross_score(matched, cfg.cross_scoring), cfg))
    summary = pd.DataFrame(summary)
    summary.insert(0, "hookpoint_b", b)
    summary.insert(0, "hookpoint_a", a)
    return SimilarityResult(matched, summary, matrices, unmatched, decoder_matched)


# ------------------------------------------------------------------ cross-scoring


@dataclass
class CrossScores:
    """Per matched pair (index of the matched table): ``cross_score`` (A's explanation on B's
    examples, the configured metric), ``cross_auroc``, ``cross_balanced_accuracy``, ``cross_n``,
    ``cross_n_failed`` and, both ways, the same with ``_ba`` (B's explanation on A's examples).
    ``coverage``: counts of the pairs that could be scored and why the others could not."""

    table: pd.DataFrame
    coverage: dict
    note: str | None = None


def test_examples(examples: pd.DataFrame | None, hookpoint: str) -> dict[int, pd.DataFrame]:
    """latent -> its test examples (``split == "test"``), for latents with both activating and
    non-activating ones (the detection scorer needs both classes)."""
    if examples is None or len(examples) == 0:
        return {}
    need = {"latent", "split", "kind", "quantile", "context", "start", "tokens", "activations"}
    if not need <= set(examples.columns):
        raise AutointerpError(
            f"the examples of '{hookpoint}' lack the columns {sorted(need - set(examples.columns))} "
            "(docs/formats.md). Re-run `kedro run --pipelines sample`."
        )
    df = examples[examples["split"] == "test"]
    if "hookpoint" in df.columns and (df["hookpoint"] == hookpoint).any():
        df = df[df["hookpoint"] == hookpoint]
    out = {}
    for lat, g in df.groupby("latent"):
        act = g["kind"] == "activating"
        if act.any() and (~act).any():
            out[int(lat)] = g
    return out


@dataclass
class CrossScorer:
    """A's explanations scored by the detection scorer on B's test examples (and B's on A's).

    Scored exactly as the score stage scores a latent on its own examples (same example
    selection, same seeding by the explained latent, same scorer and client), so that a latent's
    explanation scored on the examples of a perfect twin gives the same number as the score
    stage's detection score of that latent on its own examples.
    """

    examples_a: dict[int, pd.DataFrame]
    examples_b: dict[int, pd.DataFrame]
    client: object
    detection: object = None  # a scoring.detection.DetectionConfig
    n_activating: int | None = 50
    n_non_activating: int | None = 50
    seed: int = 0
    progress: bool = True
    client_factory: Callable[[], object] | None = None  # makes ``client`` on first use (None given)

    def score_one(self, explanation: str, examples: pd.DataFrame, latent: int) -> dict:
        """Detection metrics of ``explanation`` on ``examples``, seeded like the score stage
        seeds ``latent`` (the explained latent)."""
        from .scoring.base import examples_from_frame
        from .scoring.detection import DetectionConfig, DetectionScorer
        from .scoring.metrics import latent_metrics
        from .scoring.runner import select_examples

        if self.client is None and self.client_factory is not None:
            self.client = self.client_factory()  # no model is loaded when no pair is eligible
        scorer = DetectionScorer(self.detection or DetectionConfig())
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(latent), 0, sum(map(ord, scorer.name))]))
        ex = examples_from_frame(select_examples(examples, self.n_activating, self.n_non_activating, rng))
        rows = scorer.score(explanation, ex, self.client, rng).rows
        nq = int(max((e.quantile for e in ex), default=-1)) + 1
        m = latent_metrics([r["label"] for r in rows], [r["prediction"] for r in rows], [r["score"] for r in rows],
                           [r["quantile"] for r in rows], [r["failure"] is not None for r in rows], nq)
        return {k: m[k] for k in ("auroc", "balanced_accuracy", "n", "n_failed")}

    def __call__(self, matched: pd.DataFrame, cfg: CrossScoringConfig) -> CrossScores:
        a_lat, b_lat = matched["latent_a"].astype(int), matched["latent_b"].astype(int)
        has_ex_a = matched["explanation_a"].notna().to_numpy()
        has_ex_b = matched["explanation_b"].notna().to_numpy()
        has_test_b = b_lat.isin(list(self.examples_b)).to_numpy()
        has_test_a = a_lat.isin(list(self.examples_a)).to_numpy()
        eligible = has_ex_a & has_test_b
        coverage = {"matched": int(len(matched)), "explained_a": int(has_ex_a.sum()),
                    "examples_b": int(has_test_b.sum()), "eligible": int(eligible.sum()),
                    "eligible_ba": int((has_ex_b & has_test_a).sum())}
        note = None
        if coverage["eligible"] < cfg.min_pairs:
            note = (f"only {coverage['eligible']} of {coverage['matched']} matched pairs have A's explanation and "
                    f"B's test examples ({coverage['explained_a']} matched A latents are explained, "
                    f"{coverage['examples_b']} matched B latents have examples): the sample stage draws latents "
                    f"per hookpoint independently, so the mean of so few pairs is not representative")
            if cfg.on_few_pairs == "error":
                raise AutointerpError(
                    f"cross-scoring {matched['hookpoint_a'].iloc[0]} vs {matched['hookpoint_b'].iloc[0]}: {note}. "
                    "Sample the matched latents (sample.selection.mode: list with their latents, see "
                    "matched.parquet), lower similarity.cross_scoring.min_pairs, or set "
                    "similarity.cross_scoring.on_few_pairs to report or skip."
                )
            log.warning("cross-scoring: %s", note)
        cols = ["cross_score", "cross_auroc", "cross_balanced_accuracy", "cross_n", "cross_n_failed",
                "cross_score_ba", "cross_auroc_ba", "cross_balanced_accuracy_ba", "cross_n_ba", "cross_n_failed_ba"]
        table = pd.DataFrame(np.nan, index=matched.index, columns=cols)
        if note is not None and cfg.on_few_pairs == "skip":
            return CrossScores(table, coverage, note + "; skipped (on_few_pairs: skip)")
        todo = matched[eligible].sort_values("jaccard", ascending=False, kind="stable").head(cfg.max_pairs)
        coverage["scored"] = int(len(todo))
        jobs = [(i, "", r.explanation_a, self.examples_b[int(r.latent_b)], int(r.latent_a)) for i, r in zip(todo.index, todo.itertuples())]
        if cfg.both_ways:
            jobs += [(i, "_ba", r.explanation_b, self.examples_a[int(r.latent_a)], int(r.latent_b))
                     for i, r in zip(todo.index, todo.itertuples())
                     if isinstance(r.explanation_b, str) and int(r.latent_a) in self.examples_a]
        for i, suffix, explanation, examples, latent in tqdm(jobs, desc="cross-scoring", unit="pair",
                                                              disable=not self.progress):
            m = self.score_one(explanation, examples, latent)
            table.loc[i, f"cross_auroc{suffix}"] = m["auroc"]
            table.loc[i, f"cross_balanced_accuracy{suffix}"] = m["balanced_accuracy"]
            table.loc[i, f"cross_n{suffix}"] = m["n"]
            table.loc[i, f"cross_n_failed{suffix}"] = m["n_failed"]
            table.loc[i, f"cross_score{suffix}"] = m[cfg.metric]
        return CrossScores(table, coverage, note)


def _cross_summary(matched: pd.DataFrame, cross: CrossScores, cfg: SimilarityConfig) -> list[dict]:
    """Adds the cross-scoring columns to ``matched``; summary rows for both directions, each
    with its coverage counts and note (chance level 0.5 for AUROC and balanced accuracy)."""
    for c in cross.table.columns:
        matched[c] = cross.table[c]
    rows = []
    cov = {f"cross_{k}": v for k, v in cross.coverage.items()}
    for measure, col in (("cross_score", "cross_score"), ("cross_score_ba", "cross_score_ba")):
        if measure == "cross_score_ba" and (not cfg.cross_scoring.both_ways or matched[col].isna().all()):
            continue
        rows.append(_summary_row("coactivation", measure, matched[col].to_numpy(), cfg.thresholds.cross_score, 0.5,
                                 cfg.seed, cfg.bootstrap, cross_metric=cfg.cross_scoring.metric, note=cross.note, **cov))
    return rows


def _default_embed(model_name: str):
    from .embeddings import embed

    return lambda texts: embed(texts, model_name=model_name)


def summary_metrics(summary: pd.DataFrame, prefix: str) -> dict[str, float]:
    """Flat metrics ``{prefix}.{matching}.{measure}.{mean|frac_above|n|chance|cross_eligible}`` (finite values only)."""
    out = {}
    for r in summary.itertuples():
        for k in ("mean", "frac_above", "n", "chance", "cross_eligible"):
            v = getattr(r, k, None)
            if v is not None and np.isfinite(v):
                out[f"{prefix}.{r.matching}.{r.measure}.{k}"] = float(v)
    if len(summary) and "unmatched" in summary:
        out[f"{prefix}.unmatched"] = float(summary["unmatched"].iloc[0])
    return out


# ------------------------------------------------------------------ plots


def heatmap_figures(result: SimilarityResult, n: int = 128) -> dict:
    """Heatmaps of each similarity matrix on the ``n`` most frequent matched latents (B reordered
    by the matching, so a good match is a bright diagonal), and histograms of matched-pair values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.matched
    a, b = m["hookpoint_a"].iloc[0] if len(m) else "A", m["hookpoint_b"].iloc[0] if len(m) else "B"
    top = m.sort_values("count_a", ascending=False).head(n)
    figs = {}
    for measure, mat in result.matrices.items():
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        if measure == "explanation_cosine":
            sub = mat[:n, :n]
            ax.set_xlabel(f"{b} explained latents"), ax.set_ylabel(f"{a} explained latents")
        else:
            sub = mat[np.ix_(top["latent_a"].to_numpy(), top["latent_b"].to_numpy())]
            ax.set_xlabel(f"{b} latent (matched order)"), ax.set_ylabel(f"{a} latent (top {len(top)} by frequency)")
        im = ax.imshow(sub, aspect="auto", cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, label=measure)
        ax.set_title(f"{measure}: {a} vs {b}")
        fig.tight_layout()
        figs[f"heatmap_{measure}.png"] = fig
    cols = [c for c in ("jaccard", "decoder_cosine", "explanation_cosine", "cross_score") if c in m]
    fig, axes = plt.subplots(1, max(len(cols), 1), figsize=(4 * max(len(cols), 1), 3.2), squeeze=False)
    for ax, c in zip(axes[0], cols):
        v = m[c].dropna().to_numpy()
        ax.hist(v, bins=40, range=(min(0.0, float(v.min()) if len(v) else 0.0), 1.0), color="#4c72b0")
        ax.set_title(f"{c} (n={len(v)}, mean={v.mean():.2f})" if len(v) else f"{c} (none)")
        ax.set_xlabel("matched-pair similarity")
    fig.suptitle(f"{a} vs {b}: co-activation matching")
    fig.tight_layout()
    figs["distributions.png"] = fig
    return figs


def overview(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (pair, matching, measure) with the pair's stream kind (residual / mlp / mixed)."""
    if not summaries:
        return pd.DataFrame()
    df = pd.concat(summaries, ignore_index=True)
    df.insert(2, "kind", [pair_kind(a, b) for a, b in zip(df["hookpoint_a"], df["hookpoint_b"])])
    return df


def overview_figure(df: pd.DataFrame):
    """Bar plot: mean matched-pair similarity per measure, pairs grouped by stream kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    if df.empty:
        ax.text(0.5, 0.5, "no pairs compared", ha="center")
        return fig
    df = df.assign(label=df["matching"] + "\n" + df["measure"], pair=df["hookpoint_a"] + " vs " + df["hookpoint_b"])
    labels = list(dict.fromkeys(df["label"]))
    pairs = list(dict.fromkeys(df.sort_values("kind")["pair"]))
    width = 0.8 / max(len(pairs), 1)
    colors = {"residual": "#4c72b0", "mlp": "#dd8452", "mixed": "#55a868"}
    for j, p in enumerate(pairs):
        sub = df[df["pair"] == p].set_index("label").reindex(labels)
        kind = df.loc[df["pair"] == p, "kind"].iloc[0]
        err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]).clip(min=0)
        ax.bar(np.arange(len(labels)) + j * width - 0.4 + width / 2, sub["mean"], width, yerr=err,
               label=f"{p} ({kind})", color=colors.get(kind), alpha=0.5 + 0.5 * (j % 2), capsize=2)
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylabel("mean matched-pair similarity")
    ax.set_title("adjacent residual vs adjacent MLP dictionaries")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ latents vs neurons


def dictionary_label(cfg: dict) -> str:
    """``SAE (sparsify)``, ``neurons`` or ``top-32 neurons`` from a hookpoint's dictionary config."""
    fmt = (cfg or {}).get("format", "sparsify")
    if fmt == "neurons":
        k = (cfg or {}).get("k")
        return f"top-{k} neurons" if k else "neurons"
    return f"SAE ({fmt})"


def compare_scores(tables: dict[str, pd.DataFrame | None], labels: dict[str, str], metric: str = "balanced_accuracy",
                   seed: int = 0, bootstrap: int = 1000) -> pd.DataFrame:
    """Per (hookpoint, scorer, control): n latents, mean ``metric`` with a bootstrap 95% CI, quartiles.

    ``tables``: hookpoint -> per-latent score metrics (docs/formats.md); a missing table gives a
    row saying so instead of failing.
    """
    rows = []
    for h, df in tables.items():
        if df is None or len(df) == 0 or metric not in getattr(df, "columns", []):
            rows.append({"hookpoint": h, "dictionary": labels.get(h, h), "scorer": None, "control": None, "n": 0,
                         "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "q25": np.nan, "median": np.nan,
                         "q75": np.nan, "note": f"no '{metric}' scores: run `kedro run --pipelines score`"})
            continue
        keys = [c for c in ("scorer", "control") if c in df.columns]
        groups = df.groupby(keys, dropna=False) if keys else [((), df)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            v = g[metric].astype(float).dropna().to_numpy()
            lo, hi = bootstrap_ci(v, seed=seed, n=bootstrap)
            rec = dict(zip(keys, key))
            rows.append({"hookpoint": h, "dictionary": labels.get(h, h), "scorer": rec.get("scorer"),
                         "control": rec.get("control"), "n": int(len(v)),
                         "mean": float(v.mean()) if len(v) else np.nan, "ci_low": lo, "ci_high": hi,
                         "q25": float(np.quantile(v, .25)) if len(v) else np.nan,
                         "median": float(np.median(v)) if len(v) else np.nan,
                         "q75": float(np.quantile(v, .75)) if len(v) else np.nan, "note": None})
    return pd.DataFrame(rows)


def scores_figure(table: pd.DataFrame, metric: str = "balanced_accuracy"):
    """Mean score with 95% CI per dictionary, one group of bars per scorer (real explanations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    t = table[table["n"] > 0]
    if "control" in t:
        t = t[t["control"].isin([False, None]) | t["control"].isna()]
    if t.empty:
        ax.text(0.5, 0.5, "no scores yet: run the score pipeline", ha="center")
        return fig
    scorers = list(dict.fromkeys(t["scorer"].fillna("all")))
    dicts = list(dict.fromkeys(t["dictionary"]))
    width = 0.8 / len(dicts)
    for j, d in enumerate(dicts):
        sub = t[t["dictionary"] == d].assign(scorer=lambda x: x["scorer"].fillna("all")).set_index("scorer").reindex(scorers)
        err = np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]).clip(min=0)
        ax.bar(np.arange(len(scorers)) + j * width - 0.4 + width / 2, sub["mean"], width, yerr=err, capsize=3, label=d)
    ax.set_xticks(np.arange(len(scorers)), scorers)
    ax.set_ylabel(f"mean {metric} (95% CI)")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title("SAE latents vs MLP neurons")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
