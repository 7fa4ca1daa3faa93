"""A nanoGPT-style ``prepare.py``: the baseline ``fastllm tokenize`` is measured against.

nanoGPT's ``data/openwebtext/prepare.py`` maps ``tiktoken``'s ``encode_ordinary`` (plus the
end-of-text token) over the documents with ``datasets.map(num_proc=...)``, sums the lengths, and
copies the token lists into a ``uint16`` ``np.memmap`` in 1024 contiguous shards. This does the
same with a ``multiprocessing.Pool`` over files (one file = one document) instead of HF
``datasets`` (not needed offline), with tiktoken built from fastllm's bundled vocabulary files
(nothing is downloaded).

    python benches/nanogpt_prepare.py OUT.bin INPUT... [--num-proc N] [--encoding gpt2]

prints one JSON line: ``seconds`` (pool start to memmap flushed, interpreter start excluded),
``bytes``, ``tokens``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

_ENC = None


def load_tiktoken(name: str):
    """tiktoken's Encoding for a bundled fastllm encoding, built from the bundled file."""
    import tiktoken

    from fastllm.registry import ENCODING_CONSTRUCTORS

    # The bundled file's ranks (sha256-checked), in tiktoken's constructor form.
    return tiktoken.Encoding(**ENCODING_CONSTRUCTORS[name]())


def _init(name: str) -> None:
    global _ENC
    _ENC = load_tiktoken(name)


def process(path: str) -> list[int]:
    """nanoGPT's ``process(example)``: encode_ordinary, then append the end-of-text token."""
    assert _ENC is not None
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    ids = _ENC.encode_ordinary(text)
    ids.append(_ENC.eot_token)
    return ids


def prepare(files: list[str], out: str, num_proc: int, encoding: str) -> dict[str, float]:
    start = time.perf_counter()
    with multiprocessing.Pool(num_proc, initializer=_init, initargs=(encoding,)) as pool:
        tokenized = pool.map(process, files, chunksize=max(1, len(files) // (num_proc * 16)))
    arr_len = int(np.sum([len(ids) for ids in tokenized], dtype=np.uint64))
    arr = np.memmap(out, dtype=np.uint16, mode="w+", shape=(arr_len,))
    n = len(tokenized)
    total_batches = min(1024, n)
    idx = 0
    for batch_idx in range(total_batches):
        shard = tokenized[batch_idx * n // total_batches : (batch_idx + 1) * n // total_batches]
        arr_batch = np.concatenate([np.asarray(ids, dtype=np.uint16) for ids in shard])
        arr[idx : idx + len(arr_batch)] = arr_batch
        idx += len(arr_batch)
    arr.flush()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "bytes": sum(os.path.getsize(f) for f in files),
        "tokens": arr_len,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--encoding", default="gpt2")
    args = parser.parse_args()
    files: list[str] = []
    for name in args.inputs:
        if os.path.isdir(name):
            for root, _, names in sorted(os.walk(name)):
                files.extend(os.path.join(root, n) for n in sorted(names))
        else:
            files.append(name)
    print(json.dumps(prepare(files, args.out, args.num_proc, args.encoding)))


if __name__ == "__main__":
    main()
