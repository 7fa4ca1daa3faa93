"""``fastllm tokenize`` of a Parquet shard vs the same documents as JSONL: throughput and peak RSS.

Target (issue 12): a Parquet shard of >= 200 MB (generated with pyarrow from the standard
library's sources, cut into 1-10 KB documents, each copy varied) tokenizes at >= 0.9x the speed
of the same documents given as JSONL; peak RSS <= 300 MB whatever the size. Both run as
``python -m fastllm tokenize ... -q --no-resume`` in a fresh child, interleaved round after round
(each keeps its best round). Run with

    python3 -m pytest benches/bench_parquet.py --benchmark-only -s \\
        --benchmark-json=benches/results/parquet.json

Set ``FASTLLM_BENCH_PARQUET_MB`` for another size (default 220).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fastllm import samples

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROUNDS = 3


def _documents(target_bytes: int) -> list[str]:
    """1-10 KB documents cut from the standard library's sources at blank lines."""
    texts = []
    for f in samples.stdlib_files():
        try:
            texts.append(f.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            continue
    docs: list[str] = []
    size = 0
    copy = 0
    while size < target_bytes:
        for text in texts:
            text = text.replace("self", f"self_{copy}") if copy else text
            start = 0
            step = 1000 + (len(docs) * 7919) % 9000
            while start < len(text) and size < target_bytes:
                end = text.find("\n\n", start + step)
                end = len(text) if end < 0 else end + 2
                doc = text[start:end]
                docs.append(doc)
                size += len(doc.encode("utf-8"))
                start = end
            if size >= target_bytes:
                break
        copy += 1
    return docs


def _peak_rss(command: list[str]) -> tuple[int, float]:
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True)\n"
        "seconds = time.perf_counter() - start\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, seconds)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    peak, seconds = run.stdout.split()[-2:]
    return int(peak), float(seconds)


@pytest.mark.skipif(not hasattr(resource, "RUSAGE_CHILDREN"), reason="needs getrusage")
def test_parquet_vs_jsonl(benchmark):
    target = int(os.environ.get("FASTLLM_BENCH_PARQUET_MB", "220")) * 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="fastllm-parquet-"))
    try:
        docs = _documents(target)
        size = sum(len(d.encode("utf-8")) for d in docs)
        shard = folder / "shard.parquet"
        pq.write_table(pa.table({"text": docs}), shard)  # pyarrow's defaults: snappy
        jsonl = folder / "shard.jsonl"
        with jsonl.open("w", encoding="utf-8") as f:
            for doc in docs:
                f.write(json.dumps({"text": doc}) + "\n")
        del docs
        results: dict[str, list[tuple[int, float]]] = {"parquet": [], "jsonl": []}

        def command(src: Path) -> list[str]:
            return [
                sys.executable,
                "-m",
                "fastllm",
                "tokenize",
                str(src),
                "-o",
                str(folder / f"{src.suffix[1:]}.bin"),
                "-q",
                "--no-resume",
            ]

        def run() -> None:
            for _ in range(ROUNDS):
                for name, src in (("parquet", shard), ("jsonl", jsonl)):
                    results[name].append(_peak_rss(command(src)))

        benchmark.pedantic(run, rounds=1, iterations=1)
        best = {name: min(s for _, s in runs) for name, runs in results.items()}
        peak = {name: max(p for p, _ in runs) for name, runs in results.items()}
        mbps = {name: size / 1e6 / s for name, s in best.items()}
        ratio = mbps["parquet"] / mbps["jsonl"]
        benchmark.group = "corpus: Parquet vs JSONL"
        benchmark.extra_info.update(
            text_bytes=size,
            parquet_bytes=shard.stat().st_size,
            jsonl_bytes=jsonl.stat().st_size,
            parquet_mb_per_s=round(mbps["parquet"], 1),
            jsonl_mb_per_s=round(mbps["jsonl"], 1),
            ratio=round(ratio, 3),
            parquet_peak_rss_mb=round(peak["parquet"] / 1e6, 1),
            jsonl_peak_rss_mb=round(peak["jsonl"] / 1e6, 1),
        )
        print(
            f"\nparquet {mbps['parquet']:.1f} MB/s of text, jsonl {mbps['jsonl']:.1f} MB/s "
            f"(ratio {ratio:.2f}); peak RSS parquet {peak['parquet'] / 1e6:.0f} MB, "
            f"jsonl {peak['jsonl'] / 1e6:.0f} MB; {size / 1e6:.0f} MB of text"
        )
        assert peak["parquet"] <= 300e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)
