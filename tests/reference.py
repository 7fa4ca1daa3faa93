"""tiktoken built from fastllm's own bundled vocabulary files (offline): the reference that tests
and benchmarks compare with."""

from __future__ import annotations

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from fastllm.registry import BUNDLED

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
