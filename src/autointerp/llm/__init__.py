"""LLM clients for the ``explain`` and ``score`` stages (no Kedro imports).

``make_client(LLMConfig(...))`` gives a client with ``generate``, ``option_logprobs``,
``continuation_logprobs`` and ``usage`` (see docs/formats.md, "LLM client").
"""

from __future__ import annotations

from .base import Generation, LLMClient, LLMConfig, Messages, OptionLogprobs, TokenLogprobs, Usage
from .cache import ResponseCache


def make_client(cfg: LLMConfig, credentials: dict | None = None) -> LLMClient:
    """The client for ``cfg.backend``, with the response cache in ``cfg.cache_dir`` if set.

    ``credentials``: the Kedro credentials entry (``{"api_key": ...}``), used when the
    environment variable named by ``cfg.api_key_env`` is not set.
    """
    cache = ResponseCache(cfg.cache_dir) if cfg.cache_dir else None
    if cfg.backend == "local":
        from .local import LocalClient

        return LocalClient(cfg, cache)
    from .openai_compat import OpenAIClient

    return OpenAIClient(cfg, cache, credentials=credentials)


__all__ = [
    "Generation",
    "LLMClient",
    "LLMConfig",
    "Messages",
    "OptionLogprobs",
    "ResponseCache",
    "TokenLogprobs",
    "Usage",
    "make_client",
]
