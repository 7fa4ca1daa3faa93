"""The figures of README "Past one machine": local ``fastllm tokenize`` vs ``--ray`` with 1 and
2 actors on the same >= 1 GB of Parquet (made from this Python's standard library sources).

    python benches/ray_scaling.py DIR [--gb 1.0] [--rounds 1] [--object-store-mb 150]
                                      [--runs local,ray-1,ray-2] [--batch-rows N]

Writes ``DIR/corpus/parquet-<GB>GB/*.parquet`` once (>= ``--gb`` GB of Parquet on disk, 8 files
or more, pyarrow's default compression, 16,384 rows a row group; reruns reuse it), then runs,
each in its own process, interleaved ``--rounds`` times: the local ``fastllm.tokenize_files``
(all cores) and ``fastllm.distributed.tokenize`` with 1 and 2 actors on a fresh local Ray
instance started by the run (``ray.init``: 2 CPUs, no dashboard, an object store of
``--object-store-mb``; its start is included in the wall-clock and the start-up), all with the
same shard size. For each run: wall-clock, start-up (to the first encoded batch), the
steady-state rate after it, CPU seconds (the local process; for Ray the driver plus every
process of the cluster it started: GCS, raylet, actors, Ray Data's helpers, from /proc), the
driver's peak RSS (VmHWM) and the peaks of its anonymous / file / shared-memory parts
(RssAnon / RssFile / RssShmem, sampled every 0.2 s; the cluster's CPU once a second), with
the load average before and after. Then the three ratios and the driver's memory against
the targets, and checks that the shards and manifests are identical to the local run's.

The machine may be shared: wall-clock figures are then under load (the load average is
printed); CPU seconds per MB do not depend on the load much, and their ratio (local / Ray)
predicts the steady ratio on a quiet machine where both keep the 2 cores busy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SHARD_TOKENS = 100_000_000
TARGETS = {"wall": 0.5, "steady": 0.8, "scaling": 1.6, "rss_mb": 500.0}

_RUN = r"""
import json, os, resource, sys, threading, time
kind, out, inputs, actors, shard, store_mb, batch_rows = sys.argv[1:8]
options = {"batch_rows": int(batch_rows)} if int(batch_rows) else {}
TICK = os.sysconf("SC_CLK_TCK")
peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
cluster: dict = {}  # (pid, start time) -> CPU seconds of a process the run started
me = os.getpid()

def status():
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in peaks:
            peaks[key] = max(peaks[key], int(value.split()[0]))

def descendants():
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                head, _, tail = open(f"/proc/{name}/stat").read().rpartition(")")
            except OSError:
                continue
            fields = [head.partition("(")[2], *tail.split()]
            parent[int(name)] = (int(fields[2]), fields)
    children = {}
    for pid, (ppid, fields) in parent.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [me]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = parent[pid][1]
                todo.append(pid)
    for pid, f in found.items():
        # utime stime cutime cstime (fields 14-17 of stat; here from index 11), start time 22
        cpu = sum(int(x) for x in f[12:16]) / TICK
        key = (pid, f[20])
        cluster[key] = max(cluster.get(key, (f[0], 0.0)), (f[0], cpu), key=lambda v: v[1])

stop = threading.Event()
sampler_cpu = [0.0]
def sample():
    n = 0
    while not stop.wait(0.2):
        status()
        n += 1
        if kind != "local" and n % 5 == 0:  # the cluster's processes once a second
            descendants()
    sampler_cpu[0] = time.thread_time()

thread = threading.Thread(target=sample, daemon=True)
thread.start()
load0 = os.getloadavg()[0]
start = time.perf_counter()
extra = {}
if kind == "local":
    import fastllm
    stats = fastllm.tokenize_files(inputs, out, resume=False, shard_tokens=int(shard))
else:
    import ray
    from fastllm import distributed
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=int(store_mb) << 20, log_to_driver=False,
             logging_level="ERROR")
    init = time.perf_counter() - start
    stats = distributed.tokenize(inputs, out, actors=int(actors), resume=False,
                                 shard_tokens=int(shard), **options)
    descendants()
    extra = {"startup": init + stats.startup_seconds, "init": init,
             "actor_cpu": stats.actor_cpu_seconds}
wall = time.perf_counter() - start
status()
stop.set()
thread.join()
by_name: dict = {}
for comm, cpu in cluster.values():
    by_name[comm] = by_name.get(comm, 0.0) + cpu
usage = resource.getrusage(resource.RUSAGE_SELF)
own = usage.ru_utime + usage.ru_stime - sampler_cpu[0]
if kind != "local":
    ray.shutdown()
print(json.dumps({"wall": wall, "bytes": stats.input_bytes, "text_bytes": stats.text_bytes,
                  "tokens": stats.tokens, "cpu": own,
                  "cluster_cpu": sum(cpu for _, cpu in cluster.values()),
                  "by_name": by_name,
                  "load0": load0, "load1": os.getloadavg()[0],
                  **{k: v / 1024 for k, v in peaks.items()}, **extra}))
