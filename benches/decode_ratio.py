"""Decode speed against tiktoken, in one process: CPU time, fastllm and tiktoken interleaved.

For each encoding and text kind (English prose, Python source, non-Latin text; ``--mb`` of each,
from :mod:`fastllm.samples`), tiktoken's tokens of the text are decoded by both, the outputs
checked equal, then ``--rounds`` rounds of ABBA-ordered calls are timed with
``time.process_time`` (CPU time: other jobs on the machine slow both alike). Prints one line per
cell: each side's median milliseconds per call and the ratio tiktoken/fastllm (the issue 15
target is >= 2.5 on every cell), with the load average before and after.

    taskset -c 1 python benches/decode_ratio.py              # the table
    taskset -c 1 python benches/decode_ratio.py --numpy      # fastllm fed a NumPy uint32 array

Not a pytest benchmark: a quick, quiet A/B for the decode path (benches/cold.py --only decode
gives the cold, fresh-process figures).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

KINDS = ("english", "python", "non_latin")
ENCODINGS = ("gpt2", "cl100k_base", "o200k_base")


def texts(megabytes: float) -> dict[str, str]:
    from fastllm import samples

    size = int(megabytes * 1_000_000)
    sources = {
        "english": samples.english_prose,
        "python": samples.python_source,
        "non_latin": samples.non_latin_text,
    }
    out = {}
    for kind, source in sources.items():
        data = source(size).encode("utf-8")[:size]
        out[kind] = data.decode("utf-8", errors="ignore")
    return out


def tiktoken_encoding(name: str) -> Any:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers import build, vocab_spec

    return build("tiktoken", vocab_spec(name))


def cpu_per_call(call: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.0, help="MB of text per kind")
    parser.add_argument("--rounds", type=int, default=7, help="ABBA rounds per cell")
    parser.add_argument("--calls", type=int, default=3, help="calls per timed sample")
    parser.add_argument("--encodings", nargs="+", default=list(ENCODINGS))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--numpy", action="store_true", help="fastllm decodes a NumPy array")
    args = parser.parse_args()

    import numpy as np

    import fastllm

    load = os.getloadavg()
    print(f"fastllm {fastllm.__file__}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    corpus = texts(args.mb)
    ratios = []
    for name in args.encodings:
        ours, ref = fastllm.get_encoding(name), tiktoken_encoding(name)
        for kind in args.kinds:
            text = corpus[kind]
            ids = ref.encode_ordinary(text)
            ours_in: Any = np.array(ids, dtype=np.uint32) if args.numpy else ids
            expected = ref.decode(ids)
            if ours.decode(ours_in) != expected:
                raise SystemExit(f"{name} {kind}: fastllm's decode differs from tiktoken's")
            mine: list[float] = []
            theirs: list[float] = []
            for r in range(args.rounds):
                pair = [
                    (mine, functools.partial(ours.decode, ours_in)),
                    (theirs, functools.partial(ref.decode, ids)),
                ]
                for sink, call in pair if r % 2 == 0 else pair[::-1]:
                    sink.append(cpu_per_call(call, args.calls))
            a, b = statistics.median(mine), statistics.median(theirs)
            ratios.append(b / a)
            print(
                f"{name:12} {kind:10} {len(text.encode()) / 1e6:5.2f} MB {len(ids):8} tokens"
                f"  fastllm {a * 1e3:7.2f} ms  tiktoken {b * 1e3:7.2f} ms  ratio {b / a:5.2f}",
                flush=True,
            )
    load = os.getloadavg()
    print(
        f"min ratio {min(ratios):.2f}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
