"""Past one machine: corpus tokenization on a Ray cluster, byte-identical to the local run.

:func:`tokenize` plans the work on the driver (the inputs' list and, for Parquet, the files'
metadata) as ordered work units (row groups of one Parquet file, or a few whole text/JSONL
files) and runs them with Ray Data (``from_items(units)`` -> ``map_batches`` on a pool of Ray
actors, ``preserve_order``): each actor loads one encoding once, **reads its units itself**
from their shared paths (no input crosses the object store) and encodes them (Parquet batches
with :meth:`fastllm.Encoding.encode_ordinary_arrow`, zero-copy; text and JSONL files with the
local run's own Rust code), **writes each batch's tokens to a part file** in a scratch
directory next to the output and returns only the part's metadata; the metadata streams back
**in input order** to the driver, which alone writes the shards and their manifest with the
local run's own writer (the Rust :class:`fastllm.tokenfile.ShardWriter`), moving the parts'
tokens into the shards in order: the same files, byte for byte, as
``fastllm.tokenize_files(..., shard_tokens=...)`` writes for the same inputs, whatever the
number of nodes, actors or units and whichever task ran where.

- The inputs are found by THE walker (:mod:`fastllm._inputs`) on the driver and must lie on a
  path every node can read (a shared directory); each node checks that before the run.
- The output must lie on a path every node can reach too: the actors write their part files
  into ``.NAME.parts/`` next to it (each node checks it can write there, and the driver that
  it sees what the node wrote, before the run). The driver alone writes the shards and the
  manifest; it checks each part's size, deletes it once written into its shard, and removes
  the scratch directory at the end of every run (and at the start: a killed driver's parts
  are never reused; a rerun re-encodes from its checkpoint).
- A worker killed mid-run: Ray restarts its actor and retries its units; the output is the
  same. The driver killed mid-run: rerun the same call; it goes on after the last checkpoint
  (taken at input-file boundaries: the writer's complete shards, each verified against its
  sha256 before it is kept, and the partial shard truncated to its checkpointed length) and
  says why when it cannot. A shard appears under its final name only when complete; the
  manifest is written last.

``pip install 'fastllm[ray]'`` installs Ray (``ray[data]``); every node needs fastllm too.

Design notes (measured on the 2-core development machine, see README "Past one machine"):

- The actors read their inputs themselves (the last design had Ray Data read tasks feed
  them through the object store: ``read_parquet`` / ``read_binary_files``; the runs used only
  1.1-1.3 of the 2 cores, the read side and the spilling store being the limit). Units:
  consecutive row groups of one Parquet file up to ``_UNIT_TEXT_BYTES`` (32 MiB) of text,
  from the metadata the driver reads (a larger row group is one unit, which the actor
  streams out in ``batch_rows`` batches: one output block each); text/JSONL: consecutive
  whole files up to ``_FILE_BATCH_BYTES`` (8 MiB). Quiet, ``benches/ray_scaling.py --gb 1``
  (1.02 GB of Parquet, 2.93 GB of text, 150 MB object store), 2 actors, steady MB/s: read
  tasks feeding actors 23.2; actors reading 41.7 (1 actor 39.5: Ray Data's object-store
  reservation serialised them); reservation off 57.7; ``batch_rows`` 4096 -> 1024 -> 512
  (output blocks ~16 -> 4 -> 2 MB: less waits in the store, less spilling, and the actor's
  CPU per MB fell 78 -> 67 CPU-s a run) 71.6 / 68.6. Last invocation (all three runs):
  local 35.9 s, ray-2 57.4 s (0.62x with start-up), steady 68.6 MB/s (0.79x), ray-1
  steady 43.9 (2 vs 1: 1.56x), driver peak RSS 397 MB.
- Parquet is read in the actor with pyarrow (``ParquetFile.iter_batches`` over the unit's
  row groups, one thread) and encoded zero-copy from the Arrow column. A file pyarrow or the
  column check refuses (not Parquet, no such column, not strings) gets the local run's own
  error: the actor asks the local run's Rust reader (``_fastllm.count_files`` on that file,
  which stops at the same check), so the texts have one owner. Measured alone, the read
  costs 0.3-0.5 CPU-s per 127 MB row group (~3-4 ms per MB of text, ~15% of the encode),
  the work the local run's Rust reader does too; a binding to that reader for the reading
  itself ("encode row groups a..b of this file") was not built this stop (measure it
  against this). A batch's text bytes come from the column's offsets
  (``pyarrow.compute.binary_length`` cost ~8% of the actor's CPU).
- Text and JSONL files are read by the actor (``numpy.fromfile``) and tokenized by
  ``_fastllm.encode_file_bytes``: the local run's own Rust code (decompression, UTF-8, JSONL
  records, encoding, error texts) with the GIL released; so the output is the local run's by
  construction (one owner, no Python copy).
- Ray Data kept as the engine (the issue names it, and with the actors reading, the runs
  keep the cores busy). Its own cost, measured: its helper actors (autoscaling coordinator,
  ``_StatsActor``, ``ActorLocationTracker``) ~8 CPU-s of a 2.93 GB run, and part of the
  driver's ~15 (its scheduling loop: ~1.3 CPU-s on other threads per 0.76 GB; the main
  thread's ordering and writing ~2 CPU-s per 0.76 GB, 0.55 of it
  ``ShardWriter.write_bytes``). A plain actor pool (ray actors with restarts, an ordered
  window, ``ray.wait``) would save those ~8-10 CPU-s; not tried this stop.
- Tokens do not cross the object store: each actor writes a batch's document starts and
  tokens (already in the output dtype) to a part file (temporary name, then renamed: a part
  is whole or absent; a retried unit writes the same bytes) and returns a small table (the
  part's path and sizes, per-file counts); the driver reads each part once (``np.fromfile``,
  ~0.25 CPU-s per GB of tokens), checks its size, hands it to ``ShardWriter.write_bytes``
  (a range check, the sha256 and a buffered write: ~1.8 CPU-s per GB, the local run's
  writer's own cost) and deletes it. The last design sent the tokens (~3 GB for this
  corpus: 1.5 G uint16) through the 150 MB store: spill/restore workers, the driver mapping
  up to ~150 MB of store pages (its RSS), Ray Data's per-operator reservation and block-size
  tuning. Measured under load (2 cores, load 8-10, same invocation style, ray-2 only; CPU-s
  of every process of the run): the last design 120.6 CPU-s (actors 79.2, spill + restore
  workers 9.2, driver 14.0), the parts 104.4 / 104.7 (actors 75.9, no spilling, driver
  12.4): -13%. Driver peak RSS 397 -> 249 MB (no shared pages; ~154 anon, ~95
  libraries). A whole invocation at load 9-12 (wall-clock ratios meaningless there):
  local 71.0 CPU-s, ray-1 101.0 (actor 71.3), ray-2 106.2 (actors 78.4, driver 12.2), RSS
  249 MB, output identical; the quiet figures are the lead's to take. The driver's main
  thread: ~9 of its ~11 CPU-s, ~6 of them reading parts and the writer. Known limit: Ray
  Data no longer holds the actors back by the store's size, so parts of blocks waiting for
  an earlier one (the ordered output) wait on disk while that unit is still being encoded:
  at most the units in flight (actors x Ray Data's tasks per actor), ~1 byte of tokens per
  byte of text here (gpt2, uint16): up to a few hundred MB per actor with 127 MB row groups.
- Quiet (the lead, load 0.7-2.0, two invocations of ``ray_scaling.py --gb 1``, 3.11 GB of
  text): local 106.1 / 88.1 MB/s; ray-2 steady 112.2 / 92.9 (1.06x / 1.05x), with start-up
  0.74x / 0.71x; ray-1 steady 62.5 / 51.2 (2 vs 1: 1.79x / 1.81x); driver peak RSS 249 /
  248 MB; CPU per MB of the whole run 1.3-1.4x the local run's. Last stop, tokens through
  the store: 0.79x steady, 1.56x, 397 MB.
- Tried and dropped with the parts: 4,096-row batches (ray-2 actors 72.6 vs 64.9 CPU-s under
  load 8-10: no gain, noise of that size); one result block per 16 MiB of text (a row per
  batch: ~180 blocks instead of ~1,040) 104.4 vs 104.7 CPU-s interleaved at load ~9: no
  change, dropped. Kept: Ray Data's per-task memory polling off
  (``memory_usage_poll_interval_s=None``: one thread per task less; too small to measure).
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import re
import shutil
import socket
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Union

from fastllm._inputs import PathLike, check_format, input_format, resolve
from fastllm.tokenfile import TokenizeStats, _corpus_encoder, _own_files, _size, manifest_path

__all__ = ["DEFAULT_SHARD_TOKENS", "DistributedStats", "RayProgress", "progress_drawer", "tokenize"]

Inputs = Union[PathLike, Iterable[PathLike]]

#: Tokens per shard of a Ray run unless told otherwise (llm.c's FineWeb shards: 100 M tokens).
DEFAULT_SHARD_TOKENS = 100_000_000
_JOURNAL_KIND = "fastllm-distributed-journal"
#: Input bytes of text and JSONL files per encoder call.
_FILE_BATCH_BYTES = 8 << 20
_MANIFEST_KIND = "fastllm-token-shards"
#: Text of a Parquet work unit (consecutive row groups of one file).
_UNIT_TEXT_BYTES = 32 << 20
#: Ray Data's largest block (its default: 128 MiB).
_BLOCK_BYTES = 32 << 20


def _ray() -> Any:
    """Ray, imported on first use; an ImportError naming the extra without it."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError as e:
        raise ImportError(
            "fastllm.distributed needs Ray Data: pip install 'fastllm[ray]' "
            "(or pip install 'ray[data]')"
        ) from e
    return ray


