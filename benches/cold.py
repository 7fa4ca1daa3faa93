"""Cold benchmark: each measurement in a fresh process, the first call, on text it has not seen.

    python3 benches/cold.py --out benches/results/cold.json
    python3 benches/report.py benches/results/latest.json --cold benches/results/cold.json

Users run one big call once (a corpus, a dataset map): the first call in a process is the one
that counts, so each figure here is the median over ``--procs`` (>= 3) fresh processes of the
first call, with the third call of the same process (on a third text) beside it as the warm
figure. Single-thread figures run pinned to one core (``os.sched_setaffinity``), batch figures
on every core this process may use (2 on the project machine).

Cells: every encoding fastllm bundles of gpt2, cl100k_base, o200k_base x English prose, Python
source and non-Latin text (``fastllm.corpus``: found on the machine, not the bundled vocabulary)
x {one thread: ``encode_ordinary`` (and fastllm's ``encode_to_numpy``); batch of 1-10 KB
documents: fastllm ``encode_ordinary_batch_to_numpy``, quicktok ``encode_batch`` (flat array +
offsets), splintr ``encode_batch_flat``, tiktoken ``encode_ordinary_batch``} for fastllm,
quicktok, splintr and tiktoken; decode of tiktoken's tokens of the same texts; the pathological
inputs of ``texts.py`` at 1 MB and 2 MB (the doubling ratio).

Exactness: before any process is timed, this parent process runs every peer on every text that
will be timed and compares with tiktoken built from the same ``.tiktoken`` file; a peer that is
not exact on a cell is reported (``skipped`` in the JSON) and not timed. Each timed call's output
is hashed after the clock stops and compared with tiktoken's too (``exact`` per cell).

NumPy is imported in every worker before its clock starts, and its import time recorded
(``numpy_import_s``): fastllm's ``encode_to_numpy`` and batch call, quicktok's and splintr's batch
calls return NumPy arrays, and the first array any of them makes in a process would otherwise
pay ``import numpy`` (60-100 ms of CPU on the project machine, as long as encoding 2 MB) inside
the timed call. A program that asks for arrays has imported NumPy to use them.

When tiktoken itself fails on an input (o200k_base's 1 MB of spaces: its regex overflows its
stack and the Rust code panics), that failure is recorded (``skipped``, reason ``reference
failed``) and tiktoken is not timed on it; the other contenders are still timed, checked
against fastllm's output instead (``exact_against`` in the cell).

The figures are wall-clock. Each call's CPU time (``time.process_time``, every thread of the
process) and its involuntary context switches are recorded too: on a shared machine the
one-thread CPU-time figure (``cpu_mbps``) is the one that other processes cannot slow down much
(``report.py --clock cpu`` tables it); batch figures need the cores free and stay wall-clock.

The JSON keeps pytest-benchmark's layout (``machine_info``, ``benchmarks`` with ``group``,
``extra_info`` and ``stats``), with ``extra_info["statistic"] == "median"``. The machine is
shared: the load average is recorded before, during (per process) and after the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

HERE = Path(__file__).resolve().parent
KINDS = ("english", "python", "non_latin")
PEERS = ("fastllm", "quicktok", "splintr", "tiktoken")
SECTIONS = ("single", "batch", "decode", "pathological")
CHUNKS = 3  # disjoint texts per kind: each process times calls on three different ones
CALLS = 3  # calls per process: the first is the cold figure, the third the warm one


# A 4-byte unsigned array code for token ids ("I" on the usual platforms).
U32 = next(code for code in ("I", "L") if array(code).itemsize == 4)


def sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def ids_sha(ids: Any) -> str:
    if isinstance(ids, list):
        return sha(array(U32, ids).tobytes())
    return sha(ids.astype("<u4").tobytes())


def failure(e: BaseException) -> str:
    """``Type: message`` of an exception, the message cut to one short line."""
    message = " ".join(str(e).split())
    return f"{type(e).__name__}: {message[:120]}"


def batch_sha(tokens: Any, lengths: Any) -> str:
    return sha(tokens.astype("<u4").tobytes() + lengths.astype("<i8").tobytes())


# ---------------------------------------------------------------------------------------------
# Worker: one fresh process, one contender, up to CALLS timed calls.
# ---------------------------------------------------------------------------------------------


def worker(job: dict[str, Any]) -> dict[str, Any]:
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        os.sched_setaffinity(0, job["cpus"])
    loadavg = os.getloadavg()
    sys.path.insert(0, str(HERE))
    import importlib

    from peers import MODULES, VocabSpec, batch_call, build, flat, one_thread_call
    from texts import split_docs

    contender, mode = job["contender"], job["mode"]
    # Before any clock (see the module notes): arrays are what the timed calls return.
    n0 = time.perf_counter()
    importlib.import_module("numpy")
    numpy_import_s = time.perf_counter() - n0
    t0 = time.perf_counter()
    importlib.import_module(MODULES[contender])
    t1 = time.perf_counter()
    enc = build(contender, VocabSpec(**job["spec"]))
    t2 = time.perf_counter()

    inputs: list[Any] = []
    for path, seed in zip(job["inputs"], job["seeds"]):
        if mode == "decode":
            tokens = array(U32)
            tokens.frombytes(Path(path).read_bytes())
            inputs.append(tokens.tolist())
        else:
            text = Path(path).read_bytes().decode("utf-8")
            inputs.append(split_docs(text, seed) if mode == "batch" else text)

    if mode == "batch":
        call = batch_call(contender, enc)
    elif mode == "decode":
        call = enc.decode
    else:
        call = one_thread_call(contender, enc, numpy=mode == "numpy")

    times, cpu_times, preempted, hashes = [], [], [], []
    for arg in inputs:
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw if resource else 0
        cpu = time.process_time()
        start = time.perf_counter()
        out = call(arg)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
        if resource:
            preempted.append(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches)
        if mode == "batch":
            hashes.append(batch_sha(*flat(contender, out)))
        elif mode == "decode":
            hashes.append(sha(out.encode("utf-8", "surrogatepass")))
        else:
            hashes.append(ids_sha(out))
        del out
    return {
        "times": times,
        "cpu_times": cpu_times,
        "preempted": preempted,
        "sha": hashes,
        "import_s": t1 - t0,
        "numpy_import_s": numpy_import_s,
        "load_s": t2 - t1,
        "loadavg": loadavg,
        "cpus": sorted(os.sched_getaffinity(0)) if pinned else None,
    }


# ---------------------------------------------------------------------------------------------
# Parent: texts, references, exactness checks, then the processes.
# ---------------------------------------------------------------------------------------------


def machine_info(cpus_single: list[int], cpus_batch: list[int]) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from peers import version

    brand = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                brand = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import fastllm

    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "node": platform.node(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python_version": platform.python_version(),
        "cpu": {"brand_raw": brand, "count": os.cpu_count()},
        "cores": os.cpu_count(),
        "cpus_single": cpus_single,
        "cpus_batch": cpus_batch,
        "versions": {p: version(p) for p in (*PEERS, "numpy")},
        "fastllm_path": str(Path(fastllm.__file__).parent),
        "bench_commit": commit,
    }


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def prepare_texts(work: Path, megabytes: float, log: Any) -> dict[str, list[Path]]:
    """CHUNKS disjoint texts per kind of up to ``megabytes`` each, written to ``work``."""
    from fastllm import corpus

    sources = {
        "english": corpus.english_prose,
        "python": corpus.python_source,
        "non_latin": corpus.non_latin_text,
    }
    size = int(megabytes * 1_000_000)
    out: dict[str, list[Path]] = {}
    for kind, source in sources.items():
        data = source(CHUNKS * size).encode("utf-8")
        per = min(size, len(data) // CHUNKS)
        paths = []
        for i in range(CHUNKS):
            text = data[i * per : (i + 1) * per].decode("utf-8", errors="ignore")
            path = work / f"{kind}-{i}.txt"
            path.write_bytes(text.encode("utf-8"))
            paths.append(path)
        out[kind] = paths
        log(f"text {kind}: {CHUNKS} x {per / 1e6:.2f} MB")
    return out


@dataclass
class Cell:
    encoding: str
    spec: Any  # peers.VocabSpec
    section: str  # single | batch | decode | pathological
    mode: str  # single | numpy | batch | decode: which call the worker times
    contender: str
    kind: str
    files: list[Path]
    sizes: list[int] = field(default_factory=list)  # bytes of text per input (file sizes)
    against: str = "tiktoken"  # whose output the timed outputs must equal


class Parent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="fastllm-cold-"))
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpus_batch = allowed
        self.cpus_single = [args.cpu if args.cpu is not None else allowed[-1]] if allowed else []
        self.benchmarks: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.started = time.time()

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.started:6.0f}s] {message}", file=sys.stderr, flush=True)

    # Exactness, in this process (so no timed process ever sees its text before the clock).
    def check(self, contender: str, enc: Any, mode: str, arg: Any, ref_sha: str) -> bool:
        from peers import batch_call, flat, one_thread_call

        if mode == "batch":
            return batch_sha(*flat(contender, batch_call(contender, enc)(arg))) == ref_sha
        if mode == "decode":
            return sha(enc.decode(arg).encode("utf-8", "surrogatepass")) == ref_sha
        return ids_sha(one_thread_call(contender, enc, numpy=mode == "numpy")(arg)) == ref_sha

    def add(
        self, jobs: list[dict[str, Any]], cell: Cell, enc: Any, refs: list[str], inputs: list[Any]
    ) -> None:
        """Adds ``cell`` to ``jobs`` after checking it exact on every input it will be timed on."""
        where = {
            "contender": cell.contender,
            "encoding": cell.encoding,
            "section": cell.section,
            "mode": cell.mode,
            "kind": cell.kind,
        }
        for i, (arg, ref_sha) in enumerate(zip(inputs, refs)):
            try:
                exact = self.check(cell.contender, enc, cell.mode, arg, ref_sha)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # pyo3's PanicException is a BaseException
                reason = f"failed on input {i} ({failure(e)}): not timed"
                self.skipped.append({**where, "reason": reason})
                self.log(f"{where}: FAILED on input {i}: {failure(e)}")
                return
            if not exact:
                reason = f"not exact against {cell.against} on input {i}: not timed"
                self.skipped.append({**where, "reason": reason})
                self.log(f"{where}: NOT EXACT on input {i}")
                return
        jobs.append(
            {
                **where,
                "files": [str(f) for f in cell.files],
                "sizes": cell.sizes or [f.stat().st_size for f in cell.files],
                "refs": refs,
                "against": cell.against,
                "spec": cell.spec.to_json(),
            }
        )

    def run(self) -> dict[str, Any]:
        sys.path.insert(0, str(HERE))
        from peers import build, encodings, flat, unsupported, vocab_spec
        from texts import PATHOLOGICAL, pathological, split_docs

        args = self.args
        sections = args.only or list(SECTIONS)
        names = [n for n in encodings() if not args.encodings or n in args.encodings]
        peers = [p for p in PEERS if not args.peers or p in args.peers]
        info = machine_info(self.cpus_single, self.cpus_batch)
        info["uptime_before"] = uptime()
        self.log(f"encodings {names}; peers {peers}; sections {sections}; {info['uptime_before']}")
        texts = prepare_texts(self.work, args.mb, self.log)
        kinds = [k for k in KINDS if not args.kinds or k in args.kinds]
        path_files: dict[tuple[str, int], Path] = {}
        if "pathological" in sections:
            for kind in PATHOLOGICAL:
                for mb in (1, 2):
                    path = self.work / f"path-{kind}-{mb}.txt"
                    path.write_bytes(pathological(kind, mb * 1_000_000, 0).encode("utf-8"))
                    path_files[kind, mb] = path

        jobs: list[dict[str, Any]] = []  # one per cell; each is run in args.procs processes
        for name in names:
            spec = vocab_spec(name)
            ref = build("tiktoken", spec)
            encs = {p: build(p, spec) for p in peers if not unsupported(p, name)}
            for p in peers:
                reason = unsupported(p, name)
                if reason:
                    self.skipped.append({"contender": p, "encoding": name, "reason": reason})

            for kind in kinds:
                chunk_texts = [f.read_bytes().decode("utf-8") for f in texts[kind]]
                ref_ids = [ref.encode_ordinary(t) for t in chunk_texts]
                if "single" in sections:
                    refs = [ids_sha(ids) for ids in ref_ids]
                    for p in encs:
                        cell = Cell(name, spec, "single", "single", p, kind, texts[kind])
                        self.add(jobs, cell, encs[p], refs, chunk_texts)
                        if p == "fastllm":
                            cell = Cell(name, spec, "single", "numpy", p, kind, texts[kind])
                            self.add(jobs, cell, encs[p], refs, chunk_texts)
                if "batch" in sections:
                    docs = [split_docs(t, i) for i, t in enumerate(chunk_texts)]
                    refs = [
                        batch_sha(*flat("tiktoken", ref.encode_ordinary_batch(d))) for d in docs
                    ]
                    for p in encs:
                        cell = Cell(name, spec, "batch", "batch", p, kind, texts[kind])
                        self.add(jobs, cell, encs[p], refs, docs)
                if "decode" in sections:
                    token_files = []
                    for i, ids in enumerate(ref_ids):
                        path = self.work / f"{name}-{kind}-{i}.u32"
                        path.write_bytes(array(U32, ids).tobytes())
                        token_files.append(path)
                    refs = [sha(t.encode("utf-8", "surrogatepass")) for t in chunk_texts]
                    for p in encs:
                        cell = Cell(name, spec, "decode", "decode", p, kind, token_files)
                        cell.sizes = [f.stat().st_size for f in texts[kind]]
                        self.add(jobs, cell, encs[p], refs, ref_ids)
                self.log(f"checked {name} {kind}")
            for (kind, mb), path in path_files.items():
                text = path.read_bytes().decode("utf-8")
                against, label = "tiktoken", f"{kind} {mb}MB"
                try:
                    refs = [ids_sha(ref.encode_ordinary(text))]
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as e:  # tiktoken panics: o200k_base's 1 MB of spaces
                    reason = f"reference failed: tiktoken raised {failure(e)}: not timed"
                    self.log(f"{name} {label}: {reason}")
                    self.skipped.append(
                        {
                            "contender": "tiktoken",
                            "encoding": name,
                            "section": "pathological",
                            "mode": "single",
                            "kind": label,
                            "reason": reason,
                        }
                    )
                    if "fastllm" not in encs:
                        continue
                    against = "fastllm"
                    refs = [ids_sha(encs["fastllm"].encode_ordinary(text))]
                for p in encs:
                    if against != "tiktoken" and p == "tiktoken":
                        continue
                    cell = Cell(name, spec, "pathological", "single", p, label, [path])
                    cell.against = against
                    self.add(jobs, cell, encs[p], refs, [text])
            if path_files:
                self.log(f"checked {name} pathological")
            del encs, ref

        results: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(jobs))}
        # Process-major order: every cell's first process, then every cell's second, ..., so
        # that a busy spell on the shared machine falls on all contenders alike.
        for proc in range(args.procs):
            for i, job in enumerate(jobs):
                results[i].append(self.spawn(job, proc))
            self.log(f"round {proc + 1}/{args.procs} done; {uptime()}")
        for i, job in enumerate(jobs):
            self.record(job, results[i])
        info["uptime_after"] = uptime()
        self.log(info["uptime_after"])
        return {
            "cold_benchmark": 1,
            "machine_info": info,
            "datetime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": {"procs": args.procs, "mb": args.mb, "calls": CALLS, "chunks": CHUNKS},
            "benchmarks": self.benchmarks,
            "skipped": self.skipped,
        }

    def spawn(self, job: dict[str, Any], proc: int) -> dict[str, Any]:
        n = len(job["files"])
        order = [(proc + c) % n for c in range(min(CALLS, n))]
        if job["section"] == "pathological":
            order = [0]
        cpus = self.cpus_batch if job["mode"] == "batch" else self.cpus_single
        payload = {
            "contender": job["contender"],
            "mode": job["mode"],
            "spec": job["spec"],
            "inputs": [job["files"][i] for i in order],
            "seeds": order,
            "cpus": cpus,
        }
        label = f"{job['contender']} {job['encoding']} {job['mode']} {job['kind']} #{proc}"
        try:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(payload)],
                capture_output=True,
                text=True,
                timeout=self.args.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.log(f"{label}: timed out after {self.args.timeout} s")
            return {"error": f"timed out after {self.args.timeout} s"}
        if done.returncode != 0:
            self.log(f"{label}: failed\n{done.stderr[-2000:]}")
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
        out = json.loads(done.stdout.strip().splitlines()[-1])
        out["order"] = order
        out["exact"] = all(out["sha"][k] == job["refs"][i] for k, i in enumerate(order))
        return out

    def record(self, job: dict[str, Any], runs: list[dict[str, Any]]) -> None:
        ok = [r for r in runs if "error" not in r]
        base = {k: job[k] for k in ("contender", "encoding", "section", "mode", "kind")}
        if not ok:
            self.skipped.append({**base, "reason": runs[0]["error"] if runs else "no run"})
            return
        cold = [r["times"][0] for r in ok]
        cold_mbps = [job["sizes"][r["order"][0]] / r["times"][0] / 1e6 for r in ok]
        full = [r for r in ok if len(r["times"]) >= CALLS]
        warm = [r["times"][-1] for r in full]
        warm_mbps = [
            job["sizes"][r["order"][-1]] / r["times"][-1] / 1e6
            for r in ok
            if len(r["times"]) >= CALLS
        ]
        size = statistics.median(job["sizes"][r["order"][0]] for r in ok)
        contender = job["contender"] + ("_numpy" if job["mode"] == "numpy" else "")
        section, name, kind = job["section"], job["encoding"], job["kind"]
        group = f"cold {section} {name} {kind}"
        median = statistics.median(cold)
        self.benchmarks.append(
            {
                "group": group,
                "name": f"cold[{contender}-{kind}-{name}]",
                "fullname": f"benches/cold.py::{section}[{contender}-{kind}-{name}]",
                "param": f"{contender}-{kind}-{name}",
                "params": {"contender": contender, "kind": kind, "name": name},
                "extra_info": {
                    **base,
                    "contender": contender,
                    "bytes": int(size),
                    "exact": all(r["exact"] for r in ok),
                    "exact_against": job["against"],
                    "threads": 1 if job["mode"] != "batch" else len(self.cpus_batch),
                    "phase": "cold",
                    "statistic": "median",
                    "processes": len(ok),
                    "failed_processes": len(runs) - len(ok),
                    "mbps": statistics.median(cold_mbps),
                    "mbps_data": cold_mbps,
                    "warm_s": statistics.median(warm) if warm else None,
                    "warm_mbps": statistics.median(warm_mbps) if warm else None,
                    "warm_data": warm,
                    "cpu_s": statistics.median(r["cpu_times"][0] for r in ok),
                    "cpu_mbps": statistics.median(
                        job["sizes"][r["order"][0]] / max(r["cpu_times"][0], 1e-9) / 1e6 for r in ok
                    ),
                    "warm_cpu_s": statistics.median(r["cpu_times"][-1] for r in full)
                    if full
                    else None,
                    "warm_cpu_mbps": statistics.median(
                        job["sizes"][r["order"][-1]] / max(r["cpu_times"][-1], 1e-9) / 1e6
                        for r in full
                    )
                    if full
                    else None,
                    "preempted": [r["preempted"][0] for r in ok if r["preempted"]],
                    "import_s": statistics.median(r["import_s"] for r in ok),
                    "numpy_import_s": statistics.median(r["numpy_import_s"] for r in ok),
                    "load_s": statistics.median(r["load_s"] for r in ok),
                    "loadavg_1min": [r["loadavg"][0] for r in ok],
                    "cpus": ok[0]["cpus"],
                },
                "stats": {
                    "min": min(cold),
                    "max": max(cold),
                    "mean": statistics.fmean(cold),
                    "median": median,
                    "stddev": statistics.stdev(cold) if len(cold) > 1 else 0.0,
                    "rounds": len(cold),
                    "iterations": 1,
                    "data": cold,
                },
            }
        )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cold.json")
    parser.add_argument("--procs", type=int, default=3, help="fresh processes per cell (>= 3)")
    parser.add_argument("--mb", type=float, default=2.0, help="MB of text per call (at most)")
    parser.add_argument("--cpu", type=int, help="the core for single-thread figures")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="sections to run")
    parser.add_argument("--encodings", nargs="+", help="subset of the bundled encodings")
    parser.add_argument("--peers", nargs="+", choices=PEERS, help="subset of the peers")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, help="subset of the text kinds")
    args = parser.parse_args()
    if args.procs < 1:
        parser.error("--procs must be >= 1 (medians want >= 3)")
    result = Parent(args).run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
