"""Benchmark text: disjoint chunks, so that no round sees text an earlier round saw."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from fastllm import corpus

# The book's reference code and the offline tiktoken reference live in tests/ (tests compare
# with them, benchmarks time them); benchmarks import them from there.
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))

KINDS = ("english", "python", "non_latin")


def chunks(kind: str, n: int, size: int) -> list[str]:
    """``n`` disjoint chunks of about ``size`` bytes of one kind of text."""
    if kind == "english":
        text = corpus.english_prose(n * size)
    elif kind == "python":
        text = corpus.python_source(n * size)
    else:
        text = corpus.non_latin_text(n * size)
    data = text.encode("utf-8")
    out = []
    for i in range(n):
        piece = data[i * size : (i + 1) * size].decode("utf-8", errors="ignore")
        if piece:
            out.append(piece)
    return out


def pytest_benchmark_update_machine_info(config, machine_info):
    import os

    machine_info["cores"] = os.cpu_count()
    machine_info["machine_summary"] = f"{platform.machine()}, {os.cpu_count()} cores"