"""


def make_corpus(folder: Path, gb: float) -> Path:
    """>= ``gb`` GB of Parquet (pyarrow's default compression), cached under ``folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastllm import samples

    parquet = folder / f"parquet-{gb:g}GB"
    if parquet.exists():
        return parquet
    tmp = folder / f"parquet-{gb:g}GB.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for old in tmp.iterdir():
        old.unlink()
    source = samples.python_source(64_000_000)
    target = int(gb * 1e9)
    written, shift, n, ratio = 0, 0, 0, 0.0
    while written < target:
        # Text for about 1/8 of the target once the compression ratio is known.
        want = 64_000_000 if not ratio else int((target / 8) / ratio) + 1
        docs: list[str] = []
        size, start = 0, shift
        while size < want:
            length = 1000 + (start * 7919) % 9000
            if start + length > len(source):
                start = (start + 977) % 5000
                continue
            docs.append(source[start : start + length])
            size += length
            start += length
        shift = (shift + 131) % 10_000
        path = tmp / f"part-{n:03d}.parquet"
        pq.write_table(pa.table({"text": docs}), path, row_group_size=16_384)
        written += path.stat().st_size
        ratio = ratio or path.stat().st_size / size
        n += 1
    tmp.rename(parquet)
    return parquet


def run(kind: str, out: Path, inputs: Path, actors: int, store_mb: int,
        batch_rows: int = 0) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, kind, str(out), str(inputs), str(actors),
         str(SHARD_TOKENS), str(store_mb), str(batch_rows)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{kind} {actors}: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
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


def _line(name: str, r: dict[str, Any]) -> str:
    mb = r["text_bytes"] / 1e6
    cpu = r["cpu"] + r["cluster_cpu"]
    line = (f"{name:6s} wall {r['wall']:6.1f} s {mb / r['wall']:5.1f} MB/s  CPU {cpu:6.1f} s "
            f"({cpu / mb * 1000:5.2f} CPU-ms/MB)")
    if "startup" in r:
        steady = mb / (r["wall"] - r["startup"])
        line += (f"  start-up {r['startup']:5.1f} s (ray.init {r['init']:4.1f})  steady "
                 f"{steady:5.1f} MB/s  driver CPU {r['cpu']:5.1f} s  cluster CPU "
                 f"{r['cluster_cpu']:6.1f} s (actors {r['actor_cpu']:6.1f}; by process name: "
                 + ", ".join(f"{k} {v:.1f}" for k, v in sorted(
                     r["by_name"].items(), key=lambda kv: -kv[1])[:5]) + ")")
    line += (f"  peak RSS {r['VmHWM']:.0f} MB (anon {r['RssAnon']:.0f}, file "
             f"{r['RssFile']:.0f}, shm {r['RssShmem']:.0f})  load {r['load0']:.1f}->"
             f"{r['load1']:.1f}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--gb", type=float, default=1.0, help="GB of Parquet on disk")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--object-store-mb", type=int, default=150)
    parser.add_argument("--batch-rows", type=int, default=0,
                        help="Parquet rows per encoded batch (0: the library's default)")
    parser.add_argument("--runs", default="local,ray-1,ray-2",
                        help="which runs (the ratios need all three; reruns reuse earlier "
                        "runs' outputs for the identity check)")
    args = parser.parse_args()
    wanted = args.runs.split(",")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parquet = make_corpus(args.dir / "corpus", args.gb)
    parts = sorted(parquet.iterdir())
    print(f"input: {sum(p.stat().st_size for p in parts) / 1e9:.2f} GB of Parquet in "
          f"{len(parts)} files; object store {args.object_store_mb} MB", flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for kind, actors in (("local", 0), ("ray", 1), ("ray", 2)):
            name = kind if kind == "local" else f"ray-{actors}"
            if name not in wanted:
                continue
            (args.dir / name).mkdir(exist_ok=True)
            r = run(kind, args.dir / name / "tokens.bin", parquet, actors, args.object_store_mb,
                    args.batch_rows)
            results.setdefault(name, []).append(r)
            print(_line(name, r), flush=True)
    local = _outputs(args.dir / "local" / "tokens.bin")
    same = all(_outputs(args.dir / n / "tokens.bin") == local for n in results if n != "local")
    print(f"identical shards and manifest: {same}")
    if len(results) < 3:
        return

    def rate(r: dict[str, Any]) -> float:
        return float(r["text_bytes"] / r["wall"])

    def steady(r: dict[str, Any]) -> float:
        return float(r["text_bytes"] / (r["wall"] - r["startup"]))

    def cpu_per_byte(r: dict[str, Any]) -> float:
        return float((r["cpu"] + r["cluster_cpu"]) / r["text_bytes"])

    local_rate = max(map(rate, results["local"]))
    ray2 = max(results["ray-2"], key=rate)
    wall = rate(ray2) / local_rate
    steady2 = max(map(steady, results["ray-2"])) / local_rate
    scaling = max(map(steady, results["ray-2"])) / max(map(steady, results["ray-1"]))
    driver = [r for n in ("ray-1", "ray-2") for r in results[n]]
    rss = max(r["VmHWM"] for r in driver)
    quiet = min(map(cpu_per_byte, results["local"])) / min(map(cpu_per_byte, results["ray-2"]))

    def verdict(value: float, target: float, low: bool = False) -> str:
        ok = value <= target if low else value >= target
        return f"{'met' if ok else 'MISSED'} (target {'<=' if low else '>='} {target:g})"

    print(f"ray-2 / local, start-up included: {wall:.2f}x {verdict(wall, TARGETS['wall'])}")
    print(f"ray-2 steady / local: {steady2:.2f}x {verdict(steady2, TARGETS['steady'])}")
    print(f"ray-2 / ray-1 steady: {scaling:.2f}x {verdict(scaling, TARGETS['scaling'])}")
    print(f"driver peak RSS: {rss:.0f} MB {verdict(rss, TARGETS['rss_mb'], low=True)}; anon "
          f"{max(r['RssAnon'] for r in driver):.0f} MB, shm "
          f"{max(r['RssShmem'] for r in driver):.0f} MB, file "
          f"{max(r['RssFile'] for r in driver):.0f} MB (peaks of the parts, sampled)")
    print(f"CPU per MB, local / ray-2 (all the cluster's processes): {quiet:.2f}x: the steady "
          f"ratio expected on a quiet 2-core machine; load now "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
