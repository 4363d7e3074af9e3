"""Threaded OpenAI-compatible HTTP servers on loopback for the tests.

``FakeServer`` misbehaves on purpose. The last user message (not an assistant prefill) picks the
behaviour: ``429once`` (HTTP 429, then OK), ``500`` (always HTTP 500), ``slow`` (answers after
``slow_seconds``), ``garbage`` (HTTP 200 with malformed JSON); anything else gets a normal answer. Every request is counted per path and message.
``key``: answer HTTP 401 unless the request carries ``Bearer <key>``. ``recorded``: a recorded
chat-completions body (dict) sent for every chat request that asks for log-probabilities.

``ChatServer`` answers every chat request with the text a test scripts: ``answer(body)`` returns the
assistant text for a chat-completions request body; every body is kept (``bodies``), so a test
sees exactly what the client sent, in order.

Other test folders import this module with ``tests/llm`` on ``sys.path``.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback import echo_body, response_body


class FakeServer:
    def __init__(self, model="fake-model", logprobs=True, slow_seconds=3.0, key=None, recorded=None):
        # logprobs: True, False (answers without them) or "reject" (HTTP 400 naming them)
        self.model, self.logprobs, self.slow_seconds = model, logprobs, slow_seconds
        self.key, self.recorded = key, recorded
        self.counts: collections.Counter = collections.Counter()
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, headers=()):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.auth.add(self.headers.get("Authorization", ""))
                server.handle(self, self.path, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def handle(self, h, path, body):
        if self.key is not None and h.headers.get("Authorization") != f"Bearer {self.key}":
            return h._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
        if self.logprobs == "reject" and (body.get("logprobs") or body.get("echo")):
            return h._send(400, {"error": {"message": "logprobs are not supported by this model", "type": "invalid"}})
        if body.get("model") != self.model:
            return h._send(404, {"error": {"message": f"model {body.get('model')} does not exist"}})
        if path.endswith("/chat/completions"):
            text = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        elif path.endswith("/completions"):
            text = body["prompt"]
        else:
            return h._send(404, {"error": {"message": "no such route"}})
        with self.lock:
            self.counts[(path, text)] += 1
            n = self.counts[(path, text)]
        if "429once" in text and n == 1:
            return h._send(429, {"error": {"message": "rate limited"}}, [("Retry-After", "0")])
        if "500" in text:
            return h._send(500, {"error": {"message": "internal error"}})
        if "slow" in text:
            time.sleep(self.slow_seconds)
        if "garbage" in text:
            return h._send(200, b'{"choices": [{"message": {"content": "Expl')
        usage = {"prompt_tokens": len(str(body).split()), "completion_tokens": 3, "total_tokens": 0}
        if path.endswith("/chat/completions") and body.get("logprobs") and self.recorded is not None:
            return h._send(200, self.recorded)
        if path.endswith("/chat/completions"):
            msg = {"role": "assistant", "content": f"Thinking.\nExplanation: words like {text.split()[-1]}"}
            choice = {"index": 0, "message": msg, "finish_reason": "stop", "logprobs": None}
            if body.get("logprobs") and self.logprobs:
                top = [
                    {"token": "Yes", "logprob": -0.2, "bytes": None},
                    {"token": " No", "logprob": -1.8, "bytes": None},
                ]
                choice["logprobs"] = {
                    "content": [{"token": "Yes", "logprob": -0.2, "bytes": None, "top_logprobs": top}]
                }
            return h._send(200, response_body("chat.completion", self.model, [choice], usage, "x"))
        # completions with echo: whitespace "tokens" with offsets and made-up log-probabilities
        if not self.logprobs:
            choice = {"index": 0, "text": text + " x", "finish_reason": "length", "logprobs": None}
            return h._send(200, response_body("text_completion", self.model, [choice], usage, "x"))
        return h._send(200, echo_body(self.model, text))


class ChatServer(FakeServer):
    def __init__(self, answer: Callable[[dict], str], model: str = "fake-model"):
        super().__init__(model=model)
        self.answer = answer
        self.bodies: list[dict] = []

    def handle(self, h, path, body):
        with self.lock:
            self.bodies.append(body)
            text = self.answer(body)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        usage = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}
        return h._send(200, response_body("chat.completion", self.model, [choice], usage, "x"))