# ---- the actors' side ----


class _Encoder:
    """One Ray actor of the pool: loads the encoding once, then reads and encodes one work
    unit per call (planned by the driver, :func:`_plan`): row groups ``a..b`` of one Parquet
    file, or a few whole text/JSONL files. The actor opens the inputs itself from their
    (shared) paths, so no input crosses the object store.

    In: a one-row Arrow batch, ``unit`` (the unit as JSON). Out, one small table per encoded
    batch (a Parquet unit yields one per ``batch_rows`` rows; a text/JSONL unit one with a row
    per file) whose rows name the part files written (:meth:`_part`: the documents' token
    starts, then the tokens in the output dtype, little-endian) and say per file, in order,
    ``[path, tokens, documents, text_bytes, rows, replaced]`` (``files``).
    """

    def __init__(
        self,
        encoding: Any,
        fmt: str,
        field: str,
        eot: bool,
        errors: str,
        threads: int,
        batch_rows: int,
        scratch: str,
    ) -> None:
        import numpy as np

        from fastllm.registry import get_encoding

        self.np = np
        self.pa = importlib.import_module("pyarrow")
        self.pq = importlib.import_module("pyarrow.parquet")
        self.compute = importlib.import_module("pyarrow.compute")
        self.enc = get_encoding(encoding) if isinstance(encoding, str) else encoding
        self.fmt = fmt
        self.field = field
        self.eot = eot
        self.errors = errors
        self.threads = threads
        self.batch_rows = batch_rows
        self.scratch = scratch
        self.dtype = np.uint16 if self.enc.max_token_value < 1 << 16 else np.uint32
        self.itemsize = np.dtype(self.dtype).itemsize
        self.core = _corpus_encoder(self.enc)
        ray = importlib.import_module("ray")
        self.node = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def _open_parquet(self, path: str) -> Any:
        """The Parquet file at ``path``, its text column checked; a file the check refuses
        raises the local run's own error (:meth:`_local_error`)."""
        pa = self.pa
        try:
            parquet = self.pq.ParquetFile(path)
            kind = parquet.schema_arrow.field(self.field).type
        except OSError as e:
            if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
                raise
            self._local_error(path, e)
        except Exception as e:  # pyarrow's errors: not Parquet, no such column
            self._local_error(path, e)
        if not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_string_view(kind)
        ):
            self._local_error(path, TypeError(f"column {self.field!r} holds {kind}"))
        return parquet

    def _local_error(self, path: str, error: BaseException) -> NoReturn:
        """Raises the error the local run's own Rust reader gives for ``path`` (one owner of
        the texts: it stops at the same check, before reading any rows); ``error`` (what
        pyarrow said) only if that reader accepts the file."""
        from fastllm import _fastllm

        _fastllm.count_files(
            self.core, [path], ["parquet"], field=self.field, eot=self.eot,
            errors=self.errors, num_threads=1, job_bytes=1 << 20,
        )
        raise ValueError(f"{path}: cannot read column {self.field!r} ({error})")

    def _parquet(self, unit: dict[str, Any]) -> Iterator[Any]:
        """Row groups ``unit["groups"]`` of one Parquet file, read here (pyarrow, one thread)
        and encoded zero-copy (``encode_ordinary_arrow``), one table per ``batch_rows`` rows."""
        path = unit["path"]
        parquet = self._open_parquet(path)
        first, end = unit["groups"] or (0, parquet.num_row_groups)
        if first >= end:
            return
        for b, batch in enumerate(parquet.iter_batches(
            batch_size=self.batch_rows, row_groups=range(first, end), columns=[self.field],
            use_threads=self.threads > 1,
        )):
            column = batch.column(0)
            tokens, offsets, _ = self.enc.encode_ordinary_arrow(
                column, eot=self.eot, num_threads=self.threads
            )
            tokens = tokens.astype(self.dtype, copy=False)
            text_bytes = self._text_bytes(column)
            rows = len(column)
            part = self._part(f"{unit['id']:06d}-{b:06d}", offsets[:-1], tokens)
            yield self._table(
                [part], [json.dumps([[path, int(offsets[-1]), rows, text_bytes, rows, 0]])]
            )

    def _part(self, name: str, starts: Any, tokens: Any) -> list[Any]:
        """Writes a batch's document starts (8-byte integers) then its tokens (output dtype)
        to the part file ``name`` of the scratch directory (a temporary name, then renamed:
        a part is there whole or not at all; a retried unit writes the same bytes); returns
        ``[part path, documents, token bytes]``."""
        path = os.path.join(self.scratch, f"{name}.part")
        tmp = f"{path}.{self.pid}.tmp"
        with open(tmp, "wb") as f:
            f.write(starts.data)
            f.write(tokens.data)
        os.replace(tmp, path)
        return [path, len(starts), tokens.nbytes]

    def _text_bytes(self, column: Any) -> int:
        """The UTF-8 bytes of a string column's values (a null counts 0): from its offsets
        when it has no nulls (``binary_length`` cost ~8% of the actor's CPU)."""
        pa, np = self.pa, self.np
        if len(column) == 0:
            return 0
        if pa.types.is_string_view(column.type):
            column = column.cast(pa.large_string())
        kind = column.type
        if column.null_count == 0 and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            width = np.int64 if pa.types.is_large_string(kind) else np.int32
            offsets = np.frombuffer(column.buffers()[1], width)[column.offset :]
            return int(offsets[len(column)] - offsets[0])
        lengths = self.compute.binary_length(column).to_numpy(zero_copy_only=False)
        return int(np.nan_to_num(lengths.astype(np.float64)).sum())

    def _files(self, unit: dict[str, Any]) -> Any:
        """Whole text/JSONL files, read here, one output row each, tokenized by the local
        run's own Rust code (``_fastllm.encode_file_bytes``: decompression, UTF-8, JSONL
        records, encoding, its error texts) with the GIL released."""
        from fastllm import _fastllm

        np = self.np
        parts: list[list[Any]] = []
        files: list[str] = []
        for j, path in enumerate(unit["paths"]):
            raw = np.fromfile(path, dtype=np.uint8)
            tokens, starts, text_bytes, replaced = _fastllm.encode_file_bytes(
                self.core, raw, path, input_format(path, self.fmt), self.field, self.eot,
                self.errors,
            )
            del raw
            parts.append(self._part(f"{unit['id']:06d}-{j:06d}", starts, tokens))
            n_tokens = len(tokens) // self.itemsize
            files.append(json.dumps([[path, n_tokens, len(starts), text_bytes, 1, replaced]]))
        return self._table(parts, files)

    def _table(self, parts: list[list[Any]], files: list[str]) -> Any:
        """One row per part: ``part`` (its path), ``documents``, ``token_bytes``, ``files``
        (per input file, in order: ``[path, tokens, documents, text_bytes, rows,
        replaced]``), the actor and its CPU seconds so far."""
        pa = self.pa
        rows = len(files)
        return pa.table(
            {
                "part": pa.array([p[0] for p in parts]),
                "documents": pa.array([p[1] for p in parts], type=pa.int64()),
                "token_bytes": pa.array([p[2] for p in parts], type=pa.int64()),
                "files": pa.array(files),
                "worker": pa.array([f"{self.node} {self.pid}"] * rows),
                # This actor's CPU seconds so far (DistributedStats.actor_cpu_seconds).
                "cpu": pa.array([time.process_time()] * rows),
            }
        )

    def __call__(self, batch: Any) -> Iterator[Any]:
        for text in batch.column("unit").to_pylist():
            unit = json.loads(text)
            if unit["kind"] == "parquet":
                yield from self._parquet(unit)
            else:
                yield self._files(unit)


