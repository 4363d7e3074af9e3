"""A fast OpenAI-compatible server on loopback (asyncio, HTTP/1.1 keep-alive) that answers at
once and can misbehave at configured rates: HTTP 429, HTTP 500, timeouts (the server holds the
request past the client's timeout, then closes without an answer) and dropped connections
(the request is read, then the connection is closed without an answer).

Used by the soak test (tests/llm/test_soak.py) and the overhead benchmark
(benchmarks/llm_overhead.py). Answers are a pure function of the request's text, so a test can
check that every result is the one the server sent for that request:
- chat completions: ``answer_text(text)``; with ``logprobs`` the first token is "Yes" and its
  ``top_logprobs`` list Yes/No spellings with probabilities ``yes_probability(text)``;
- completions with ``echo``: word "tokens" (with the whitespace before them), offsets and
  made-up log-probabilities (``echo_body``).

A fault is drawn per (request text, attempt number) from a seeded hash, so the same run
injects the same faults whatever the thread scheduling. Every request that reaches the server
is counted (``received``), by outcome (``outcomes``: ok, 429, 500, timeout, drop) and by text.

    python tests/llm/loopback.py [--port 0]   # serve until killed; prints the URL
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import math
import re
import threading

FAULTS = ("429", "500", "timeout", "drop")


def _u(*parts) -> float:
    """A uniform number in [0, 1) from a hash of ``parts``."""
    h = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def answer_text(text: str) -> str:
    return f"Explanation: words like {text.split()[-1] if text.split() else ''} ({_u('a', text):.6f})"


def yes_probability(text: str) -> float:
    return 0.05 + 0.9 * _u("p", text)


def request_text(path: str, body: dict) -> str:
    if path.endswith("/chat/completions"):
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        return users[-1] if users else ""
    return str(body.get("prompt", ""))


def response_body(kind: str, model: str, choices: list[dict], usage: dict, id_: str) -> dict:
    """The envelope of an OpenAI-compatible answer; ``kind``: chat.completion or text_completion."""
    return {"id": id_, "object": kind, "created": 0, "model": model, "choices": choices, "usage": usage}


def chat_body(model: str, text: str, body: dict) -> dict:
    usage = {"prompt_tokens": max(1, len(text) // 4), "completion_tokens": 1, "total_tokens": 0}
    choice = {
        "index": 0,
        "finish_reason": "stop",
        "logprobs": None,
        "message": {"role": "assistant", "content": answer_text(text)},
    }
    if body.get("logprobs"):
        p = yes_probability(text)
        # Realistic spread over spellings: most mass on "Yes"/" No", some on lower-case and spaced forms.
        alts = [
            ("Yes", 0.7 * p),
            (" No", 0.6 * (1 - p)),
            ("No", 0.3 * (1 - p)),
            (" Yes", 0.2 * p),
            ("yes", 0.1 * p),
            ("no", 0.1 * (1 - p)),
            ("The", 0.001),
        ]
        alts.sort(key=lambda a: -a[1])
        k = int(body.get("top_logprobs") or 0)
        top = [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in alts[:k]]
        first = top[0] if top else {"token": "Yes", "logprob": math.log(0.7 * p), "bytes": None}
        choice["message"]["content"] = first["token"]
        choice["logprobs"] = {"content": [{**first, "top_logprobs": top}], "refusal": None}
        usage["completion_tokens"] = 1
    return response_body("chat.completion", model, [choice], usage, "chatcmpl-loopback")


def echo_body(model: str, text: str) -> dict:
    """Prompt log-probabilities of ``text``: "tokens" are words with the whitespace before them
    (``"The", " cat", "\\n\\nText"``), log P(token) = -len(token); the first token has none."""
    toks = re.findall(r"\s*\S+|\s+$", text) or [text]
    offs = [0]
    for t in toks[:-1]:
        offs.append(offs[-1] + len(t))
    pos = offs[-1] + len(toks[-1])
    lps = [None] + [-float(len(t)) for t in toks[1:]]
    toks.append(" x")
    offs.append(pos)
    lps.append(-1.0)
    lp = {"tokens": toks, "token_logprobs": lps, "text_offset": offs, "top_logprobs": None}
    choice = {"index": 0, "text": text + " x", "finish_reason": "length", "logprobs": lp}
    usage = {"prompt_tokens": len(toks), "completion_tokens": 1, "total_tokens": len(toks) + 1}
    return response_body("text_completion", model, [choice], usage, "cmpl-loopback")


class LoopbackServer:
    """``rates``: {fault: probability} for the faults in FAULTS; ``hold``: seconds a "timeout"
    request is held (longer than the client's timeout); ``delay``: seconds before every answer."""

    def __init__(
        self,
        model: str = "fake-model",
        rates: dict[str, float] | None = None,
        seed: int = 0,
        hold: float = 1.0,
        delay: float = 0.0,
        port: int = 0,
    ):
        self.model, self.rates, self.seed, self.hold, self.delay = model, dict(rates or {}), seed, hold, delay
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; use {FAULTS}")
        self.port = port
        self.lock = threading.Lock()
        self.received = 0
        self.connections = 0  # TCP connections accepted
        self.outcomes: collections.Counter = collections.Counter()
        self.attempts: collections.Counter = collections.Counter()  # per request text
        self.ok_texts: collections.Counter = collections.Counter()  # 200 answers sent, per request text
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fault(self, text: str, attempt: int) -> str | None:
        u = _u(self.seed, text, attempt)
        for f in FAULTS:
            r = self.rates.get(f, 0.0)
            if u < r:
                return f
            u -= r
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self.lock:
            self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                data = json.loads(body or b"{}")
                text = request_text(path, data)
                with self.lock:
                    self.received += 1
                    self.attempts[text] += 1
                    n = self.attempts[text]
                f = self.fault(text, n) if data.get("model") == self.model else None
                if f in ("drop", "timeout"):
                    with self.lock:
                        self.outcomes[f] += 1
                    if f == "timeout":
                        await asyncio.sleep(self.hold)
                    return
                if self.delay:
                    await asyncio.sleep(self.delay)
                if data.get("model") != self.model:
                    status, out = 404, {"error": {"message": f"The model `{data.get('model')}` does not exist."}}
                elif f == "429":
                    status, out = 429, {"error": {"message": "rate limited"}}
                elif f == "500":
                    status, out = 500, {"error": {"message": "internal error"}}
                elif path.endswith("/chat/completions"):
                    status, out = 200, chat_body(self.model, text, data)
                elif path.endswith("/completions"):
                    status, out = 200, echo_body(self.model, text)
                else:
                    status, out = 404, {"error": {"message": "no such route"}}
                payload = json.dumps(out).encode()
                extra = "Retry-After: 0\r\n" if status == 429 else ""
                with self.lock:  # counted before the client can see the answer
                    self.outcomes["ok" if status == 200 else str(status)] += 1
                    if status == 200:
                        self.ok_texts[text] += 1
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
                    f"\r\n{extra}\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _main(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def serve_forever(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="fake-model")
    a = ap.parse_args()
    srv = LoopbackServer(model=a.model, port=a.port)
    threading.Thread(target=lambda: (srv._ready.wait(), print(srv.url, flush=True)), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
