"""Reading what an OpenAI-compatible server answers: option log-probabilities summed over their
spellings, token usage, the errors worth a retry (and a server's ``retry-after``), a refused
connection, the error for a server without prompt log-probabilities, and the SDK's HTTP client
sized to the client's concurrency. Used by :mod:`autointerp.llm.openai_compat`."""

from __future__ import annotations

import math

import openai

from .base import LogprobsUnsupported

RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.ConflictError,
)


def _refused(e: BaseException) -> bool:
    """The connection could not be opened at all (nothing listens, host unreachable)."""
    seen = 0
    while e is not None and seen < 8:
        if type(e).__name__ in ("ConnectError", "ConnectionRefusedError"):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _http_client(concurrency: int):
    """The SDK's HTTP client, keeping ``concurrency`` connections alive (the SDK keeps 100: beyond
    that, every request would open a new connection); None (the SDK's default) up to 100."""
    try:
        from openai._constants import DEFAULT_CONNECTION_LIMITS as limits
    except ImportError:  # another SDK layout: its defaults
        return None
    if concurrency <= limits.max_keepalive_connections:
        return None
    return openai.DefaultHttpxClient(
        limits=type(limits)(
            max_connections=max(concurrency, limits.max_connections or 0), max_keepalive_connections=concurrency
        )
    )


def option_values(first: dict, spellings: dict[str, list[str]]) -> dict[str, float]:
    """``{option: log P}`` from the first answer token of a chat completion (its ``token``,
    ``logprob`` and ``top_logprobs``): the probability mass of every listed spelling, summed."""
    alts: dict[str, float] = {}
    for alt in first.get("top_logprobs") or []:
        alts.setdefault(str(alt["token"]), float(alt["logprob"]))
    alts.setdefault(str(first["token"]), float(first["logprob"]))
    out = {}
    for option, forms in spellings.items():
        lps = [alts[s] for s in forms if s in alts and alts[s] > -math.inf]
        if not lps:
            out[option] = -math.inf
            continue
        top = max(lps)
        out[option] = top + math.log(sum(math.exp(v - top) for v in lps))
    return out


def _unsupported_echo(where: str) -> LogprobsUnsupported:
    return LogprobsUnsupported(
        f"the {where} does not return prompt log-probabilities (completions endpoint with echo=True "
        "and logprobs), which the surprisal scorer and the batched mode of detection and fuzzing need. Use a "
        "server that does (vLLM), or score.detection.mode / score.fuzzing.mode: logprob and no surprisal."
    )


def _tokens(resp: dict) -> tuple[int, int]:
    u = resp.get("usage") or {}
    return int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)


def _retry_after(e: Exception) -> float | None:
    resp = getattr(e, "response", None)
    try:
        return float(resp.headers.get("retry-after")) if resp is not None else None
    except (TypeError, ValueError):
        return None


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return s[:300]
