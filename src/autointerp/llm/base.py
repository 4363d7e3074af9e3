"""The client interface shared by every LLM backend, its result types and its accounting.

Backends implement three batched primitives (``_generate``, ``_option_logprobs``,
``_continuation_logprobs``) over the requests that the disk cache does not already hold;
the base class looks results up in, and stores them into, the response cache and keeps
the usage counters. A failed request never raises for one item: its result carries an
``error`` and is counted; only a mistake that would fail every request (unreachable
server, wrong model name, missing key, unsupported log-probabilities) raises an
:class:`~autointerp.errors.AutointerpError`.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..errors import AutointerpError, ConfigError

Messages = list[dict[str, str]]  # chat messages: [{"role": "user", "content": "..."}]

BACKENDS = ("local", "openai")


@dataclass(frozen=True)
class LLMConfig:
    """The ``llm:`` parameters (conf/base/parameters_llm.yml), shared by ``explain`` and ``score``.

    No API key ever lives here (this config is logged to MLflow): the key is read from the
    environment variable named by ``api_key_env`` or from Kedro credentials
    (``conf/local/credentials.yml``, entry ``llm: {api_key: ...}``).
    """

    backend: str = "local"  # local (transformers) | openai (any OpenAI-compatible server)
    model: str = "smollm2-135m-instruct"  # local: as model.name_or_path; openai: the served model name
    # local backend
    dtype: str = "bfloat16"
    device: str = "cpu"
    batch_size: int = 8
    # OpenAI-compatible backend
    base_url: str | None = None  # e.g. http://localhost:8000/v1 (vLLM), https://openrouter.ai/api/v1
    api_key_env: str | None = "OPENAI_API_KEY"  # null: the server needs no key
    max_concurrency: int = 8
    max_retries: int = 4
    timeout: float = 60.0  # seconds per request
    backoff: float = 0.5  # first retry delay in seconds, doubled each retry, with jitter
    backoff_max: float = 30.0
    top_logprobs: int = 20  # alternatives asked for when reading option log-probabilities
    # both
    max_tokens: int = 256
    temperature: float = 0.0
    cache_dir: str | None = None  # response cache folder; null: no cache
    # price per million tokens, by model: {my-model: {prompt: 0.1, completion: 0.4}}
    prices: dict | None = None

    def validate(self, where: str) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"{where}.backend: unknown backend '{self.backend}'. Use one of {list(BACKENDS)}.")
        if self.backend == "openai" and not self.base_url:
            raise ConfigError(f"{where}.base_url: the openai backend needs the server's URL, "
                              "for example http://localhost:8000/v1 (vLLM) or https://openrouter.ai/api/v1.")
        for name in ("batch_size", "max_concurrency", "max_tokens", "top_logprobs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_retries < 0:
            raise ConfigError(f"{where}.max_retries must be 0 or more, got {self.max_retries}.")
        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout must be positive (seconds), got {self.timeout}.")
        for model, table in (self.prices or {}).items():
            if not isinstance(table, dict) or set(table) - {"prompt", "completion"}:
                raise ConfigError(f"{where}.prices.{model}: expected {{prompt: <price>, completion: <price>}} "
                                  "per million tokens.")

    def price(self) -> tuple[float, float]:
        """(prompt, completion) price per million tokens of this model; zeros when not given."""
        table = (self.prices or {}).get(self.model) or {}
        return float(table.get("prompt", 0.0)), float(table.get("completion", 0.0))


@dataclass
class Generation:
    """One chat answer. ``error`` is None on success, else the reason it failed (text then "")."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None
    cached: bool = False


class OptionLogprobs(dict):
    """``{option: log P(option | prompt)}``; empty with ``error`` set when the request failed.
    Options the server did not list among its top alternatives get ``-inf``."""

    def __init__(self, values=(), error: str | None = None, cached: bool = False, prompt_tokens: int = 0):
        super().__init__(values)
        self.error, self.cached, self.prompt_tokens = error, cached, prompt_tokens


class TokenLogprobs(list):
    """Per-token log-probabilities of a continuation; ``tokens`` holds the token strings.
    Empty with ``error`` set when the request failed."""

    def __init__(self, values=(), tokens: Sequence[str] = (), error: str | None = None, cached: bool = False,
                 prompt_tokens: int = 0):
        super().__init__(values)
        self.tokens, self.error, self.cached, self.prompt_tokens = list(tokens), error, cached, prompt_tokens


