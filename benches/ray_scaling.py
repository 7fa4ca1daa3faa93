"""The figures of README "Past one machine": local ``fastllm tokenize`` vs ``--ray`` with 1 and
2 actors on the same Parquet input (made from this Python's standard library sources).

    python benches/ray_scaling.py DIR [--gb 1.0]

Writes ``DIR/corpus/*.parquet`` once (>= ``--gb`` GB, 8 files, zstd), then runs, each in its
own process (its peak RSS measured): the local command on the same documents as JSONL (the
local command reads no Parquet yet on this branch; the tokens are the same), and
``fastllm.distributed.tokenize`` with 1 and 2 actors on a fresh local Ray instance (start-up
included in the wall-clock; the steady state from the first encoded batch on). Prints one line
per run and checks that the token files are identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_RUN = """
import json, resource, sys, time
kind, out, inputs, actors = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
if kind == "local":
    import fastllm
    stats = fastllm.tokenize_files(inputs, out, resume=False)
    extra = {}
else:
    from fastllm import distributed
    stats = distributed.tokenize(inputs, out, actors=actors, resume=False)
    extra = {"startup": stats.startup_seconds, "steady": stats.steady_bytes_per_second}
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "bytes": stats.input_bytes, "text_bytes": stats.text_bytes,
                  "tokens": stats.tokens, "rss_mb": rss, **extra}))
"""


def make_corpus(folder: Path, gb: float) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastllm import samples

    parquet, jsonl = folder / "parquet", folder / "jsonl"
    if parquet.exists() and jsonl.exists():
        return parquet, jsonl
    parquet.mkdir(parents=True)
    jsonl.mkdir(parents=True)
    source = samples.python_source(64_000_000)
    target = int(gb * 1e9)
    per_file = target // 8 + 1
    written, shift, n = 0, 0, 0
    while written < target:
        docs: list[str] = []
        size = 0
        start = shift
        while size < per_file:
            length = 1000 + (start * 7919) % 9000
            if start + length > len(source):
                start = (start + 977) % 5000
                continue
            docs.append(source[start : start + length])
            size += length
            start += length
        shift = (shift + 131) % 10_000
        pq.write_table(
            pa.table({"text": docs}), parquet / f"part-{n:03d}.parquet", compression="zstd"
        )
        with open(jsonl / f"part-{n:03d}.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
        written += size
        n += 1
    return parquet, jsonl


def run(kind: str, out: Path, inputs: Path, actors: int = 0) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, kind, str(out), str(inputs), str(actors)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    parquet, jsonl = make_corpus(args.dir / "corpus", args.gb)
    runs = [("local", jsonl, 0), ("ray", parquet, 1), ("ray", parquet, 2)]
    results = {}
    for kind, inputs, actors in runs:
        name = kind if kind == "local" else f"ray-{actors}"
        started = time.perf_counter()
        r = run(kind, args.dir / f"{name}.bin", inputs, actors)
        r["outer_wall"] = time.perf_counter() - started
        results[name] = r
        text_mb = r["text_bytes"] / 1e6
        line = f"{name:8s} wall {r['wall']:7.1f} s  {text_mb / r['wall']:6.1f} MB/s of text"
        if "startup" in r:
            steady_text = text_mb / (r["wall"] - r["startup"])
            line += f"  start-up {r['startup']:5.1f} s  steady {steady_text:6.1f} MB/s of text"
        line += f"  peak RSS {r['rss_mb']:.0f} MB"
        print(line, flush=True)
    same = all(
        (args.dir / f"{n}.bin").read_bytes() == (args.dir / "local.bin").read_bytes()
        for n in ("ray-1", "ray-2")
    )
    local, one, two = results["local"], results["ray-1"], results["ray-2"]
    def steady(r: dict[str, float]) -> float:
        return r["text_bytes"] / (r["wall"] - r["startup"])
    print(
        f"identical tokens: {same}; ray-2/local wall {local['wall'] / two['wall']:.2f}x, "
        f"steady {steady(two) / (local['text_bytes'] / local['wall']):.2f}x; "
        f"ray-2/ray-1 steady {steady(two) / steady(one):.2f}x; "
        f"load {open('/proc/loadavg').read().split()[:3]}"
    )


if __name__ == "__main__":
    main()