def _check_node_reads(files: list[str], scratch: str) -> dict[str, Any]:
    """Run on a node: which inputs it cannot stat (the first few), whether it can write a
    probe file into the scratch directory (the error if not), and its address."""
    ray = importlib.import_module("ray")
    missing = []
    for path in files:
        try:
            os.stat(path)
        except OSError as e:
            missing.append(f"{path} ({e.strerror})")
            if len(missing) >= 3:
                break
    node = ray.get_runtime_context().get_node_id()
    probe = os.path.join(scratch, f"probe-{node}")
    unwritable: list[Any] = []
    try:
        with open(probe, "wb"):
            pass
    except OSError as e:
        unwritable = [e.errno or errno.EIO, e.strerror or str(e)]
    return {"node": ray.util.get_node_ip_address(), "missing": missing, "probe": probe,
            "unwritable": unwritable}


#: The columns of an actor's result table, as the driver reads them.
_RESULT_COLUMNS = ("part", "documents", "token_bytes", "files", "worker", "cpu")


def _read_part(np: Any, path: str, documents: int, token_bytes: int) -> Any:
    """A part file an actor wrote (``uint8``: ``documents`` 8-byte starts, then
    ``token_bytes`` of tokens), checked whole."""
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as e:
        raise OSError(
            e.errno, f"cannot read the part file {path} an actor wrote ({e.strerror}): the "
            "output must be on a path every node of the cluster can reach", path,
        ) from None
    if raw.size != documents * 8 + token_bytes:
        raise OSError(
            errno.EIO, f"the part file {path} has {raw.size} bytes, its actor wrote "
            f"{documents * 8 + token_bytes}", path,
        )
    return raw


