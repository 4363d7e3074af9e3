"""OpenAI-compatible backend (vLLM, OpenRouter, Ollama, llama.cpp server, OpenAI) on the official SDK.

Requests run in one bounded thread pool per client (``llm.max_concurrency`` in flight in all);
429, 5xx, timeouts and dropped connections are retried with exponential backoff and jitter.
A request that still fails, or whose answer is garbage, is a counted per-item failure.
Mistakes that would fail every request (server unreachable, wrong model name, bad or missing
key, no log-probabilities) raise one :class:`~autointerp.errors.AutointerpError`. The API key
is held only by the SDK client: it is never part of the config, a repr, a log line or a cached key.

Several endpoints (``llm.base_url`` as a list, all serving the same model) share the load:
each request goes to the endpoint with the fewest requests in flight (round-robin among
equals). An endpoint that refuses connections is set aside for a while (``backoff_max``, at
least a second) and its requests go to the others at once; only when every endpoint stays
unreachable through all retries does the client raise.

Option log-probabilities (``option_logprobs``) are read from the first answer token's
``top_logprobs``: the probability of an option is the **sum** of the probabilities of every
listed token that is one of its spellings (:func:`~autointerp.llm.base.option_spellings`:
the option as given, lower-case, upper-case and capitalised, each with and without one
leading space), so " Yes", "Yes" and "yes" all count for "Yes". Spellings the server did not
list contribute nothing; an option with none listed gets ``-inf``.

Requests go through the SDK's plain ``post`` (its documented way to call any endpoint: same
connection pool, errors and headers) and answers are read from the JSON body: the SDK's
typed parameter transforms and response models cost more CPU than the rest of a request,
which matters at hundreds of requests per second (benchmarks/llm_overhead.py). How answers and
errors are read is :mod:`autointerp.llm.openai_responses`.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from ..errors import AutointerpError
from .base import (
    Generation,
    LLMClient,
    LLMConfig,
    LogprobsUnsupported,
    Messages,
    OptionLogprobs,
    TokenLogprobs,
    option_spellings,
)
from .openai_responses import (
    RETRYABLE,
    _http_client,
    _refused,
    _retry_after,
    _short,
    _tokens,
    _unsupported_echo,
    option_values,
)

log = logging.getLogger(__name__)


class _Fatal(Exception):
    """Wraps an error that every request would hit: stop the batch and raise it."""


class _Aborted(Exception):
    """A request not sent because another request of its call hit a fatal error."""


def resolve_api_key(cfg: LLMConfig, credentials: dict | None) -> str:
    if cfg.api_key_env is None:
        return "EMPTY"  # servers without authentication still want a non-empty string
    key = os.environ.get(cfg.api_key_env) or (credentials or {}).get("api_key")
    if not key:
        raise AutointerpError(
            f"no API key for the LLM server at {cfg.base_url}: set the environment variable {cfg.api_key_env} "
            "(works in every environment), or put `llm: {api_key: ...}` in conf/local/credentials.yml (read by every "
            "Kedro environment; conf/<env>/credentials.yml overrides it), or set llm.api_key_env: null "
            "for a server that needs no key."
        )
    return str(key)


class _Endpoint:
    """One server: its SDK client (one HTTP connection pool) and its load."""

    def __init__(self, url: str, client):
        self.url, self.client = url, client
        self.in_flight = self.served = 0
        self.dead_until = 0.0


class _Batch:
    """Per-call state: the first fatal error stops the other requests of the call."""

    def __init__(self):
        self.fatal: AutointerpError | None = None


class OpenAIClient(LLMClient):
    backend = "openai"

    def __init__(self, cfg: LLMConfig, cache=None, credentials: dict | None = None):
        super().__init__(cfg, cache)
        key = resolve_api_key(cfg, credentials)
        self._endpoints = [
            _Endpoint(
                u,
                openai.OpenAI(
                    api_key=key,
                    base_url=u,
                    timeout=cfg.timeout,
                    max_retries=0,
                    http_client=_http_client(cfg.max_concurrency),
                ),
            )
            for u in cfg.base_urls
        ]
        self._rr = itertools.count()
        self._ep_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self):  # never pickle the key along
        raise TypeError("an OpenAIClient holds an API key and is not picklable; build it with make_client in the node")

    @property
    def served(self) -> dict[str, int]:
        """Requests answered (any HTTP status) by each endpoint."""
        return {ep.url: ep.served for ep in self._endpoints}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for ep in self._endpoints:
            ep.client.close()
        super().close()

    # ------------------------------------------------------------------ request machinery

    def _where(self) -> str:
        return f"LLM server {self.cfg.base_url} (llm.base_url), model '{self.cfg.model}' (llm.model)"

    def _fatal_error(self, e: Exception, method: str) -> AutointerpError | None:
        if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
            return AutointerpError(
                f"{self._where()} refused the API key (HTTP {e.status_code}): check the key in "
                f"${self.cfg.api_key_env} or conf/local/credentials.yml."
            )
        if isinstance(e, openai.NotFoundError):
            if method == "completions with echo" and "model" not in str(e).lower():
                return _unsupported_echo(self._where())
            return AutointerpError(
                f"{self._where()}: HTTP 404 for {method} ({_short(e)}). Check llm.model (is that "
                "model served?) and llm.base_url (it usually ends in /v1)."
            )
        if isinstance(e, openai.BadRequestError | openai.UnprocessableEntityError) and (
            "logprob" in str(e).lower() or (method == "completions with echo" and "echo" in str(e).lower())
        ):
            return LogprobsUnsupported(
                f"the {self._where()} refuses the log-probability request for {method} (HTTP {e.status_code}: "
                f"{_short(e)}). Lower llm.top_logprobs to what the server allows, use a server that returns "
                "log-probabilities (vLLM, OpenAI, llama.cpp), or switch the scorers to generated answers "
                "(for example score.detection.mode: generation)."
            )
        if isinstance(e, openai.APIConnectionError) and _refused(e):
            n = len(self._endpoints)
            which = "any of the" if n > 1 else "the"
            return AutointerpError(
                f"cannot reach {which} {self._where()} after {self.cfg.max_retries + 1} attempts: "
                f"{_short(e)}. Is the server running? Check llm.base_url."
            )
        return None

    def _pick(self) -> _Endpoint:
        """The live endpoint with the fewest requests in flight (round-robin among equals); when
        every endpoint is set aside, the one whose pause ends first (a probe)."""
        now = time.monotonic()
        with self._ep_lock:
            eps = self._endpoints
            start = next(self._rr) % len(eps)
            order = eps[start:] + eps[:start]
            live = [ep for ep in order if ep.dead_until <= now]
            ep = min(live, key=lambda x: x.in_flight) if live else min(order, key=lambda x: x.dead_until)
            ep.in_flight += 1
            return ep

    def _any_live(self, besides: _Endpoint) -> bool:
        now = time.monotonic()
        return any(ep is not besides and ep.dead_until <= now for ep in self._endpoints)

    def _call(self, fn, method: str, batch: _Batch):
        """Run one request (``fn(sdk_client)`` -> the decoded JSON body) with retries.
        Returns (decoded JSON, None, seconds) or (None, error, seconds)."""
        t0 = time.perf_counter()
        retries = 0
        reroutes = len(self._endpoints) - 1  # free moves off an endpoint that refuses connections
        while True:
            if batch.fatal is not None:
                raise _Aborted
            ep = self._pick()
            try:
                try:
                    data = fn(ep.client)
                finally:
                    with self._ep_lock:
                        ep.in_flight -= 1
                with self._ep_lock:
                    ep.served += 1
                self._count(retries=retries)
                if not isinstance(data, dict):
                    raise ValueError(f"expected a JSON object, got {str(data)[:100]!r}")
                return data, None, time.perf_counter() - t0
            except RETRYABLE as e:
                refused = isinstance(e, openai.APIConnectionError) and _refused(e)
                if refused:
                    with self._ep_lock:
                        ep.dead_until = time.monotonic() + max(1.0, self.cfg.backoff_max)
                    if reroutes > 0 and self._any_live(ep):
                        log.debug("%s: %s refused the connection, moving to another endpoint", method, ep.url)
                        reroutes -= 1
                        retries += 1
                        continue
                elif not isinstance(e, openai.APIConnectionError | openai.APITimeoutError):
                    with self._ep_lock:
                        ep.served += 1  # the server answered, with an error status
                if retries - (len(self._endpoints) - 1 - reroutes) >= self.cfg.max_retries:
                    self._count(retries=retries)
                    fatal = self._fatal_error(e, method)
                    if fatal is not None:
                        raise _Fatal(fatal) from None
                    return (
                        None,
                        f"{type(e).__name__} after {retries + 1} attempts: {_short(e)}",
                        time.perf_counter() - t0,
                    )
                delay = min(self.cfg.backoff_max, self.cfg.backoff * 2**retries) * (0.5 + random.random())
                retry_after = _retry_after(e)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.cfg.backoff_max))
                log.debug("%s: %s, retrying in %.2fs", method, type(e).__name__, delay)
                retries += 1
                time.sleep(delay)
            except openai.APIStatusError as e:
                with self._ep_lock:
                    ep.served += 1
                self._count(retries=retries)
                fatal = self._fatal_error(e, method)
                if fatal is not None:
                    raise _Fatal(fatal) from None
                return None, f"HTTP {e.status_code}: {_short(e)}", time.perf_counter() - t0
            except (openai.APIResponseValidationError, ValueError, TypeError, KeyError) as e:  # garbage body
                self._count(retries=retries)
                return None, f"malformed response: {_short(e)}", time.perf_counter() - t0

    def _map(self, fn, items: list, done=None):
        """``fn(item, batch)`` over items in the client's thread pool; ``done(j, result)`` as each
        finishes; a fatal error stops the rest of the call and is raised once."""
        if not items:
            return []
        batch = _Batch()

        def guarded(j, item):
            try:
                r = fn(item, batch)
            except _Fatal as f:
                if batch.fatal is None:
                    batch.fatal = f.args[0]
                return None
            except _Aborted:  # not sent, not counted: the call raises the fatal error
                return None
            if done is not None:
                done(j, r)
            return r

        if self._pool is None:
            with self._ep_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.cfg.max_concurrency, thread_name_prefix="autointerp-llm"
                    )
        # each request in a copy of the caller's context: its spending reaches the caller's meters
        out = [
            f.result()
            for f in [self._pool.submit(contextvars.copy_context().run, guarded, j, it) for j, it in enumerate(items)]
        ]
        if batch.fatal is not None:
            raise batch.fatal
        return out

    # ------------------------------------------------------------------ primitives

    def _generate(self, messages: list[Messages], max_tokens: int, temperature: float, done=None) -> list[Generation]:
        def one(msgs, batch):
            body = {"model": self.cfg.model, "messages": msgs, "max_tokens": max_tokens, "temperature": temperature}
            resp, err, dt = self._call(
                lambda c: c.post("/chat/completions", body=body, cast_to=object), "chat completions", batch
            )
            if err is None:
                try:
                    text = resp["choices"][0]["message"]["content"]
                    if not isinstance(text, str):
                        raise ValueError(f"no text in the answer: {str(resp)[:200]}")
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return Generation(text.strip(), pt, ct, dt)
                except (AttributeError, IndexError, TypeError, ValueError, KeyError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return Generation("", 0, 0, dt, error=err)

        return self._map(one, list(messages), done)

    def _option_logprobs(self, messages: list[Messages], options: list[str], done=None) -> list[OptionLogprobs]:
        k = min(self.cfg.top_logprobs, 20)
        spellings = {o: option_spellings(o) for o in options}

        def one(msgs, batch):
            body = {
                "model": self.cfg.model,
                "messages": msgs,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": k,
            }
            resp, err, dt = self._call(
                lambda c: c.post("/chat/completions", body=body, cast_to=object),
                "chat completions with logprobs",
                batch,
            )
            if err is None:
                try:
                    lp = resp["choices"][0].get("logprobs")
                    content = lp.get("content") if isinstance(lp, dict) else None
                    if not content:
                        raise _Fatal(
                            LogprobsUnsupported(
                                f"the {self._where()} returns no log-probabilities for chat completions "
                                "(logprobs=True, top_logprobs). Use a server that does (vLLM, OpenAI, llama.cpp) or "
                                "switch the scorer to generated answers (for example score.detection.mode: generation)."
                            )
                        )
                    values = option_values(content[0], spellings)
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return OptionLogprobs(values, prompt_tokens=pt)
                except (AttributeError, IndexError, TypeError, ValueError, KeyError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return OptionLogprobs(error=err)

        return self._map(one, list(messages), done)

    def _continuation_logprobs(self, prefixes: list[str], texts: list[str], done=None) -> list[TokenLogprobs]:
        def one(pair, batch):
            prefix, text = pair
            body = {
                "model": self.cfg.model,
                "prompt": prefix + text,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 0,
            }
            resp, err, dt = self._call(
                lambda c: c.post("/completions", body=body, cast_to=object), "completions with echo", batch
            )
            if err is None:
                try:
                    lp = resp["choices"][0].get("logprobs")
                    if not isinstance(lp, dict) or not lp.get("token_logprobs") or lp.get("text_offset") is None:
                        raise _Fatal(_unsupported_echo(self._where()))
                    start, end = len(prefix), len(prefix) + len(text)
                    if end and not any(off < end for off in lp["text_offset"]):  # echo ignored: no prompt token
                        raise _Fatal(_unsupported_echo(self._where()))
                    vals, toks = [], []
                    for tok, v, off in zip(lp["tokens"], lp["token_logprobs"], lp["text_offset"]):
                        if start <= off < end:
                            if v is None:
                                raise ValueError("null log-probability inside the text")
                            vals.append(float(v))
                            toks.append(tok)
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return TokenLogprobs(vals, toks, prompt_tokens=pt)
                except (AttributeError, IndexError, TypeError, ValueError, KeyError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return TokenLogprobs(error=err)

        return self._map(one, list(zip(prefixes, texts)), done)
