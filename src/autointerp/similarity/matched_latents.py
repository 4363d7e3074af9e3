"""Match before sampling (issue 15.1): the top matched latents of every configured pair, per hookpoint.

The explanation-based measures need explanations and test examples on *both* sides of a matched
pair, but the sample stage draws latents per hookpoint independently, so matched pairs rarely
have both. Matching first fixes that: :func:`top_matched` keeps the ``top_n`` highest-Jaccard
pairs of a pair's co-activation matching, as rows for both sides, and :func:`hookpoint_matched`
gathers, for one hookpoint, its rows from every pair it belongs to: the table that
``sample.selection.mode: matched`` reads (``{namespace}.matched_latents``).

Columns (``MATCHED_COLUMNS``): ``hookpoint``, ``latent`` (to sample), ``partner_hookpoint``,
``partner_latent`` (its match on the other side), ``jaccard``, ``coactivations``, ``rank``
(0 = the pair's best match) and ``pair`` (``<hookpoint_a>|<hookpoint_b>``). A latent matched in
two pairs appears once per pair; ``hookpoint_matched`` orders the rows by rank, then Jaccard.
"""

from __future__ import annotations

import pandas as pd

from ..latent_cache import LatentCache
from .compare import coactivation_matching
from .config import SimilarityConfig

MATCHED_COLUMNS = [
    "hookpoint",
    "latent",
    "partner_hookpoint",
    "partner_latent",
    "jaccard",
    "coactivations",
    "rank",
    "pair",
]


def top_matched(
    matched: pd.DataFrame,
    top_n: int,
    min_coactivations: int = 1,
    max_frequency: float | None = None,
    n_tokens: int | None = None,
) -> pd.DataFrame:
    """Rows for both sides of the ``top_n`` highest-Jaccard pairs of a matched-pairs table
    (``hookpoint_a``, ``latent_a``, ``hookpoint_b``, ``latent_b``, ``jaccard``, ``coactivations``)
    among those co-firing on at least ``min_coactivations`` tokens and, with ``max_frequency``,
    whose latents both fire on at most that fraction of the ``n_tokens`` tokens (columns
    ``count_a``, ``count_b``): two latents that fire nearly everywhere match almost perfectly,
    but have no non-activating window to test them on (the sampler leaves them out)."""
    if len(matched):
        keep = matched["coactivations"] >= min_coactivations
        if max_frequency is not None and n_tokens:
            keep &= (matched["count_a"] <= max_frequency * n_tokens) & (matched["count_b"] <= max_frequency * n_tokens)
        matched = matched[keep]
    if len(matched) == 0 or top_n < 1:
        return pd.DataFrame(columns=MATCHED_COLUMNS)
    top = matched.sort_values(["jaccard", "latent_a"], ascending=[False, True], kind="stable").head(top_n)
    top = top.reset_index(drop=True)
    pair = f"{top['hookpoint_a'].iloc[0]}|{top['hookpoint_b'].iloc[0]}"
    sides = []
    for me, other in (("a", "b"), ("b", "a")):
        sides.append(
            pd.DataFrame(
                {
                    "hookpoint": top[f"hookpoint_{me}"],
                    "latent": top[f"latent_{me}"].astype(int),
                    "partner_hookpoint": top[f"hookpoint_{other}"],
                    "partner_latent": top[f"latent_{other}"].astype(int),
                    "jaccard": top["jaccard"].astype(float),
                    "coactivations": top["coactivations"].astype(int),
                    "rank": range(len(top)),
                    "pair": pair,
                }
            )
        )
    return pd.concat(sides, ignore_index=True)[MATCHED_COLUMNS]


def pair_top_matched(
    cache_a: LatentCache, cache_b: LatentCache, cfg: SimilarityConfig, top_n: int, progress: bool = True
) -> pd.DataFrame:
    """The co-activation matching of two caches (the method ``cfg`` picks), top ``top_n`` pairs."""
    co, _, matched, _ = coactivation_matching(cache_a, cache_b, cfg, progress)
    return top_matched(matched, top_n, cfg.matched_min_coactivations, cfg.matched_max_frequency, co.n_tokens)


def hookpoint_matched(hookpoint: str, *tables: pd.DataFrame) -> pd.DataFrame:
    """One hookpoint's rows of the pairs' top-matched tables, best ranks first."""
    parts = [t[t["hookpoint"] == hookpoint] for t in tables if t is not None and len(t)]
    if not parts:
        return pd.DataFrame(columns=MATCHED_COLUMNS)
    df = pd.concat(parts, ignore_index=True)
    return df.sort_values(["rank", "jaccard", "pair"], ascending=[True, False, True], kind="stable").reset_index(
        drop=True
    )
