"""What the corpus benchmarks share: the standard library's sources as raw text, and a command
run in a fresh child with what it used.

:func:`run` reads the child's resource usage (``getrusage(RUSAGE_CHILDREN)`` in a small wrapper
process: CPU time of all its threads, peak RSS), so on a machine shared with other jobs the CPU
time is this command's work alone, unlike wall time; :func:`load` is the load average to print
beside any figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from fastllm import samples


@dataclass(frozen=True)
class Usage:
    """What one child used."""

    #: User + system CPU seconds, all threads.
    cpu: float
    #: Wall seconds (process start included).
    wall: float
    #: Peak resident set size, bytes.
    peak_rss: int


def env() -> dict[str, str]:
    """This environment, with ``sys.path`` passed on (so the child imports the same fastllm)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


# Runs argv[1:] and prints what it used. The command is started from this small process, not
# from the benchmark's: Linux keeps a process's peak RSS across exec, so a child forked from a
# large parent would report the parent's size.
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([code, used.ru_utime + used.ru_stime, wall, used.ru_maxrss]))
"""


def run(command: Sequence[str], *, timeout: float = 1800) -> Usage:
    """Runs ``command`` (its output discarded) and returns what it used; ``RuntimeError`` with
    its stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command],
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
        check=False,
    )
    try:
        code, cpu, wall, peak = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        code = cpu = wall = peak = None
    if done.returncode != 0 or code != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({code}): {done.stderr[-2000:]}")
    # ru_maxrss: KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return Usage(float(cpu), float(wall), int(peak) * scale)


def load() -> str:
    """The load average (1, 5, 15 minutes) and the core count, for a report line."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


def stdlib_sources() -> list[bytes]:
    """The standard library's ``.py`` files that are valid UTF-8, as bytes, sorted by path."""
    out = []
    for path in samples.stdlib_files():
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(data)
    return out


def varied(data: bytes, copy: int) -> bytes:
    """Copy ``copy`` of ``data`` with its identifiers renamed (``self`` -> ``self_3``), so that
    copies do not repeat each other (copy 0 is ``data`` itself)."""
    return data.replace(b"self", f"self_{copy}".encode()) if copy else data