def _scratch(out: Path) -> Path:
    """The scratch directory of a run writing ``out`` (next to it: every node writes its
    encoded batches there as part files; removed at the end of every run)."""
    return out.with_name(f".{out.name}.parts")


def _remove_scratch(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)


# ---- the driver's side ----


@dataclass(frozen=True)
class RayProgress:
    """What the driver reports about a running :func:`tokenize` (about every 100 ms).

    >>> p = RayProgress(bytes_done=5, bytes_total=10, tokens=2, documents=1, files_done=0,
    ...                 files_total=1, nodes=2, actors=2, startup_seconds=None)
    >>> p.bytes_done / p.bytes_total, p.nodes
    (0.5, 2)
    """

    bytes_done: int
    bytes_total: int
    tokens: int
    documents: int
    files_done: int
    files_total: int
    nodes: int
    actors: int
    #: Seconds from the call to the first encoded batch (connection, actor start-up).
    startup_seconds: float | None


RayProgressCallback = Callable[[RayProgress], object]


def progress_drawer(progress: Any) -> RayProgressCallback | None:
    """The callback drawing :class:`RayProgress` on the CLI's one progress bar
    (:class:`fastllm.cli._common.ProgressBar`, or None for no bar): input MB, tokens, files,
    nodes and actors; the rate (and ETA) counted from the first encoded batch (steady state).
    """
    if progress is None:
        return None
    counting = False

    def draw(p: RayProgress) -> None:
        nonlocal counting
        if p.startup_seconds is None:
            progress.status(f"tokenize: starting {p.actors} Ray actors on {p.nodes} nodes ...")
            return
        if not counting:
            progress.count_from(p.bytes_done)
            counting = True
        progress.update(
            p.bytes_done,
            p.bytes_total,
            f"  {p.tokens:,} tokens  {p.files_done:,}/{p.files_total:,} files  "
            f"{p.nodes} nodes/{p.actors} actors",
        )

    return draw


@dataclass(frozen=True)
class DistributedStats(TokenizeStats):
    """:class:`fastllm.tokenfile.TokenizeStats` plus how the cluster ran."""

    nodes: int = 0
    actors: int = 0
    #: Seconds from the call to the first encoded batch.
    startup_seconds: float = 0.0
    #: CPU seconds of the encoder actors (their processes, from start-up to their last
    #: batch; a restarted actor counts twice): the engine's cost without the machine's load.
    actor_cpu_seconds: float = 0.0

    @property
    def steady_bytes_per_second(self) -> float:
        """Input bytes per second after start-up (the first encoded batch)."""
        steady = self.seconds - self.startup_seconds
        done = self.input_bytes - self.resumed_bytes
        return done / steady if steady > 0 else 0.0

    def summary(self) -> str:
        line = super().summary()
        if self.up_to_date:
            return line
        return (
            f"{line}; {self.actors} actors on {self.nodes} nodes, start-up "
            f"{self.startup_seconds:.1f} s, then {_size(self.steady_bytes_per_second)}/s"
        )


def _describe_inputs(files: list[str], formats: list[str]) -> list[dict[str, Any]]:
    """Each input with its identity, as the local run's manifest lists it (the Rust owner)."""
    from fastllm import _fastllm

    return _fastllm.describe_inputs(files, formats)


