"""The explanation measures of matched pairs, for every compared explainer: explanation cosine
(with its chance level, random pairs of explained latents) and cross-scoring (chance: random
other latents' examples)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from .config import SimilarityConfig
from .cross_scoring import _cross_summary
from .measures import _default_embed, _summary_row, explanation_table

log = logging.getLogger(__name__)

DEFAULT_EXPLAINER = "default"  # a table without an ``explainer`` column


def present_explainers(*tables: pd.DataFrame | None) -> list[str]:
    """The explainers with rows in any of ``tables``, in order of appearance."""
    out: list[str] = []
    for t in tables:
        if t is None or len(t) == 0:
            continue
        names = t["explainer"].fillna(DEFAULT_EXPLAINER) if "explainer" in t else [DEFAULT_EXPLAINER]
        out += [n for n in dict.fromkeys(names) if n not in out]
    return out


def compared_explainers(explanations_a, explanations_b, cfg: SimilarityConfig) -> list[str]:
    """The explainers whose explanations are measured: ``cfg.explainer`` first (null: the first
    LLM explainer present, as :func:`autointerp.explainers.select_explainer` picks it), then
    ``cfg.explainers`` (null: every other explainer present)."""
    from ..explainers import REGISTRY

    present = present_explainers(explanations_a, explanations_b)
    primary = cfg.explainer
    if primary is None:
        llm = [n for n in REGISTRY if REGISTRY[n].uses_llm and n in present]
        primary = llm[0] if llm else (present[0] if present else DEFAULT_EXPLAINER)
    others = present if cfg.explainers is None else cfg.explainers
    return [primary] + [e for e in dict.fromkeys(others) if e != primary]


def pair_cosine(cos: np.ndarray, la: list[int], lb: list[int], rows, cols) -> np.ndarray:
    """The explanation cosine of each pair (rows[i], cols[i]) from ``cos`` [len(la), len(lb)]
    (explained latents ``la`` of A, ``lb`` of B); NaN where a side has no explanation."""
    ia = {lat: i for i, lat in enumerate(la)}
    ib = {lat: j for j, lat in enumerate(lb)}
    return np.array(
        [cos[ia[int(r)], ib[int(c)]] if int(r) in ia and int(c) in ib else np.nan for r, c in zip(rows, cols)],
        dtype=np.float32,
    )


def explanation_measures(
    matched: pd.DataFrame,
    decoder_matched: pd.DataFrame | None,
    explanations_a: pd.DataFrame | None,
    explanations_b: pd.DataFrame | None,
    cfg: SimilarityConfig,
    rng: np.random.Generator,
    *,
    pair: tuple[str, str],
    extra: dict,
    matrices: dict,
    embed_fn: Callable[[list[str]], np.ndarray] | None = None,
    cross_score=None,
) -> list[dict]:
    """Summary rows of every compared explainer; the first one's measures and columns keep their
    plain names (``explanation_cosine``, ``cross_score``, ``explanation_a``), every other one's
    get the suffix ``.<explainer>``. Adds the per-pair columns to ``matched`` (and the explanation
    cosine to ``decoder_matched``) and the first explainer's cosine matrix to ``matrices``."""
    a, b = pair
    rows, cols = matched["latent_a"].to_numpy(), matched["latent_b"].to_numpy()
    th = cfg.thresholds
    summary: list[dict] = []
    for k, name in enumerate(compared_explainers(explanations_a, explanations_b, cfg)):
        sfx = "" if k == 0 else f".{name}"
        ex_a, ex_b = explanation_table(explanations_a, a, name), explanation_table(explanations_b, b, name)
        if k and not (ex_a and ex_b):
            log.info("similarity %s vs %s: no explanations of %s on both sides", a, b, name)
            continue
        matched[f"explanation_a{sfx}"] = [ex_a.get(int(r)) for r in rows]
        matched[f"explanation_b{sfx}"] = [ex_b.get(int(c)) for c in cols]
        if ex_a and ex_b:
            embed_fn = embed_fn or _default_embed(cfg.embedding_model)
            la, lb = sorted(ex_a), sorted(ex_b)
            cos = (embed_fn([ex_a[i] for i in la]) @ embed_fn([ex_b[j] for j in lb]).T).astype(np.float32)
            if k == 0:
                matrices["explanation_cosine"] = cos
            ec = pair_cosine(cos, la, lb, rows, cols)
            matched[f"explanation_cosine{sfx}"] = ec
            # chance: the same explanations paired at random (both explained, different pairing)
            n = min(len(la), len(lb), 10000)
            chance = float(cos[rng.permutation(len(la))[:n], rng.permutation(len(lb))[:n]].mean())
            summary.append(
                _summary_row(
                    "coactivation",
                    f"explanation_cosine{sfx}",
                    ec,
                    th.explanation_cosine,
                    chance,
                    cfg.seed,
                    cfg.bootstrap,
                    explainer=name,
                    explained_a=len(ex_a),
                    explained_b=len(ex_b),
                    **extra,
                )
            )
            if decoder_matched is not None:
                dec_ec = pair_cosine(cos, la, lb, decoder_matched["latent_a"], decoder_matched["latent_b"])
                decoder_matched[f"explanation_cosine{sfx}"] = dec_ec
                summary.append(
                    _summary_row(
                        "decoder",
                        f"explanation_cosine{sfx}",
                        dec_ec,
                        th.explanation_cosine,
                        chance,
                        cfg.seed,
                        cfg.bootstrap,
                        explainer=name,
                        **extra,
                    )
                )
        else:
            log.warning(
                "no explanations of %s for %s: explanation-based similarity skipped",
                name,
                " and ".join(h for h, e in ((a, ex_a), (b, ex_b)) if not e),
            )
        if cross_score is not None:
            cross = cross_score(matched, cfg.cross_scoring, sfx)
            summary.extend(_cross_summary(matched, cross, cfg, explainer=name, scorer=cross_score))
    return summary
