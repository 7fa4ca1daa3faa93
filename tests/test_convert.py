"""Token lists made from the Rust ids (``rust/py/convert.rs``): one shared int per id, made the
first time a list needs it; ids past the cache made on demand; failed allocations raise
``MemoryError``, and the cache stays usable after one."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import fastllm
from fastllm import Encoding
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
