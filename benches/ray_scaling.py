"""The figures of README "Past one machine": local ``fastllm tokenize`` vs ``--ray`` with 1 and
2 actors on the same Parquet input (made from this Python's standard library sources).

    python benches/ray_scaling.py DIR [--gb 1.0] [--rounds 1]

Writes ``DIR/corpus/*.parquet`` once (>= ``--gb`` GB of text, 8 files, zstd), then runs, each
in its own process, interleaved ``--rounds`` times: the local ``fastllm.tokenize_files`` (all
cores) and ``fastllm.distributed.tokenize`` with 1 and 2 actors on a fresh local Ray instance
(connection and actor start-up included in the wall-clock; the steady state from the first
encoded batch on), all with the same shard size. For each run: wall-clock, the steady-state
rate, CPU seconds (the local process; the driver and the encoder actors of a Ray run) and the
peak RSS of the local process / the Ray driver, with the load average beside. Checks that
the shards and manifests are identical.

The machine may be shared: wall-clock figures are then under load (the load average is
printed); text MB per CPU-second does not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SHARD_TOKENS = 100_000_000

_RUN = """
import json, resource, sys, time
kind, out, inputs, actors, shard = sys.argv[1:6]
start = time.perf_counter()
if kind == "local":
    import fastllm
    stats = fastllm.tokenize_files(inputs, out, resume=False, shard_tokens=int(shard))
    extra = {}
else:
    from fastllm import distributed
    stats = distributed.tokenize(inputs, out, actors=int(actors), resume=False,
                                 shard_tokens=int(shard))
    extra = {"startup": stats.startup_seconds, "actor_cpu": stats.actor_cpu_seconds}
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec (from the forking parent).
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"wall": wall, "bytes": stats.input_bytes, "text_bytes": stats.text_bytes,
                  "tokens": stats.tokens, "rss_mb": hwm / 1024,
                  "cpu": usage.ru_utime + usage.ru_stime, **extra}))
"""


def make_corpus(folder: Path, gb: float) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastllm import samples

    parquet = folder / "parquet"
    if parquet.exists():
        return parquet
    tmp = folder / "parquet.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
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
            pa.table({"text": docs}), tmp / f"part-{n:03d}.parquet", compression="zstd",
            row_group_size=16_384,
        )
        written += size
        n += 1
    tmp.rename(parquet)
    return parquet


def run(kind: str, out: Path, inputs: Path, actors: int = 0) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, kind, str(out), str(inputs), str(actors),
         str(SHARD_TOKENS)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{kind} {actors}: {done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = float(open("/proc/loadavg").read().split()[0])
    return result


def _outputs(out: Path) -> dict[str, bytes]:
    from fastllm.tokenfile import manifest_path

    manifest = manifest_path(out)
    meta = json.loads(manifest.read_text())
    files = {manifest.name: manifest.read_bytes()}
    for shard in meta["shards"]:
        files[shard["file"]] = (out.parent / shard["file"]).read_bytes()
        files[shard["index"]] = (out.parent / shard["index"]).read_bytes()
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parquet = make_corpus(args.dir / "corpus", args.gb)
    print(f"input: {sum(p.stat().st_size for p in parquet.iterdir()) / 1e9:.2f} GB of Parquet "
          f"in {len(list(parquet.iterdir()))} files", flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for kind, actors in (("local", 0), ("ray", 1), ("ray", 2)):
            name = kind if kind == "local" else f"ray-{actors}"
            (args.dir / name).mkdir(exist_ok=True)
            r = run(kind, args.dir / name / "tokens.bin", parquet, actors)
            results.setdefault(name, []).append(r)
            text_mb = r["text_bytes"] / 1e6
            cpu = r["cpu"] + r.get("actor_cpu", 0.0)
            line = (f"{name:8s} wall {r['wall']:7.1f} s  {text_mb / r['wall']:6.1f} MB/s"
                    f"  CPU {cpu:7.1f} s ({text_mb / cpu:5.1f} MB/CPU-s)")
            if "startup" in r:
                steady = text_mb / (r["wall"] - r["startup"])
                line += (f"  start-up {r['startup']:5.1f} s  steady {steady:6.1f} MB/s"
                         f"  driver CPU {r['cpu']:6.1f} s")
            line += f"  peak RSS {r['rss_mb']:.0f} MB  load {r['load']:.1f}"
            print(line, flush=True)
    local = _outputs(args.dir / "local" / "tokens.bin")
    same = all(_outputs(args.dir / n / "tokens.bin") == local for n in ("ray-1", "ray-2"))

    def best(name: str, key: str) -> float:
        return min(r[key] for r in results[name])

    def steady(name: str) -> float:
        return max(r["text_bytes"] / (r["wall"] - r["startup"]) for r in results[name])

    local_rate = max(r["text_bytes"] / r["wall"] for r in results["local"])
    print(
        f"identical shards and manifest: {same}; ray-2/local wall "
        f"{best('local', 'wall') / best('ray-2', 'wall'):.2f}x, steady "
        f"{steady('ray-2') / local_rate:.2f}x; ray-2/ray-1 steady "
        f"{steady('ray-2') / steady('ray-1'):.2f}x; driver peak RSS "
        f"{max(r['rss_mb'] for n in ('ray-1', 'ray-2') for r in results[n]):.0f} MB; "
        f"load {open('/proc/loadavg').read().split()[:3]}"
    )


if __name__ == "__main__":
    main()
