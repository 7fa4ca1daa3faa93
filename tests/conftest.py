"""Shared fixtures: tiktoken built from fastllm's own bundled vocabulary files (offline)."""

from __future__ import annotations

import pytest

import fastllm

tiktoken = pytest.importorskip("tiktoken")
from reference import reference_encoding  # noqa: E402

ENCODING_NAMES = ["gpt2", "cl100k_base"]


@pytest.fixture(params=ENCODING_NAMES)
def pair(request: pytest.FixtureRequest) -> tuple[fastllm.Encoding, tiktoken.Encoding]:
    """(fastllm encoding, tiktoken reference) for each bundled encoding."""
    return fastllm.get_encoding(request.param), reference_encoding(request.param)
