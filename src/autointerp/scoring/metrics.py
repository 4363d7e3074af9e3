"""Classification metrics of scorer predictions (pure numpy, no scikit-learn).

Failures are the caller's business: every function here takes only the examples that were
scored; :func:`latent_metrics` counts the failed ones (``n_failed``) and leaves them out of
every rate, so that an unparseable answer is never scored as wrong nor silently dropped.
A rate whose denominator is empty is ``nan`` (for example recall with no positive example).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

NAN = float("nan")


def _arrays(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=int)
    p = np.asarray(predictions, dtype=int)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    return y, p


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else NAN


def confusion(labels, predictions) -> tuple[int, int, int, int]:
    """(true positives, false positives, true negatives, false negatives)."""
    y, p = _arrays(labels, predictions)
    return (
        int(((p == 1) & (y == 1)).sum()),
        int(((p == 1) & (y == 0)).sum()),
        int(((p == 0) & (y == 0)).sum()),
        int(((p == 0) & (y == 1)).sum()),
    )


def accuracy(labels, predictions) -> float:
    y, p = _arrays(labels, predictions)
    return _ratio((y == p).sum(), len(y))


def precision(labels, predictions) -> float:
    tp, fp, _, _ = confusion(labels, predictions)
    return _ratio(tp, tp + fp)


def recall(labels, predictions) -> float:
    tp, _, _, fn = confusion(labels, predictions)
    return _ratio(tp, tp + fn)


def specificity(labels, predictions) -> float:
    _, fp, tn, _ = confusion(labels, predictions)
    return _ratio(tn, tn + fp)


def balanced_accuracy(labels, predictions) -> float:
    """Mean of recall and specificity; when one class is absent, the rate of the other."""
    rates = [r for r in (recall(labels, predictions), specificity(labels, predictions)) if not math.isnan(r)]
    return float(np.mean(rates)) if rates else NAN


def f1(labels, predictions) -> float:
    tp, fp, _, fn = confusion(labels, predictions)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def auroc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (Mann-Whitney U). ``nan`` without both classes."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return NAN
    # average ranks handle ties exactly
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    u = r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def pearson(x, y) -> float:
    """Pearson correlation; ``nan`` when either side is constant or there are < 2 points."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return NAN
    return float(np.corrcoef(x, y)[0, 1])


def recall_per_quantile(labels, predictions, quantiles, n_quantiles: int) -> dict[int, float]:
    """Recall among the activating examples of each quantile (``nan`` for an empty quantile)."""
    y, p = _arrays(labels, predictions)
    q = np.asarray(quantiles, dtype=int)
    return {i: _ratio(((p == 1) & (y == 1) & (q == i)).sum(), ((y == 1) & (q == i)).sum()) for i in range(n_quantiles)}


def latent_metrics(
    labels: Sequence,
    predictions: Sequence,
    scores: Sequence,
    quantiles: Sequence,
    failed: Sequence[bool],
    n_quantiles: int,
) -> dict[str, float]:
    """All metrics of one latent and scorer. ``predictions``/``scores`` may hold None where the
    example failed (``failed`` True) or where a scorer gives no continuous score."""
    failed = np.asarray(failed, dtype=bool)
    ok = ~failed
    y = np.asarray(labels, dtype=int)[ok]
    q = np.asarray(quantiles, dtype=int)[ok]
    p = np.asarray([v for v, f in zip(predictions, failed) if not f], dtype=float)
    s = [v for v, f in zip(scores, failed) if not f]
    p = np.nan_to_num(p, nan=0).astype(int)
    out = {"n": int(len(failed)), "n_failed": int(failed.sum())}
    if len(y):
        out.update(
            accuracy=accuracy(y, p),
            balanced_accuracy=balanced_accuracy(y, p),
            precision=precision(y, p),
            recall=recall(y, p),
            f1=f1(y, p),
        )
    else:
        out.update(accuracy=NAN, balanced_accuracy=NAN, precision=NAN, recall=NAN, f1=NAN)
    has_scores = len(s) > 0 and all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in s)
    out["auroc"] = auroc(y, np.asarray(s, dtype=float)) if has_scores else NAN
    for i, r in recall_per_quantile(y, p, q, n_quantiles).items():
        out[f"recall_q{i}"] = r
    return out


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic, low, high): a percentile bootstrap over latents; nan values are left out."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return NAN, NAN, NAN
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    boots = np.array([stat(v[i]) for i in idx])
    return float(stat(v)), float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` with no fixed point (n >= 2), uniformly by rejection."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    while True:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm
