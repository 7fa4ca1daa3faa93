"""Peak memory of ``encode_to_numpy`` on a 20 MB text, measured in a fresh process.

The child resets its peak-RSS counter (``/proc/self/clear_refs``) once the text is built, so
``peak - baseline`` is what encoding adds: the token array (4 bytes a token) plus working memory.
Target: at most 4.5 bytes per token + 16 MB, for every bundled encoding.

A long non-ASCII ``str`` is read in parts cut at safe cuts (``rust/py/convert.rs``,
``for_each_str_part``): before, CPython built (and cached on the ``str``) the UTF-8 of the whole
text, 20 MB above the tokens (cl100k "unicode": 38.1 MB against a 37.1 MB budget).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import json, sys, time
import fastllm
from fastllm import corpus

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

name, kind = sys.argv[1], sys.argv[2]
enc = fastllm.get_encoding(name)
enc.encode_to_numpy("warm up")
parts = corpus.english_prose(10_000_000) + corpus.python_source(20_000_000)
if kind == "ascii":
    parts = parts.encode("ascii", "ignore").decode("ascii")
text = parts[: 20_000_000]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
baseline = status("VmRSS:")
start = time.perf_counter()
tokens = enc.encode_to_numpy(text)
seconds = time.perf_counter() - start
peak = status("VmHWM:")
print(json.dumps({"tokens": int(tokens.size), "bytes": len(text.encode()), "seconds": seconds,
                  "baseline": baseline, "peak": peak}))
"""


def measure(name: str, kind: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["ascii", "unicode"])
@pytest.mark.parametrize("name", ["gpt2", "p50k_base", "cl100k_base", "o200k_base"])
def test_encode_to_numpy_peak_memory(benchmark, name, kind):
    benchmark.group = "memory encode_to_numpy 20 MB"
    result = benchmark.pedantic(measure, args=(name, kind), rounds=1, iterations=1)
    extra = result["peak"] - result["baseline"]
    budget = 4.5 * result["tokens"] + 16 * 2**20
    benchmark.extra_info.update(
        contender="fastllm",
        bytes=result["bytes"],
        tokens=result["tokens"],
        extra_mb=extra / 2**20,
        budget_mb=budget / 2**20,
        bytes_per_token_above_baseline=extra / result["tokens"],
    )
    assert result["bytes"] >= 19_000_000
    assert result["tokens"] > 1_000_000