@dataclass
class Usage:
    """What the client spent. Tokens count only requests actually sent (cached ones are free)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached_requests: int = 0
    cost: float = 0.0
    failed_requests: int = 0
    retries: int = 0

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(**{k: v - getattr(other, k) for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class LLMClient:
    """Base class of the backends: caching, accounting and the public batched methods."""

    backend = "base"

    def __init__(self, cfg: LLMConfig, cache=None):
        self.cfg = cfg
        self.cache = cache
        self._usage = Usage()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows a key
        return f"{type(self).__name__}(backend={self.backend!r}, model={self.cfg.model!r}, base_url={self.cfg.base_url!r})"

    # ------------------------------------------------------------------ accounting

    @property
    def usage(self) -> Usage:
        """A snapshot of the counters (subtract two snapshots for one stage's spending)."""
        with self._lock:
            return copy.copy(self._usage)

    def _count(self, *, requests=0, prompt_tokens=0, completion_tokens=0, seconds=0.0, cached=0, failed=0,
               retries=0) -> None:
        pp, pc = self.cfg.price()
        with self._lock:
            u = self._usage
            u.requests += requests
            u.prompt_tokens += prompt_tokens
            u.completion_tokens += completion_tokens
            u.seconds += seconds
            u.cached_requests += cached
            u.failed_requests += failed
            u.retries += retries
            u.cost += (prompt_tokens * pp + completion_tokens * pc) / 1e6

    # ------------------------------------------------------------------ cache plumbing

    def _key(self, method: str, payload: dict) -> dict:
        return {"backend": self.backend, "model": self.cfg.model, "base_url": self.cfg.base_url,
                "method": method, **payload}

    def _cached_call(self, method: str, payloads: list[dict], compute, to_result, from_result):
        """Look up each payload in the cache, ``compute`` the misses (a list of payloads ->
        a list of results), store successes, and return results in order."""
        results: list[Any] = [None] * len(payloads)
        keys = [self._key(method, p) for p in payloads]
        misses = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k) if self.cache is not None else None
            if hit is not None:
                results[i] = to_result(hit, cached=True)
            else:
                misses.append(i)
        if len(misses) < len(payloads):
            self._count(cached=len(payloads) - len(misses))
        if misses:
            computed = compute([payloads[i] for i in misses])
            for i, r in zip(misses, computed):
                results[i] = r
                if r.error is None and self.cache is not None:
                    self.cache.put(keys[i], from_result(r))
        return results

    # ------------------------------------------------------------------ public interface

    def generate(self, messages: Sequence[Messages], max_tokens: int | None = None,
                 temperature: float | None = None) -> list[Generation]:
        """One chat answer per conversation (greedy at temperature 0)."""
        params = {"max_tokens": int(max_tokens or self.cfg.max_tokens),
                  "temperature": float(self.cfg.temperature if temperature is None else temperature)}
        payloads = [{"messages": list(m), **params} for m in messages]

        def to_result(d, cached):
            return Generation(d["text"], d["prompt_tokens"], d["completion_tokens"], d["seconds"], None, cached)

        def from_result(g):
            return {"text": g.text, "prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                    "seconds": g.seconds}

        return self._cached_call("generate", payloads,
                                 lambda ps: self._generate([p["messages"] for p in ps], **params),
                                 to_result, from_result)

    def option_logprobs(self, messages: Sequence[Messages], options: Sequence[str]) -> list[OptionLogprobs]:
        """log P(option | chat prompt + assistant turn start) for every option, unnormalised."""
        options = [str(o) for o in options]
        if not options:
            raise AutointerpError("option_logprobs needs at least one option.")
        payloads = [{"messages": list(m), "options": options} for m in messages]

        def to_result(d, cached):
            return OptionLogprobs(d["logprobs"], cached=cached, prompt_tokens=d["prompt_tokens"])

        def from_result(r):
            return {"logprobs": dict(r), "prompt_tokens": r.prompt_tokens}

        return self._cached_call("option_logprobs", payloads,
                                 lambda ps: self._option_logprobs([p["messages"] for p in ps], options),
                                 to_result, from_result)

    def continuation_logprobs(self, prefixes: Sequence[str], texts: Sequence[str]) -> list[TokenLogprobs]:
        """log P of each token of ``text`` after ``prefix`` (plain text, no chat template)."""
        if len(prefixes) != len(texts):
            raise AutointerpError(f"continuation_logprobs: {len(prefixes)} prefixes but {len(texts)} texts.")
        payloads = [{"prefix": str(p), "text": str(t)} for p, t in zip(prefixes, texts)]

        def to_result(d, cached):
            return TokenLogprobs(d["logprobs"], d["tokens"], cached=cached, prompt_tokens=d["prompt_tokens"])

        def from_result(r):
            return {"logprobs": list(r), "tokens": r.tokens, "prompt_tokens": r.prompt_tokens}

        return self._cached_call("continuation_logprobs", payloads,
                                 lambda ps: self._continuation_logprobs([p["prefix"] for p in ps],
                                                                        [p["text"] for p in ps]),
                                 to_result, from_result)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # ------------------------------------------------------------------ backends implement

    def _generate(self, messages: list[Messages], max_tokens: int, temperature: float) -> list[Generation]:
        raise NotImplementedError

    def _option_logprobs(self, messages: list[Messages], options: list[str]) -> list[OptionLogprobs]:
        raise NotImplementedError

    def _continuation_logprobs(self, prefixes: list[str], texts: list[str]) -> list[TokenLogprobs]:
        raise NotImplementedError


__all__ = ["LLMConfig", "Generation", "OptionLogprobs", "TokenLogprobs", "Usage", "LLMClient", "Messages"]
