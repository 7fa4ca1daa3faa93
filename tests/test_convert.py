"""Token lists made from the Rust ids (``rust/py/convert.rs``): one shared int per id, made the
first time a list needs it; ids past the cache made on demand; failed allocations raise
``MemoryError``, and the cache stays usable after one."""

from __future__ import annotations

import contextlib
import gc
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

import fastllm
from fastllm import Encoding, _fastllm
from reference import reference_encoding


def test_lists_equal_tiktoken_and_share_one_int_per_id():
    enc, ref = fastllm.get_encoding("o200k_base"), reference_encoding("o200k_base")
    text = "the cache fills as ids are first used; " * 50 + "\u4e2d\u6587 \U0001f389 done"
    first = enc.encode_ordinary(text)
    assert first == ref.encode_ordinary(text)
    again = enc.encode(text)
    assert again == first
    big = [i for i, t in enumerate(first) if t > 256]
    assert big
    for i in big:
        assert again[i] is first[i]
    assert all(type(t) is int for t in first)


def test_ids_past_the_cache_and_lists_outliving_their_encoding():
    ranks = {bytes([b]): b for b in range(256)}
    enc = Encoding(
        "big", pat_str="r50k", mergeable_ranks=ranks, special_tokens={"<|x|>": 60_000_000}
    )
    ids = enc.encode("hi <|x|> hi", allowed_special="all")
    assert ids == [104, 105, 32, 60_000_000, 32, 104, 105]
    assert enc.encode_batch(["hi", "<|x|>"], allowed_special="all") == [[104, 105], [60_000_000]]
    del enc
    gc.collect()
    # The ints the lists hold are their own references: the cache's went with the encoding.
    assert ids == [104, 105, 32, 60_000_000, 32, 104, 105]
    assert sum(ids) == 60_000_000 + 2 * (104 + 105 + 32)


def test_list_under_a_memory_cap_gives_memory_error_then_works():
    code = textwrap.dedent(
        """
        import resource
        import fastllm
        enc = fastllm.get_encoding("cl100k_base")
        text = " ".join(f"w{i} {i * 7919 % 100003}" for i in range(60_000))
        expected = enc.encode_to_numpy(text).tolist()
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        results = []
        for extra_mb in (0, 1, 4):
            # The soft limit only, so that it can be lifted again.
            resource.setrlimit(resource.RLIMIT_AS, (vm + (extra_mb << 20), hard))
            try:
                results.append(enc.encode_ordinary(text) == expected)
            except MemoryError:
                results.append("MemoryError")
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        print(results)
        print(enc.encode_ordinary(text) == expected, enc.encode_ordinary(text) == expected)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert "MemoryError" in lines[0], proc.stdout
    assert "False" not in lines[0], proc.stdout
    assert lines[1] == "True True", proc.stdout


# ---- a long non-ASCII str read in parts (``for_each_str_part``) ----

_PIECES = [
    "hello", " world", "\n", "\n\n", "  ", "   \n", "\r\n", "\t", " ", "it's", " we'll", "DON'T",
    "'s", "123", " 4567", "3.14", "\u4e2d\u6587\u5b57", "\u3002", "\U0001f389", "\U0001f600\u200d",
    "caf\u00e9", " na\u00efve", "\u00a0", "\u3000", "(x)", "a.b", "/path", "x\n/y", "def f():",
    "\n    return", " \u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947",
]


def _mixed(seed: int, n: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(_PIECES) for _ in range(n))


@contextlib.contextmanager
def _chunk_chars(chars: int) -> Iterator[None]:
    previous = _fastllm._set_str_chunk_chars(chars)
    try:
        yield
    finally:
        _fastllm._set_str_chunk_chars(previous)


@pytest.mark.parametrize("name", ["gpt2", "p50k_base", "cl100k_base", "o200k_base"])
def test_long_str_in_parts_equals_tiktoken(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    texts = [_mixed(seed, 400) for seed in range(12)]
    texts.append("\u4e2d\u6587" * 300 + " a b\nc d " + "\U0001f389" * 200)  # few cuts
    texts.append("\u4e2d" * 500)  # no cut at all: read whole, twice as long each time
    texts.append("x y" + "\u00e9" * 300 + "\n\n\n" + "a b" * 50)
    for chunk in (2, 3, 7, 16, 61, 400, 1 << 20):
        with _chunk_chars(chunk):
            for text in texts:
                expected = ref.encode_ordinary(text)
                got = enc.encode_to_numpy(text, disallowed_special=())
                assert got.dtype == np.uint32
                assert got.tolist() == expected, (name, chunk, text[:80])


def test_long_str_in_parts_with_special_tokens_and_surrogates():
    enc, ref = fastllm.get_encoding("cl100k_base"), reference_encoding("cl100k_base")
    text = "".join(
        _mixed(seed, 40) + ("<|endoftext|>" if seed % 2 else " <|fim_prefix|>\n")
        for seed in range(30)
    )
    with _chunk_chars(5):
        got = enc.encode_to_numpy(text, allowed_special="all").tolist()
        assert got == ref.encode(text, allowed_special="all")
        with pytest.raises(ValueError) as expected:
            ref.encode(text)
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            enc.encode_to_numpy(text)
        lone = _mixed(3, 200) + "\ud800" + _mixed(4, 200)
        assert enc.encode_to_numpy(lone).tolist() == ref.encode(lone)


def test_long_str_in_parts_leaves_no_utf8_copy_on_the_str():
    enc = fastllm.get_encoding("o200k_base")
    text = _mixed(7, 3000)
    # A fresh non-ASCII str: CPython counts a cached UTF-8 copy in its size.
    text = "".join([text[:10], text[10:]])
    size = sys.getsizeof(text)
    with _chunk_chars(1000):
        enc.encode_to_numpy(text)
    assert sys.getsizeof(text) == size
    enc.encode_to_numpy(text)  # short enough to be read whole: CPython caches its UTF-8
    assert sys.getsizeof(text) > size
