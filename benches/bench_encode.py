"""encode_ordinary throughput: fastllm vs tiktoken vs a pure-Python BPE, on unseen text.

Each round encodes a chunk that no earlier round saw (``pedantic`` with a ``setup`` that hands
out the next chunk), so no cache can flatter anyone. Run:

    python3 -m pytest benches/bench_encode.py --benchmark-only --benchmark-group-by=param:kind

``extra_info["bytes"]`` is the chunk size: MB/s = bytes / mean time.
"""

from __future__ import annotations

import fastllm
import pytest
from conftest import KINDS, chunks
from fastllm.registry import BUNDLED

tiktoken = pytest.importorskip("tiktoken")
from pure_python_bpe import PurePythonBPE  # noqa: E402
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

CHUNK = 150_000
ROUNDS = {"fastllm": 12, "tiktoken": 12, "pure_python": 2}
ENCODINGS = ["gpt2", "cl100k_base"]

_ENCODERS: dict[tuple[str, str], object] = {}


def encoder(contender: str, name: str):
    key = (contender, name)
    if key not in _ENCODERS:
        spec = BUNDLED[name]
        if contender == "fastllm":
            _ENCODERS[key] = fastllm.get_encoding(name)
        else:
            ranks = load_tiktoken_bpe(str(spec.path), expected_hash=spec.sha256)
            if contender == "tiktoken":
                _ENCODERS[key] = tiktoken.Encoding(
                    name,
                    pat_str=spec.pattern,
                    mergeable_ranks=ranks,
                    special_tokens=dict(spec.special_tokens),
                )
            else:
                _ENCODERS[key] = PurePythonBPE(ranks, spec.pattern)
    return _ENCODERS[key]


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("contender", ["fastllm", "tiktoken", "pure_python"])
def test_encode_ordinary(benchmark, contender, kind, name):
    enc = encoder(contender, name)
    rounds = ROUNDS[contender]
    texts = iter(chunks(kind, rounds + 1, CHUNK))
    enc.encode_ordinary(next(texts))  # warm-up on its own text
    benchmark.group = f"encode_ordinary {name} {kind}"
    benchmark.extra_info["bytes"] = CHUNK
    benchmark.extra_info["contender"] = contender
    result = benchmark.pedantic(
        enc.encode_ordinary, setup=lambda: ((next(texts),), {}), rounds=rounds, iterations=1
    )
    assert len(result) > CHUNK // 8
