"""CPU time per phase of the flat batch call, interleaved rounds in one process.

For a shared machine, where batch walls are not usable: per encoding and kind of text (2 MB cut
into 1-10 KB documents, ``texts.split_docs``), the median over rounds of

- ``one_cpu``: ``encode_to_numpy`` of the whole text (one thread);
- ``b1_cpu`` / ``b2_cpu``: ``encode_ordinary_batch_to_numpy`` on 1 / 2 threads, fresh ``str``s
  (their UTF-8 not yet cached by CPython), and ``b2_wall``;
- ``b2cached_cpu``: the 2-thread call again on the same ``str``s (UTF-8 cached): the difference
  to ``b2_cpu`` is the extraction of the list.

``scal`` = one_cpu / b2_wall (meaningful only with the cores free). Run with

    python3 benches/batch_cpu.py [cl100k_base,o200k_base] [english,python,non_latin] [rounds]
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fastllm
from fastllm import corpus
from texts import split_docs


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fresh(docs: list[str]) -> list[str]:
    """New ``str`` objects with the same text (no cached UTF-8)."""
    return [(d + ".")[:-1] for d in docs]


def main() -> None:
    encs = sys.argv[1].split(",") if len(sys.argv) > 1 else ["cl100k_base"]
    kinds = sys.argv[2].split(",") if len(sys.argv) > 2 else ["english", "python", "non_latin"]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    sources = {
        "english": corpus.english_prose,
        "python": corpus.python_source,
        "non_latin": corpus.non_latin_text,
    }
    print("load", os.getloadavg())
    for name in encs:
        enc = fastllm.get_encoding(name)
        for kind in kinds:
            text = sources[kind](2_000_000)
            n = len(text.encode())
            docs = split_docs(text, 1)
            res: dict[str, list[float]] = {
                k: [] for k in ("one_cpu", "b1_cpu", "b2_cpu", "b2_wall", "b2cached_cpu")
            }
            enc.encode_ordinary_batch_to_numpy(fresh(docs), num_threads=2)
            for _ in range(rounds):
                t = (text + ".")[:-1]
                c = cpu()
                enc.encode_to_numpy(t, disallowed_special=())
                res["one_cpu"].append(cpu() - c)
                f = fresh(docs)
                c = cpu()
                enc.encode_ordinary_batch_to_numpy(f, num_threads=1)
                res["b1_cpu"].append(cpu() - c)
                f = fresh(docs)
                c, w = cpu(), time.perf_counter()
                enc.encode_ordinary_batch_to_numpy(f, num_threads=2)
                res["b2_wall"].append(time.perf_counter() - w)
                res["b2_cpu"].append(cpu() - c)
                c = cpu()
                enc.encode_ordinary_batch_to_numpy(f, num_threads=2)
                res["b2cached_cpu"].append(cpu() - c)
            med = {k: statistics.median(v) for k, v in res.items()}
            cells = " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in med.items())
            print(
                f"{name} {kind} {n / 1e6:.2f} MB, {len(docs)} docs: {cells} | "
                f"one {n / med['one_cpu'] / 1e6:.1f} MB/s (CPU), b1 {n / med['b1_cpu'] / 1e6:.1f}, "
                f"b2 wall {n / med['b2_wall'] / 1e6:.1f}, "
                f"scal {med['one_cpu'] / med['b2_wall']:.2f}"
            )
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
