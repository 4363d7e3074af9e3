"""OpenAI-compatible backend (vLLM, OpenRouter, Ollama, llama.cpp server, OpenAI) on the official SDK.

Requests run in a bounded thread pool; 429, 5xx, timeouts and dropped connections are
retried with exponential backoff and jitter. A request that still fails, or whose answer
is garbage, is a counted per-item failure. Mistakes that would fail every request (server
unreachable, wrong model name, bad or missing key, no log-probabilities) raise one
:class:`~autointerp.errors.AutointerpError`. The API key is held only by the SDK client:
it is never part of the config, a repr, a log line or a cached key.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from ..errors import AutointerpError
from .base import Generation, LLMClient, LLMConfig, Messages, OptionLogprobs, TokenLogprobs

log = logging.getLogger(__name__)

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError,
             openai.ConflictError)


class LogprobsUnsupported(AutointerpError):
    """The server does not return the log-probabilities a scorer asked for."""


class _Fatal(Exception):
    """Wraps an error that every request would hit: stop the batch and raise it."""


def resolve_api_key(cfg: LLMConfig, credentials: dict | None) -> str:
    if cfg.api_key_env is None:
        return "EMPTY"  # servers without authentication still want a non-empty string
    key = os.environ.get(cfg.api_key_env) or (credentials or {}).get("api_key")
    if not key:
        raise AutointerpError(
            f"no API key for the LLM server at {cfg.base_url}: set the environment variable {cfg.api_key_env}, "
            "or put `llm: {api_key: ...}` in conf/local/credentials.yml, or set llm.api_key_env: null "
            "for a server that needs no key."
        )
    return str(key)


class OpenAIClient(LLMClient):
    backend = "openai"

    def __init__(self, cfg: LLMConfig, cache=None, credentials: dict | None = None):
        super().__init__(cfg, cache)
        self._client = openai.OpenAI(api_key=resolve_api_key(cfg, credentials), base_url=cfg.base_url,
                                     timeout=cfg.timeout, max_retries=0)
        self._fatal: BaseException | None = None
        self._fatal_lock = threading.Lock()

    def __getstate__(self):  # never pickle the key along
        raise TypeError("an OpenAIClient holds an API key and is not picklable; build it with make_client in the node")

    # ------------------------------------------------------------------ request machinery

    def _where(self) -> str:
        return f"LLM server {self.cfg.base_url} (llm.base_url), model '{self.cfg.model}' (llm.model)"

    def _fatal_error(self, e: Exception, method: str) -> AutointerpError | None:
        if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
            return AutointerpError(f"{self._where()} refused the API key (HTTP {e.status_code}): check the key in "
                                   f"${self.cfg.api_key_env} or conf/local/credentials.yml.")
        if isinstance(e, openai.NotFoundError):
            return AutointerpError(f"{self._where()}: HTTP 404 for {method} ({_short(e)}). Check llm.model (is that "
                                   "model served?) and llm.base_url (it usually ends in /v1).")
        if isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError):
            return AutointerpError(f"cannot reach the {self._where()} after {self.cfg.max_retries + 1} attempts: "
                                   f"{_short(e)}. Is the server running? Check llm.base_url.")
        return None

    def _call(self, fn, method: str):
        """Run one request with retries. Returns (response, None, seconds) or (None, error, seconds)."""
        t0 = time.perf_counter()
        retries = 0
        while True:
            if self._fatal is not None:
                return None, "aborted", 0.0
            try:
                resp = fn()
                self._count(retries=retries)
                return resp, None, time.perf_counter() - t0
            except RETRYABLE as e:
                if retries >= self.cfg.max_retries:
                    self._count(retries=retries)
                    fatal = self._fatal_error(e, method)
                    if fatal is not None:
                        raise _Fatal(fatal) from None
                    return None, f"{type(e).__name__} after {retries + 1} attempts: {_short(e)}", time.perf_counter() - t0
                delay = min(self.cfg.backoff_max, self.cfg.backoff * 2 ** retries) * (0.5 + random.random())
                retry_after = _retry_after(e)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.cfg.backoff_max))
                log.debug("%s: %s, retrying in %.2fs", method, type(e).__name__, delay)
                retries += 1
                time.sleep(delay)
            except openai.APIStatusError as e:
                self._count(retries=retries)
                fatal = self._fatal_error(e, method)
                if fatal is not None:
                    raise _Fatal(fatal) from None
                return None, f"HTTP {e.status_code}: {_short(e)}", time.perf_counter() - t0
            except (openai.APIResponseValidationError, ValueError, TypeError, KeyError) as e:  # garbage body
                self._count(retries=retries)
                return None, f"malformed response: {_short(e)}", time.perf_counter() - t0

    def _map(self, fn, items: list):
        """``fn`` over items in the thread pool; a fatal error stops the rest and is raised once."""
        self._fatal = None
        if not items:
            return []

        def guarded(item):
            try:
                return fn(item)
            except _Fatal as f:
                with self._fatal_lock:
                    if self._fatal is None:
                        self._fatal = f.args[0]
                return None

        with ThreadPoolExecutor(max_workers=min(self.cfg.max_concurrency, len(items))) as pool:
            out = list(pool.map(guarded, items))
        if self._fatal is not None:
            err, self._fatal = self._fatal, None
            raise err
        return out

    # ------------------------------------------------------------------ primitives

    def _generate(self, messages: list[Messages], max_tokens: int, temperature: float) -> list[Generation]:
        def one(msgs):
            resp, err, dt = self._call(lambda: self._client.chat.completions.create(
                model=self.cfg.model, messages=msgs, max_tokens=max_tokens, temperature=temperature), "chat completions")
            if err is None:
                try:
                    text = resp.choices[0].message.content
                    if not isinstance(text, str):
                        raise ValueError(f"no text in the answer: {str(resp)[:200]}")
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return Generation(text.strip(), pt, ct, dt)
                except (AttributeError, IndexError, TypeError, ValueError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return Generation("", 0, 0, dt, error=err)

        return self._map(one, list(messages))

    def _option_logprobs(self, messages: list[Messages], options: list[str]) -> list[OptionLogprobs]:
        k = min(self.cfg.top_logprobs, 20)

        def one(msgs):
            resp, err, dt = self._call(lambda: self._client.chat.completions.create(
                model=self.cfg.model, messages=msgs, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k),
                "chat completions with logprobs")
            if err is None:
                try:
                    content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
                    if not content:
                        raise _Fatal(LogprobsUnsupported(
                            f"the {self._where()} returns no log-probabilities for chat completions "
                            "(logprobs=True, top_logprobs). Use a server that does (vLLM, OpenAI, llama.cpp) or "
                            "switch the scorer to generated answers (for example score.detection.mode: generation)."))
                    top = {}
                    for alt in content[0].top_logprobs or []:
                        t = alt.token.strip()
                        top[t] = max(top.get(t, -math.inf), float(alt.logprob))
                    first = content[0]
                    top.setdefault(first.token.strip(), float(first.logprob))
                    values = {o: top.get(o.strip(), -math.inf) for o in options}
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return OptionLogprobs(values, prompt_tokens=pt)
                except (AttributeError, IndexError, TypeError, ValueError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return OptionLogprobs(error=err)

        return self._map(one, list(messages))

    def _continuation_logprobs(self, prefixes: list[str], texts: list[str]) -> list[TokenLogprobs]:
        unsupported = LogprobsUnsupported(
            f"the {self._where()} does not return prompt log-probabilities (completions endpoint with echo=True "
            "and logprobs), which this scorer needs. Use a server that does (vLLM) or switch the scorer to "
            "generated answers (for example score.simulation.mode: generation).")

        def one(pair):
            prefix, text = pair
            try:
                resp, err, dt = self._call(lambda: self._client.completions.create(
                    model=self.cfg.model, prompt=prefix + text, max_tokens=1, temperature=0.0, echo=True, logprobs=0),
                    "completions with echo")
            except _Fatal as f:
                if isinstance(f.args[0], AutointerpError) and "404" in str(f.args[0]):
                    raise _Fatal(unsupported) from None
                raise
            if err is None:
                try:
                    lp = resp.choices[0].logprobs
                    if lp is None or not lp.token_logprobs or lp.text_offset is None:
                        raise _Fatal(unsupported)
                    start, end = len(prefix), len(prefix) + len(text)
                    vals, toks = [], []
                    for tok, v, off in zip(lp.tokens, lp.token_logprobs, lp.text_offset):
                        if start <= off < end:
                            if v is None:
                                raise ValueError("null log-probability inside the text")
                            vals.append(float(v))
                            toks.append(tok)
                    pt, ct = _tokens(resp)
                    self._count(requests=1, prompt_tokens=pt, completion_tokens=ct, seconds=dt)
                    return TokenLogprobs(vals, toks, prompt_tokens=pt)
                except (AttributeError, IndexError, TypeError, ValueError) as e:
                    err = f"malformed response: {_short(e)}"
            self._count(requests=1, failed=1, seconds=dt)
            return TokenLogprobs(error=err)

        return self._map(one, list(zip(prefixes, texts)))


def _tokens(resp) -> tuple[int, int]:
    u = getattr(resp, "usage", None)
    return int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0)


def _retry_after(e: Exception) -> float | None:
    resp = getattr(e, "response", None)
    try:
        return float(resp.headers.get("retry-after")) if resp is not None else None
    except (TypeError, ValueError):
        return None


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return s[:300]
