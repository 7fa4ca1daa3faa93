"""``fastllm tokenize`` of a Parquet shard vs the same documents as JSONL: speed and peak RSS.

Target (issue 12): a Parquet shard of >= 200 MB (generated with pyarrow from the standard
library's sources, cut into 1-10 KB documents, each copy varied) tokenizes at >= 0.9x the speed
of the same documents given as JSONL; peak RSS <= 300 MB whatever the size.

Both run as ``python -m fastllm tokenize SRC -o OUT -q --no-resume`` in a fresh child,
interleaved (Parquet, JSONL, Parquet, ...), so a busy neighbour slows both alike. Speed is text
bytes per CPU second of the child (user + system, all threads), the figure that a machine
shared with other jobs does not distort; wall-clock MB/s and the load average are printed
beside it. The two token files must be equal. Peak RSS is the child's ``ru_maxrss``, for the
full shard and for a quarter of it (the same bound whatever the size). Run with

    python3 -m pytest benches/bench_parquet.py --benchmark-only -s \\
        --benchmark-json=benches/results/parquet.json

Set ``FASTLLM_BENCH_PARQUET_MB`` for another size (default 220), ``FASTLLM_BENCH_ROUNDS`` for
more rounds (default 3).
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pytest

import child_usage

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROUNDS = int(os.environ.get("FASTLLM_BENCH_ROUNDS", "3"))


def _documents(target_bytes: int) -> list[str]:
    """1-10 KB documents cut from the standard library's sources at blank lines."""
    sources = child_usage.stdlib_sources()
    docs: list[str] = []
    size = 0
    copy = 0
    while size < target_bytes:
        for data in sources:
            text = child_usage.varied(data, copy).decode("utf-8")
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


def _tokenize(src: Path, out: Path) -> child_usage.Usage:
    return child_usage.run(
        [sys.executable, "-m", "fastllm", "tokenize", str(src), "-o", str(out), "-q", "--no-resume"]
    )


def test_parquet_vs_jsonl(benchmark):
    target = int(os.environ.get("FASTLLM_BENCH_PARQUET_MB", "220")) * 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="fastllm-parquet-"))
    try:
        docs = _documents(target)
        size = sum(len(d.encode("utf-8")) for d in docs)
        shard = folder / "shard.parquet"
        pq.write_table(pa.table({"text": docs}), shard)  # pyarrow's defaults: snappy
        quarter = folder / "quarter.parquet"
        pq.write_table(pa.table({"text": docs[: len(docs) // 4]}), quarter)
        jsonl = folder / "shard.jsonl"
        with jsonl.open("w", encoding="utf-8") as f:
            for doc in docs:
                f.write(json.dumps({"text": doc}) + "\n")
        count = len(docs)
        del docs
        runs: dict[str, list[child_usage.Usage]] = {"parquet": [], "jsonl": []}
        outs = {"parquet": folder / "parquet.bin", "jsonl": folder / "jsonl.bin"}
        loads = [child_usage.load()]

        def run() -> None:
            for _ in range(ROUNDS):
                for name, src in (("parquet", shard), ("jsonl", jsonl)):
                    runs[name].append(_tokenize(src, outs[name]))
                loads.append(child_usage.load())

        benchmark.pedantic(run, rounds=1, iterations=1)
        small = _tokenize(quarter, folder / "quarter.bin")
        same = filecmp.cmp(outs["parquet"], outs["jsonl"], shallow=False)

        cpu = {name: statistics.median(u.cpu for u in us) for name, us in runs.items()}
        wall = {name: min(u.wall for u in us) for name, us in runs.items()}
        peak = {name: max(u.peak_rss for u in us) for name, us in runs.items()}
        cpu_mbps = {name: size / 1e6 / s for name, s in cpu.items()}
        # Per round: Parquet's CPU speed over the JSONL run next to it.
        ratios = [j.cpu / p.cpu for p, j in zip(runs["parquet"], runs["jsonl"])]
        ratio = statistics.median(ratios)
        benchmark.group = "corpus: Parquet vs JSONL"
        benchmark.extra_info.update(
            text_bytes=size,
            documents=count,
            parquet_bytes=shard.stat().st_size,
            jsonl_bytes=jsonl.stat().st_size,
            cpu_mb_per_s={k: round(v, 1) for k, v in cpu_mbps.items()},
            wall_mb_per_s={k: round(size / 1e6 / v, 1) for k, v in wall.items()},
            ratio_cpu=round(ratio, 3),
            ratios_cpu=[round(r, 3) for r in ratios],
            peak_rss_mb={k: round(v / 1e6, 1) for k, v in peak.items()},
            quarter_peak_rss_mb=round(small.peak_rss / 1e6, 1),
            same_tokens=same,
            loads=loads,
            targets={"ratio_cpu": 0.9, "parquet_peak_rss_mb": 300},
        )
        print(
            f"\n{size / 1e6:.0f} MB of text, {count:,} documents; {loads[0]} -> {loads[-1]}\n"
            f"CPU speed: parquet {cpu_mbps['parquet']:.1f} MB/s, jsonl "
            f"{cpu_mbps['jsonl']:.1f} MB/s; parquet/jsonl {ratio:.2f} (rounds: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f"; target >= 0.9)\nwall (best): parquet {size / 1e6 / wall['parquet']:.1f} MB/s, "
            f"jsonl {size / 1e6 / wall['jsonl']:.1f} MB/s\npeak RSS: parquet "
            f"{peak['parquet'] / 1e6:.0f} MB ({small.peak_rss / 1e6:.0f} MB for a quarter of it), "
            f"jsonl {peak['jsonl'] / 1e6:.0f} MB (target <= 300 MB)"
        )
        assert same
        assert peak["parquet"] <= 300e6 and small.peak_rss <= 300e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)
