"""Shared fixtures: tiktoken built from fastllm's own bundled vocabulary files (offline)."""

from __future__ import annotations

import pytest

import fastllm
from fastllm.registry import BUNDLED

tiktoken = pytest.importorskip("tiktoken")
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

ENCODING_NAMES = ["gpt2", "cl100k_base"]

_REFERENCES: dict[str, object] = {}


def reference_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's Encoding for a bundled name, from the same rank file fastllm ships."""
    if name not in _REFERENCES:
        spec = BUNDLED[name]
        _REFERENCES[name] = tiktoken.Encoding(
            name=name,
            pat_str=spec.pattern,
            mergeable_ranks=load_tiktoken_bpe(str(spec.path), expected_hash=spec.sha256),
            special_tokens=dict(spec.special_tokens),
            explicit_n_vocab=spec.explicit_n_vocab,
        )
    return _REFERENCES[name]  # type: ignore[return-value]


@pytest.fixture(params=ENCODING_NAMES)
def pair(request: pytest.FixtureRequest) -> tuple[fastllm.Encoding, tiktoken.Encoding]:
    """(fastllm encoding, tiktoken reference) for each bundled encoding."""
    return fastllm.get_encoding(request.param), reference_encoding(request.param)
