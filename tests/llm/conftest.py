"""Fixtures of the LLM client tests: ``fake_server`` starts loopback servers of
:mod:`fake_server` (a real OpenAI-compatible HTTP server that misbehaves on purpose)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_server import FakeServer  # noqa: E402


@pytest.fixture
def fake_server():
    """A factory of started servers (stopped at the end of the test)."""
    started = []

    def start(**kw):
        srv = FakeServer(**kw).__enter__()
        started.append(srv)
        return srv

    yield start
    for s in started:
        s.__exit__(None, None, None)
