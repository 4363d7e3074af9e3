"""Fixtures of the explain tests: a small examples table built from real text (explain_data.py)."""

from __future__ import annotations

import pytest
from explain_data import make_examples


@pytest.fixture(scope="session")
def examples(model_and_tokenizer):
    return make_examples(model_and_tokenizer[1])