def _identity(
    encoding: Any,
    field: str,
    eot: bool,
    errors: str,
    layout: str,
    shard_tokens: int | None,
    val_tokens: int | None,
) -> dict[str, Any]:
    """What the manifest records about the encoding and settings (as the local run writes it);
    a rerun reuses work only when it is the same."""
    from fastllm.registry import get_encoding

    enc = get_encoding(encoding) if isinstance(encoding, str) else encoding
    core = _corpus_encoder(encoding)
    return {
        "encoding": {
            "name": enc.name,
            "vocab_sha256": core.vocab_sha256,
            "n_vocab": enc.max_token_value + 1,
            "pattern": enc._pat_str,
            "special_tokens": dict(enc._special_tokens),
        },
        "settings": {"field": field, "eot": bool(eot), "errors": errors},
        "dtype": core.dtype,
        "sharding": {"layout": layout, "shard_tokens": shard_tokens, "val_tokens": val_tokens},
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = Path(os.fspath(path) + ".tmp")
    try:
        tmp.write_bytes(data)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


_INPUT_KEYS = ("path", "format", "bytes", "mtime_ns", "head_tail_sha256")


def _same_input(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in _INPUT_KEYS)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _up_to_date(
    manifest: Path, identity: dict[str, Any], described: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The manifest of a complete earlier run of the same inputs and settings, else None."""
    old = _read_json(manifest)
    if old is None or old.get("kind") != _MANIFEST_KIND:
        return None
    if any(old.get(k) != v for k, v in identity.items()):
        return None
    inputs = old.get("inputs", [])
    if len(inputs) != len(described) or not all(map(_same_input, inputs, described)):
        return None
    for shard in old.get("shards", []):
        try:
            if (manifest.parent / shard["file"]).stat().st_size != shard["bytes"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
    return old


class _Output:
    """The driver's output: the Rust :class:`fastllm.tokenfile.ShardWriter` (the local run's
    writer, so the shards and manifest are the local run's bytes), checkpointed at input-file
    boundaries into the journal ``NAME.manifest.partial.json``: the writer's own checkpoint
    (complete shards with their sha256, the partial shard's state) and the per-file counts.
    A rerun goes on after the last checkpoint when the writer accepts it (every complete shard
    still matches its sha256), else starts over and says why (:attr:`note`)."""

    def __init__(
        self,
        out: Path,
        encoding: Any,
        identity: dict[str, Any],
        inputs: list[dict[str, Any]],
    ) -> None:
        self.out = out
        self.encoding = encoding
        self.identity = identity
        self.inputs = inputs
        self.manifest = manifest_path(out)
        self.journal = self.manifest.with_name(
            self.manifest.name[: -len(".json")] + ".partial.json"
        )
        self.itemsize = 2 if identity["dtype"] == "uint16" else 4
        self.files_done = 0
        self.text_bytes = 0
        self.replaced = 0
        self.per_file = [[0, 0, 0] for _ in inputs]
        self.resumed_bytes = 0
        self.resumed_text_bytes = 0
        self.note: str | None = None
        self.writer: Any = None
        self.shards_checkpointed = 0

    @property
    def tokens(self) -> int:
        return int(self.writer.tokens) if self.writer is not None else 0

    @property
    def documents(self) -> int:
        return int(self.writer.documents) if self.writer is not None else 0

    def _writer(self, resume: str | None) -> Any:
        from fastllm import _fastllm

        sharding = self.identity["sharding"]
        settings = self.identity["settings"]
        return _fastllm.ShardWriter(
            _corpus_encoder(self.encoding),
            os.fspath(self.out),
            layout=sharding["layout"],
            shard_tokens=sharding["shard_tokens"],
            val_tokens=sharding["val_tokens"],
            eot=settings["eot"],
            field=settings["field"],
            errors=settings["errors"],
            resume=resume,
        )

    def _load(self) -> dict[str, Any] | None:
        if not self.journal.exists():
            return None
        journal = _read_json(self.journal)
        if journal is None or journal.get("kind") != _JOURNAL_KIND:
            self.note = f"{self.journal} is unreadable or not a distributed run's journal"
            return None
        if journal.get("identity") != self.identity:
            self.note = "the encoding or settings changed"
            return None
        done = int(journal.get("files_done", 0))
        old = journal.get("inputs", [])
        if len(old) != done or done > len(self.inputs) or not all(
            map(_same_input, old, self.inputs[:done])
        ):
            self.note = "inputs read by the earlier run changed"
            return None
        return journal

    def _remove_old(self) -> None:
        """What an earlier run left under these names (its shards, manifest and journal)."""
        listed: list[str] = []
        old_manifest = _read_json(self.manifest) or {}
        listed += [s.get("file", "") for s in old_manifest.get("shards", [])]
        old_journal = _read_json(self.journal) or {}
        listed += [s.get("file", "") for s in old_journal.get("writer", {}).get("done", [])]
        for name in filter(None, listed):
            for path in (self.manifest.parent / name, self.manifest.parent / f"{name}.idx"):
                path.unlink(missing_ok=True)
        self.manifest.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    def open(self, resume: bool) -> None:
        journal = self._load() if resume else None
        if journal is not None:
            try:
                self.writer = self._writer(json.dumps(journal["writer"]))
            except (ValueError, KeyError, TypeError) as e:
                self.note = str(e) if str(e).startswith("cannot resume") else "bad journal"
            else:
                self.files_done = int(journal["files_done"])
                self.per_file[: self.files_done] = journal["per_file"]
                self.text_bytes = int(journal["counts"]["text_bytes"])
                self.replaced = int(journal["counts"]["replaced"])
                self.resumed_bytes = sum(i["bytes"] for i in self.inputs[: self.files_done])
                self.resumed_text_bytes = self.text_bytes
                self.shards_checkpointed = len(journal["writer"]["done"])
                return
        self._remove_old()
        self.writer = self._writer(None)

    def write(self, tokens: Any, starts: Any) -> None:
        """Appends ``tokens`` (``uint8``: the output dtype's little-endian bytes, end-of-text
        tokens included) and the documents starting at ``starts`` (``uint64`` token offsets
        into ``tokens``)."""
        self.writer.write_bytes(tokens, starts)

    def file_done(self, index: int, counts: list[int], replaced: int) -> None:
        self.per_file[index] = counts
        self.text_bytes += counts[2]
        self.replaced += replaced
        self.files_done = index + 1

    @property
    def shard_completed(self) -> bool:
        """Whether a shard was completed since the last checkpoint."""
        return int(self.writer.shards_done) != self.shards_checkpointed

    def checkpoint(self) -> None:
        """Syncs the shard being written and records, atomically, how far the output goes."""
        state = json.loads(self.writer.checkpoint())
        self.shards_checkpointed = len(state["done"])
        journal = {
            "kind": _JOURNAL_KIND,
            "version": 1,
            "identity": self.identity,
            "inputs": self.inputs[: self.files_done],
            "files_done": self.files_done,
            "per_file": self.per_file[: self.files_done],
            "counts": {
                "tokens": self.tokens,
                "documents": self.documents,
                "text_bytes": self.text_bytes,
                "replaced": self.replaced,
            },
            "writer": state,
        }
        _write_atomic(self.journal, _dumps(journal))

    def close(self) -> None:
        """After a failure: the journal and the checkpointed shards stay for a rerun."""
        self.writer = None

    def finish(self) -> Any:
        """Completes the last shard and writes the manifest (the local run's, byte for byte)."""
        extra = {
            "input_bytes": sum(i["bytes"] for i in self.inputs),
            "text_bytes": self.text_bytes,
            "replaced_invalid_utf8": self.replaced,
            "inputs": [
                {**i, "tokens": c[0], "documents": c[1], "text_bytes": c[2]}
                for i, c in zip(self.inputs, self.per_file)
            ],
        }
        manifest = self.writer.finish(json.dumps(extra))
        self.writer = None
        self.journal.unlink(missing_ok=True)
        return manifest


def _connect(ray: Any, address: str | None) -> bool:
    """Connects to the cluster at ``address`` (None: ``RAY_ADDRESS`` or a new local one);
    returns whether this call connected (and so disconnects at the end)."""
    if ray.is_initialized():
        return False
    _reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local Ray instance"
        raise ConnectionError(
            f"no Ray cluster at {where}: {e}".rstrip()
            + " (start one with `ray start --head`, or pass its address: --ray HOST:PORT)"
        ) from None
    return True


def _reachable(address: str | None) -> None:
    """A ``HOST:PORT`` address that refuses a TCP connection is an error now (``ray.init``
    would retry for minutes)."""
    if not address or "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise ConnectionError(
            f"no Ray cluster at {address}: {e} (start one with `ray start --head`, or pass "
            "its address: --ray HOST:PORT)"
        ) from None


def _check_nodes(ray: Any, files: list[str], scratch: Path) -> int:
    """Every alive node can stat every input and write into the (new) scratch directory,
    which the driver sees (else an error naming node and paths); returns the number of alive
    nodes."""
    strategy = importlib.import_module("ray.util.scheduling_strategies")
    scratch.mkdir()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    check = ray.remote(num_cpus=0)(_check_node_reads)
    refs = [
        check.options(
            scheduling_strategy=strategy.NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(files, os.fspath(scratch))
        for n in nodes
    ]
    results = ray.get(refs)
    for result in results:
        if result["missing"]:
            raise FileNotFoundError(
                errno.ENOENT,
                f"node {result['node']} cannot read {', '.join(result['missing'])}: the inputs "
                "must be on a path every node of the cluster can read (a shared directory)",
                result["missing"][0].split(" (")[0],
            )
    for result in results:
        reach = ("the output must be on a path every node of the cluster can reach (a shared "
                 "directory): the actors write their encoded batches next to it")
        if result["unwritable"]:
            code, why = result["unwritable"]
            raise OSError(
                code, f"node {result['node']} cannot write to {scratch} ({why}): {reach}",
                os.fspath(scratch),
            )
        if not os.path.exists(result["probe"]):
            raise FileNotFoundError(
                errno.ENOENT,
                f"node {result['node']} wrote into {scratch} but the driver does not see it "
                f"there: {reach}",
                os.fspath(scratch),
            )
    return len(nodes)


_RAISED = re.compile(
    r"^(ValueError|FileNotFoundError|PermissionError|IsADirectoryError|OSError): (.+)$", re.M
)
_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
    "IsADirectoryError": IsADirectoryError,
    "OSError": OSError,
}


def _cause(error: BaseException) -> BaseException:
    """The user-facing error (ValueError, OSError) a Ray task error carries, else ``error``.

    The chain of causes does not always survive Ray's serialization, so the message of the
    error raised in the actor is also looked for in the task error's text.
    """
    ray_exceptions = importlib.import_module("ray.exceptions")
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, tuple(_ERRORS.values())) and not isinstance(
            seen, ray_exceptions.RayError
        ):
            return _without_ray_note(seen)
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) and cause is not seen else seen.__cause__
    found = _RAISED.search(str(error))
    if found and isinstance(error, ray_exceptions.RayError):
        return _ERRORS[found.group(1)](found.group(2))
    return error


#: Where Ray Data's retry wrapper appends its advice to the text of an error a UDF raised.
_RAY_NOTE = "\nFailed to apply UDF transform"


def _without_ray_note(error: BaseException) -> BaseException:
    """``error`` as the actor raised it: without the lines Ray Data appends to its text."""
    if _RAY_NOTE not in str(error):
        return error
    args = [a[: a.find(_RAY_NOTE)] if isinstance(a, str) and _RAY_NOTE in a else a
            for a in error.args]
    if isinstance(error, OSError) and error.filename is not None:
        args.append(error.filename)
    try:
        return type(error)(*args)
    except Exception:
        return error


def _row_groups(path: str, field: str) -> list[tuple[int, int]] | None:
    """``(rows, text bytes)`` of each row group of a Parquet file, from its metadata (the
    text column's uncompressed size); None when the driver cannot read it (the actor reading
    the file then raises the error)."""
    try:
        metadata = importlib.import_module("pyarrow.parquet").read_metadata(path)
        groups = []
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            size = group.total_byte_size
            for c in range(group.num_columns):
                column = group.column(c)
                if column.path_in_schema == field:
                    size = column.total_uncompressed_size
                    break
            groups.append((int(group.num_rows), int(size)))
        return groups
    except Exception:
        return None


def _plan(
    files: list[str], formats: list[str], described: list[dict[str, Any]], first: int,
    n_actors: int, field: str, unit_bytes: int | None = None,
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The work units from input ``first`` on, in input order (each one actor call), and the
    rows of each Parquet file: consecutive row groups of one Parquet file up to
    ``unit_bytes`` (default ``_UNIT_TEXT_BYTES``) of text (a larger row group is a unit of
    its own, streamed in batches by the actor); consecutive text/JSONL files up to
    ``_FILE_BATCH_BYTES`` (less when a run has fewer files: at least two units per actor
    where there are files enough)."""
    units: list[dict[str, Any]] = []
    rows_total: dict[int, int] = {}
    limit = _UNIT_TEXT_BYTES if unit_bytes is None else unit_bytes
    i = first
    while i < len(files):
        if formats[i] == "parquet":
            groups = _row_groups(files[i], field)
            unit = {"kind": "parquet", "path": files[i]}
            if groups is None:
                units.append({**unit, "groups": None})
            else:
                rows_total[i] = sum(rows for rows, _ in groups)
                start, size = 0, 0
                for g, (_, nbytes) in enumerate(groups):
                    if g > start and size + nbytes > limit:
                        units.append({**unit, "groups": [start, g]})
                        start, size = g, 0
                    size += nbytes
                units.append({**unit, "groups": [start, len(groups)]})
            i += 1
            continue
        end = i
        while end < len(files) and formats[end] != "parquet":
            end += 1
        todo = sum(d["bytes"] for d in described[i:end])
        target = max(1, min(_FILE_BATCH_BYTES, todo // (2 * n_actors)))
        paths: list[str] = []
        size = 0
        for j in range(i, end):
            paths.append(files[j])
            size += described[j]["bytes"]
            if size >= target or j == end - 1:
                units.append({"kind": "files", "paths": paths})
                paths, size = [], 0
        i = end
    return units, rows_total


def tokenize(
    inputs: Inputs,
    out: PathLike,
    *,
    address: str | None = None,
    encoding: str = "gpt2",
    format: str = "auto",
    field: str = "text",
    eot: bool = True,
    errors: str = "strict",
    actors: int | None = None,
    cpus_per_actor: int = 1,
    resume: bool = True,
    progress: RayProgressCallback | None = None,
    checkpoint_interval: float = 5.0,
    batch_rows: int = 512,
    layout: str = "flat",
    shard_tokens: int | None = DEFAULT_SHARD_TOKENS,
    val_tokens: int | None = None,
) -> DistributedStats:
    """Tokenizes ``inputs`` on the Ray cluster at ``address`` into the shards of ``out`` and
    their manifest: the same files ``fastllm.tokenize_files(inputs, out, shard_tokens=...,
    val_tokens=..., layout=...)`` writes, byte for byte.

    - ``address``: a Ray cluster (``HOST:PORT``, ``ray://...``, ``auto``); None: the one Ray is
      already connected to, ``RAY_ADDRESS``, or a new local instance.
    - ``encoding``, ``format`` (also ``"parquet"``; ``auto``: ``*.parquet`` is Parquet),
      ``field``, ``eot``, ``errors``, ``resume``: as in :func:`fastllm.tokenize_files`.
    - ``actors``: encoder actors (default: the cluster's CPUs / ``cpus_per_actor``), each with
      ``cpus_per_actor`` CPUs and as many encoder threads.
    - ``progress(RayProgress)``: about every 100 ms, on the driver.
    - ``checkpoint_interval``: seconds between checkpoints (taken at file boundaries).
    - ``batch_rows``: Parquet rows per encoded batch.
    - ``layout``, ``shard_tokens`` (default :data:`DEFAULT_SHARD_TOKENS`; None: one shard),
      ``val_tokens``: the shards, as in :func:`fastllm.tokenfile.open_shard_writer`. A Ray
      run always writes shards and a manifest (``stats.path``; ``stats.shards``).

    Errors: ``ImportError`` without Ray, ``ConnectionError`` naming the address when no cluster
    answers there, ``FileNotFoundError`` for inputs missing on the driver or on any node,
    ``ValueError`` for bad text, records or arguments (file named), ``PermissionError`` for an
    output directory the driver cannot write, ``OSError`` naming the node for an output path
    some node cannot reach (the actors write their part files next to the output); in every
    case no manifest is written and the work checkpointed so far is kept for a rerun.
    """
    started = time.perf_counter()
    check_format(format)
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if actors is not None and (isinstance(actors, bool) or actors < 1):
        raise ValueError(f"actors must be None or >= 1, got {actors!r}")
    if isinstance(cpus_per_actor, bool) or cpus_per_actor < 1:
        raise ValueError(f"cpus_per_actor must be >= 1, got {cpus_per_actor!r}")
    # The layout and shard sizes are checked by the Rust writer; the output path by the same
    # Rust check every run makes, here, before the cluster is asked for anything.
    from fastllm import _fastllm

    out_path = Path(os.fspath(out))
    _fastllm.check_output(out_path)
    if not os.access(out_path.parent, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES,
            f"the output directory {os.fspath(out_path.parent)!r} is not writable "
            "(the driver writes the output there)",
            str(out),
        )
    files = resolve(inputs, _own_files(out))
    formats = [input_format(f, format) for f in files]
    described = _describe_inputs(files, formats)
    identity = _identity(encoding, field, eot, errors, layout, shard_tokens, val_tokens)
    manifest = manifest_path(out_path)
    old = _up_to_date(manifest, identity, described) if resume else None
    if old is not None:
        return _stats(manifest, old, started, 0.0, 0, 0, up_to_date=True)

    ray = _ray()
    connected = _connect(ray, address)
    output = _Output(out_path, encoding, identity, described)
    scratch = _scratch(out_path)
    _remove_scratch(scratch)  # an earlier run's parts are never reused
    try:
        nodes = _check_nodes(ray, files, scratch)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n_actors = actors or max(1, cpus // cpus_per_actor)
        output.open(resume)
        result = _run(
            ray, output, files, formats, described, encoding, format, field, eot, errors,
            n_actors, cpus_per_actor, progress, checkpoint_interval, batch_rows, started, nodes,
            scratch,
        )
    finally:
        output.close()
        if connected:
            ray.shutdown()
        _remove_scratch(scratch)
    return result


def _run(
    ray: Any,
    writer: _Output,
    files: list[str],
    formats: list[str],
    described: list[dict[str, Any]],
    encoding: str,
    format: str,
    field: str,
    eot: bool,
    errors: str,
    n_actors: int,
    cpus_per_actor: int,
    progress: RayProgressCallback | None,
    checkpoint_interval: float,
    batch_rows: int,
    started: float,
    n_nodes: int,
    scratch: Path,
) -> DistributedStats:
    data = importlib.import_module("ray.data")
    with warnings.catch_warnings():  # Ray's own deprecations, not the user's business
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.memory_usage_poll_interval_s = None  # a thread per task polling its memory
    # Ray Data's per-operator reservation of the object store (half of it) held a 2-actor run to
    # ~1 actor's speed with a 150 MB store (the ordered output of one actor waits while the
    # other's unit is written): steady 41.7 -> 57.7 MB/s without it (see the design notes).
    ctx.op_resource_reservation_enabled = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx.target_max_block_size = _BLOCK_BYTES
    import numpy as np

    index = {path: i for i, path in enumerate(files)}
    itemsize = writer.itemsize
    total = sum(d["bytes"] for d in described)
    done_bytes = writer.resumed_bytes
    resumed_files = writer.files_done
    workers: set[str] = set()
    cpu: dict[str, float] = {}
    nodes: set[str] = set()
    startup: float | None = None
    last_report = 0.0
    last_checkpoint = time.perf_counter()
    current: list[Any] | None = None  # [index, tokens, documents, text_bytes, rows, replaced]
    units, rows_total = _plan(files, formats, described, writer.files_done, n_actors, field)

    def report(force: bool = False) -> None:
        nonlocal last_report
        now = time.perf_counter()
        if progress is None or (not force and now - last_report < 0.1):
            return
        last_report = now
        partial = 0
        if current is not None:
            size = described[current[0]]["bytes"]
            rows = rows_total.get(current[0])
            partial = int(size * min(current[4] / rows, 1.0)) if rows else 0
        progress(
            RayProgress(
                bytes_done=done_bytes + partial,
                bytes_total=total,
                tokens=writer.tokens,
                documents=writer.documents,
                files_done=writer.files_done,
                files_total=len(files),
                nodes=len(nodes),
                actors=len(workers) or n_actors,
                startup_seconds=startup,
            )
        )

    def complete_until(end: int) -> None:
        """Inputs before ``end`` are done (zero-row ones too); a checkpoint when it is time,
        or when a shard was completed since the last one (checkpoints fall on file
        boundaries: a resumed run starts at a file)."""
        nonlocal current, done_bytes, last_checkpoint
        while writer.files_done < end:
            i = writer.files_done
            if current is not None and current[0] == i:
                counts, replaced = current[1:4], current[5]
                current = None
            else:
                counts, replaced = [0, 0, 0], 0
            writer.file_done(i, counts, replaced)
            done_bytes += described[i]["bytes"]
        if writer.shard_completed or time.perf_counter() - last_checkpoint >= checkpoint_interval:
            writer.checkpoint()
            last_checkpoint = time.perf_counter()

    report(force=True)
    try:
        if units:
            # One block per unit: each is one actor call, in input order (preserve_order).
            ds = data.from_items(
                [{"unit": json.dumps({**u, "id": k})} for k, u in enumerate(units)],
                override_num_blocks=len(units),
            )
            ds = ds.map_batches(
                _Encoder,
                fn_constructor_kwargs={
                    "encoding": encoding,
                    "fmt": format,
                    "field": field,
                    "eot": eot,
                    "errors": errors,
                    "threads": cpus_per_actor,
                    "batch_rows": batch_rows,
                    "scratch": os.fspath(scratch),
                },
                batch_size=1,
                batch_format="pyarrow",
                # Ray Data gives pool actors max_restarts=-1 and max_task_retries=-1: a killed
                # actor is restarted and its units retried (the output stays in order).
                compute=data.ActorPoolStrategy(size=n_actors),
                num_cpus=cpus_per_actor,
            )
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                if startup is None:
                    startup = time.perf_counter() - started
                for part, n_docs, n_bytes, files_json, worker, worker_cpu in zip(
                    *(table.column(c).to_pylist() for c in _RESULT_COLUMNS)
                ):
                    workers.add(worker)
                    cpu[worker] = max(cpu.get(worker, 0.0), worker_cpu)
                    nodes.add(worker.split(" ")[0])
                    raw = _read_part(np, part, n_docs, n_bytes)
                    starts = raw[: n_docs * 8].view(np.uint64)
                    tokens_bytes = raw[n_docs * 8 :]
                    first_token = first_doc = 0
                    for path, tokens, documents, nbytes, rows, replaced in json.loads(files_json):
                        i = index[path]
                        if current is None or current[0] != i:
                            complete_until(i)  # checkpoints fall on file boundaries
                            current = [i, 0, 0, 0, 0, 0]
                        # This file's part of the batch.
                        doc_starts = starts[first_doc : first_doc + documents]
                        writer.write(
                            tokens_bytes[
                                first_token * itemsize : (first_token + tokens) * itemsize
                            ],
                            doc_starts - np.uint64(first_token) if first_token else doc_starts,
                        )
                        first_token += tokens
                        first_doc += documents
                        current[1] += tokens
                        current[2] += documents
                        current[3] += nbytes
                        current[4] += rows
                        current[5] += replaced
                    del raw
                    os.unlink(part)
                    report()
        complete_until(len(files))
    except KeyboardInterrupt:
        raise
    except Exception as error:
        cause = _cause(error)
        if cause is not error:
            raise cause from None
        raise
    report(force=True)
    manifest = writer.finish()
    return _stats(
        Path(manifest.path),
        json.loads(manifest.json),
        started,
        startup or 0.0,
        len(nodes),
        len(workers),
        resumed=resumed_files > 0,
        resumed_bytes=writer.resumed_bytes,
        resumed_text_bytes=writer.resumed_text_bytes,
        note=writer.note,
        actor_cpu=sum(cpu.values()),
    )


def _stats(
    manifest: Path,
    meta: dict[str, Any],
    started: float,
    startup: float,
    nodes: int,
    actors: int,
    *,
    up_to_date: bool = False,
    resumed: bool = False,
    resumed_bytes: int = 0,
    resumed_text_bytes: int = 0,
    note: str | None = None,
    actor_cpu: float = 0.0,
) -> DistributedStats:
    return DistributedStats(
        path=manifest,
        encoding=meta["encoding"]["name"],
        dtype=meta["dtype"],
        tokens=meta["token_count"],
        documents=meta["document_count"],
        files=len(meta["inputs"]),
        input_bytes=meta["input_bytes"],
        text_bytes=meta["text_bytes"],
        replaced=meta["replaced_invalid_utf8"],
        seconds=time.perf_counter() - started,
        resumed=resumed,
        resumed_bytes=resumed_bytes,
        resumed_text_bytes=resumed_text_bytes,
        up_to_date=up_to_date,
        note=note,
        sidecar=meta,
        shards=tuple(manifest.parent / item["file"] for item in meta.get("shards", ())),
        nodes=nodes,
        actors=actors,
        startup_seconds=startup,
        actor_cpu_seconds=actor_cpu,
    )
