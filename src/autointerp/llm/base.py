"""The client interface shared by every LLM backend, its result types and its accounting.

Backends implement three batched primitives (``_generate``, ``_option_logprobs``,
``_continuation_logprobs``) over the requests that the disk cache does not already hold;
the base class looks results up in, and stores them into, the response cache and keeps
the usage counters. A failed request never raises for one item: its result carries an
``error`` and is counted; only a mistake that would fail every request (unreachable
server, wrong model name, missing key, unsupported log-probabilities) raises an
:class:`~autointerp.errors.AutointerpError`.

Option log-probabilities follow one rule in every backend: log P(option) is the log of the
probability that the first answer token is one of the option's spellings, summed over its
spellings (:func:`option_spellings`: the option as given, lower-case, upper-case and
capitalised, each with and without one leading space). So " Yes", "Yes" and "yes" all count
for "Yes", and the mass is added, not maxed. The OpenAI-compatible backend sums the spellings
the server lists among its ``top_logprobs``; the local backend reads them from the full
distribution. An option none of whose spellings is a single token (local backend: e.g. "10"
for a digit-by-digit tokenizer) is scored as the whole continuation of the option as given.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
    dtype: str = "auto"  # auto: bfloat16 where the device computes it natively, else float32
    device: str = "cpu"
    batch_size: int = 8
    # OpenAI-compatible backend
    # e.g. http://localhost:8000/v1 (vLLM), https://openrouter.ai/api/v1; a list of endpoints serving the
    # same model shares the load (fewest requests in flight first; a dead endpoint's requests go to the others)
    base_url: str | list[str] | None = None
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

    def __post_init__(self) -> None:
        if self.backend == "local" and self.dtype == "auto":  # the real dtype, for fingerprints and logs
            from ..models import resolve_dtype

            object.__setattr__(self, "dtype", resolve_dtype(self.dtype, self.device))

    def validate(self, where: str) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"{where}.backend: unknown backend '{self.backend}'. Use one of {list(BACKENDS)}.")
        if self.backend == "openai" and not self.base_url:
            raise ConfigError(
                f"{where}.base_url: the openai backend needs the server's URL, "
                "for example http://localhost:8000/v1 (vLLM) or https://openrouter.ai/api/v1."
            )
        if self.base_url is not None:
            urls = self.base_url if isinstance(self.base_url, (list, tuple)) else [self.base_url]
            bad = [u for u in urls if not isinstance(u, str) or not u.startswith(("http://", "https://"))]
            if bad or len(set(urls)) != len(urls):
                raise ConfigError(
                    f"{where}.base_url: expected a URL (http://host:port/v1) or a list of distinct "
                    f"URLs, got {self.base_url!r}."
                )
        for name in ("batch_size", "max_concurrency", "max_tokens", "top_logprobs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_retries < 0:
            raise ConfigError(f"{where}.max_retries must be 0 or more, got {self.max_retries}.")
        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout must be positive (seconds), got {self.timeout}.")
        for model, table in (self.prices or {}).items():
            if not isinstance(table, dict) or set(table) - {"prompt", "completion"}:
                raise ConfigError(
                    f"{where}.prices.{model}: expected {{prompt: <price>, completion: <price>}} per million tokens."
                )

    @property
    def base_urls(self) -> list[str]:
        """The endpoints, as a list (empty when none is set)."""
        if self.base_url is None:
            return []
        return list(self.base_url) if isinstance(self.base_url, (list, tuple)) else [self.base_url]

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


def option_spellings(option: str) -> list[str]:
    """The token strings counted as an answer ``option`` (both backends): the option as given,
    lower-case, upper-case and capitalised, each with and without one leading space.
    ``option_spellings("Yes")`` -> ``["Yes", " Yes", "yes", " yes", "YES", " YES"]``."""
    core = str(option).strip()
    forms = dict.fromkeys([core, core.lower(), core.upper(), core.capitalize()])
    return list(dict.fromkeys(p + f for f in forms for p in ("", " ")))


class OptionLogprobs(dict):
    """``{option: log P(option | prompt)}``; empty with ``error`` set when the request failed.
    P(option) sums the probabilities of the first answer token over the option's spellings
    (:func:`option_spellings`). Options with no spelling among the server's listed
    alternatives get ``-inf``."""

    def __init__(self, values=(), error: str | None = None, cached: bool = False, prompt_tokens: int = 0):
        super().__init__(values)
        self.error, self.cached, self.prompt_tokens = error, cached, prompt_tokens


class TokenLogprobs(list):
    """Per-token log-probabilities of a continuation; ``tokens`` holds the token strings.
    Empty with ``error`` set when the request failed."""

    def __init__(
        self,
        values=(),
        tokens: Sequence[str] = (),
        error: str | None = None,
        cached: bool = False,
        prompt_tokens: int = 0,
    ):
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

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{k: v - getattr(other, k) for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class LogprobsUnsupported(AutointerpError):
    """The server does not return the log-probabilities a scorer asked for."""


# The meters open in the current context (``LLMClient.metered``); backends that work in other
# threads run each request in a copy of the caller's context, so its spending reaches them.
_METERS: contextvars.ContextVar[tuple[Usage, ...]] = contextvars.ContextVar("autointerp_llm_meters", default=())


class LLMClient:
    """Base class of the backends: caching, accounting and the public batched methods."""

    backend = "base"

    def __init__(self, cfg: LLMConfig, cache=None):
        self.cfg = cfg
        self.cache = cache
        self._usage = Usage()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows a key
        return (
            f"{type(self).__name__}(backend={self.backend!r}, model={self.cfg.model!r}, base_url={self.cfg.base_url!r})"
        )

    # ------------------------------------------------------------------ accounting

    @property
    def usage(self) -> Usage:
        """A snapshot of the counters (subtract two snapshots for one stage's spending)."""
        with self._lock:
            return copy.copy(self._usage)

    @contextlib.contextmanager
    def metered(self) -> Iterator[Usage]:
        """What the calls made inside the block, in this thread, spend (a :class:`Usage` filled
        as they go), whatever other threads spend on the same client at the same time."""
        meter = Usage()
        token = _METERS.set(_METERS.get() + (meter,))
        try:
            yield meter
        finally:
            _METERS.reset(token)

    def _count(
        self, *, requests=0, prompt_tokens=0, completion_tokens=0, seconds=0.0, cached=0, failed=0, retries=0
    ) -> None:
        pp, pc = self.cfg.price()
        with self._lock:
            for u in (self._usage, *_METERS.get()):
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
        # One endpoint: its URL is part of the key (as it always was). Several endpoints serve one
        # model: which of them answered does not matter, and adding one keeps the cache valid.
        urls = self.cfg.base_urls
        where = urls[0] if len(urls) == 1 else (None if not urls else "endpoints")
        return {"backend": self.backend, "model": self.cfg.model, "base_url": where, "method": method, **payload}

    def _cached_call(self, method: str, payloads: list[dict], compute, to_result, from_result):
        """Look up the payloads in the cache (one query), ``compute`` the misses and return
        results in order. ``compute(payloads, done)`` returns a list of results; a backend may
        call ``done(j, result)`` as each one finishes (any thread) so that successes are stored
        as they arrive, grouped into few transactions; results not reported are stored at the end."""
        keys = [self._key(method, p) for p in payloads]
        hits = self.cache.get_many(keys) if self.cache is not None else [None] * len(keys)
        results: list[Any] = [None if h is None else to_result(h, cached=True) for h in hits]
        misses = [i for i, h in enumerate(hits) if h is None]
        if len(misses) < len(payloads):
            self._count(cached=len(payloads) - len(misses))
        if not misses:
            return results
        if self.cache is None:
            computed = compute([payloads[i] for i in misses], lambda j, r: None)
            for i, r in zip(misses, computed):
                results[i] = r
            return results
        stored: set[int] = set()
        with self.cache.writer() as writer:

            def done(j: int, r) -> None:
                if r is not None and r.error is None and j not in stored:
                    stored.add(j)
                    writer.add(keys[misses[j]], from_result(r))

            computed = compute([payloads[i] for i in misses], done)
            for j, (i, r) in enumerate(zip(misses, computed)):
                results[i] = r
                done(j, r)
        return results

    # ------------------------------------------------------------------ public interface

    def generate(
        self, messages: Sequence[Messages], max_tokens: int | None = None, temperature: float | None = None
    ) -> list[Generation]:
        """One chat answer per conversation (greedy at temperature 0)."""
        params = {
            "max_tokens": int(max_tokens or self.cfg.max_tokens),
            "temperature": float(self.cfg.temperature if temperature is None else temperature),
        }
        payloads = [{"messages": list(m), **params} for m in messages]

        def to_result(d, cached):
            return Generation(d["text"], d["prompt_tokens"], d["completion_tokens"], d["seconds"], None, cached)

        def from_result(g):
            return {
                "text": g.text,
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "seconds": g.seconds,
            }

        return self._cached_call(
            "generate",
            payloads,
            lambda ps, done: self._generate([p["messages"] for p in ps], **params, done=done),
            to_result,
            from_result,
        )

    def option_logprobs(self, messages: Sequence[Messages], options: Sequence[str]) -> list[OptionLogprobs]:
        """log P(option | chat prompt + assistant turn start) for every option, unnormalised."""
        options = [str(o) for o in options]
        if not options:
            raise AutointerpError("option_logprobs needs at least one option.")
        # "spellings": the rule of option_spellings; answers cached under the old max-of-two rule are not reused.
        payloads = [{"messages": list(m), "options": options, "spellings": "sum-v1"} for m in messages]

        def to_result(d, cached):
            return OptionLogprobs(d["logprobs"], cached=cached, prompt_tokens=d["prompt_tokens"])

        def from_result(r):
            return {"logprobs": dict(r), "prompt_tokens": r.prompt_tokens}

        return self._cached_call(
            "option_logprobs",
            payloads,
            lambda ps, done: self._option_logprobs([p["messages"] for p in ps], options, done=done),
            to_result,
            from_result,
        )

    def continuation_logprobs(self, prefixes: Sequence[str], texts: Sequence[str]) -> list[TokenLogprobs]:
        """log P of each token of ``text`` after ``prefix`` (plain text, no chat template)."""
        if len(prefixes) != len(texts):
            raise AutointerpError(f"continuation_logprobs: {len(prefixes)} prefixes but {len(texts)} texts.")
        payloads = [{"prefix": str(p), "text": str(t)} for p, t in zip(prefixes, texts)]

        def to_result(d, cached):
            return TokenLogprobs(d["logprobs"], d["tokens"], cached=cached, prompt_tokens=d["prompt_tokens"])

        def from_result(r):
            return {"logprobs": list(r), "tokens": r.tokens, "prompt_tokens": r.prompt_tokens}

        return self._cached_call(
            "continuation_logprobs",
            payloads,
            lambda ps, done: self._continuation_logprobs([p["prefix"] for p in ps], [p["text"] for p in ps], done=done),
            to_result,
            from_result,
        )

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # ------------------------------------------------------------------ backends implement

    # ``done(j, result)``, optional: report item j's result as soon as it is known (see _cached_call).

    def _generate(self, messages: list[Messages], max_tokens: int, temperature: float, done=None) -> list[Generation]:
        raise NotImplementedError

    def _option_logprobs(self, messages: list[Messages], options: list[str], done=None) -> list[OptionLogprobs]:
        raise NotImplementedError

    def _continuation_logprobs(self, prefixes: list[str], texts: list[str], done=None) -> list[TokenLogprobs]:
        raise NotImplementedError


__all__ = [
    "LLMConfig",
    "Generation",
    "LogprobsUnsupported",
    "OptionLogprobs",
    "option_spellings",
    "TokenLogprobs",
    "Usage",
    "LLMClient",
    "Messages",
]
