"""THE input walker: which files a list of files, directories and glob patterns names (a leaf).

One rule for every caller (:func:`fastllm.tokenize_files`, :func:`fastllm.count_tokens_in_files`
and the ``fastllm tokenize``, ``count`` and ``train-bpe`` commands):

- a file named (or matched by a glob pattern) is used as it is;
- a directory is recursed, sorted, following symlinks but each directory once (a symlink loop is
  never followed twice); below it, and among a glob pattern's matches, hidden files and
  directories (``.name``), ``__pycache__`` directories, binary files (a NUL byte in the first
  8 KiB, as git decides; ``.gz``/``.zst``/Parquet files are decoded, so they are kept) and
  FIFOs, devices and sockets (never opened) are skipped and counted (:class:`Resolved`);
- a FIFO, device or socket named as an input, or the run's own output, is a ``ValueError``;
- paths are made absolute and a file reached twice (two paths, a symlink, a hard link: the same
  device and inode) is kept once.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

__all__ = [
    "FORMATS",
    "PathLike",
    "Resolved",
    "check_format",
    "format_of",
    "input_format",
    "resolve",
    "resolve_inputs",
    "resolve_report",
]

PathLike = Union[str, "os.PathLike[str]"]
Inputs = Union[PathLike, Iterable[PathLike]]

FORMATS = ("auto", "text", "jsonl", "parquet")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")
_PARQUET_SUFFIXES = (".parquet", ".pq")
#: First bytes of the files fastllm decodes itself (gzip, zstd, Parquet): never "binary".
_MAGICS = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1")
#: Bytes read from a file found under a directory to tell text from binary.
_SNIFF_BYTES = 8192


def format_of(path: str) -> str:
    """``"parquet"`` for ``*.parquet``/``*.pq``; ``"jsonl"`` for ``*.jsonl``/``*.ndjson`` (also
    compressed); else ``"text"``."""
    name = os.path.basename(path).lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return "jsonl" if name.endswith(_JSONL_SUFFIXES) else "text"


def check_format(format: str) -> str:
    """``format`` if it is one of :data:`FORMATS`; ``ValueError`` otherwise."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    return format


def input_format(path: PathLike, format: str = "auto") -> str:
    """``"text"``, ``"jsonl"`` or ``"parquet"`` for one input: ``format`` itself, or from the
    file name.

    With ``"auto"``, ``*.parquet`` is Parquet, ``*.jsonl`` and ``*.ndjson`` (also compressed:
    ``.gz``, ``.zst``) are JSONL, everything else is text.

    >>> input_format("data/part-0.jsonl.zst"), input_format("book.txt")
    ('jsonl', 'text')
    >>> input_format("train-00000-of-00004.parquet")
    'parquet'
    """
    if check_format(format) != "auto":
        return format
    return format_of(os.fspath(path))


def _is_binary(path: str) -> bool:
    """A NUL byte in the first block, as git decides (gzip, zstd and Parquet files excepted)."""
    if path.lower().endswith(_COMPRESSED_SUFFIXES + _PARQUET_SUFFIXES):
        return False
    # os.open/os.read: half the CPU time of open() with its buffer (4 vs 8.5 us a file, of
    # ~250 us encoding an average standard-library file). Only regular files get here, so
    # opening never waits (a FIFO would).
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            head = os.read(fd, _SNIFF_BYTES)
        finally:
            os.close(fd)
    except OSError:
        return False  # kept: reading it later reports the error
    return b"\0" in head and not head.startswith(_MAGICS)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@dataclass
class Resolved:
    """The input files, and what the walker skipped below directories and glob patterns."""

    files: list[str] = field(default_factory=list)
    #: Files with a NUL byte in their first 8 KiB (binary, as git decides).
    binary: int = 0
    #: FIFOs, devices and sockets (never opened: a FIFO would wait for a writer).
    special: int = 0
    #: Files reached a second time (another path, a symlink) and kept once.
    duplicates: int = 0

    def skipped(self) -> str:
        """What was skipped, for a summary line (``""`` when nothing was).

        >>> Resolved(["a"], binary=2, special=1).skipped()
        'skipped 2 binary files and 1 FIFO/device/socket'
        >>> Resolved(["a"], binary=1).skipped()
        'skipped 1 binary file'
        """
        parts = []
        if self.binary:
            parts.append(f"{self.binary:,} binary file{'s' if self.binary != 1 else ''}")
        if self.special:
            parts.append(
                f"{self.special:,} FIFO{'s' if self.special != 1 else ''}/device/socket"
            )
        return f"skipped {' and '.join(parts)}" if parts else ""


class _Walker:
    def __init__(self, exclude: Iterable[PathLike]) -> None:
        self.out = Resolved()
        self.cwd = os.getcwd()
        self.seen: set[tuple[int, int]] = set()
        self.skip: set[tuple[int, int]] = set()
        self.skip_names = {os.path.abspath(os.fspath(p)) for p in exclude}
        for name in self.skip_names:
            try:
                st = os.stat(name)
            except OSError:
                continue
            self.skip.add((st.st_dev, st.st_ino))

    def absolute(self, path: str) -> str:
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(self.cwd, path))

    def add(self, path: str, st: os.stat_result, named: bool) -> None:
        """Adds a file once (by device and inode: symlinks and hard links too)."""
        if not stat.S_ISREG(st.st_mode):
            if named:
                raise ValueError(
                    f"{path}: it is {_kind(st.st_mode)}; inputs must be regular files"
                )
            self.out.special += 1
            return
        key = (st.st_dev, st.st_ino)
        if key in self.skip or self.absolute(path) in self.skip_names:
            if named:
                raise ValueError(
                    f"{path} is this run's output (or one of its files); name another output "
                    "file or leave it out of the inputs"
                )
            return
        if key in self.seen:
            self.out.duplicates += 1
            return
        if not named and _is_binary(path):
            self.out.binary += 1
            return
        self.seen.add(key)
        self.out.files.append(self.absolute(path))

    def walk(self, folder: str) -> None:
        """Recurses ``folder`` sorted, following symlinks but each directory once (no loops)."""
        found: list[tuple[str, os.stat_result]] = []
        visited: set[tuple[int, int]] = set()

        def visit(directory: str) -> None:
            try:
                st = os.stat(directory)
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                return
            if (st.st_dev, st.st_ino) in visited:
                return
            visited.add((st.st_dev, st.st_ino))
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    est = os.stat(entry.path)  # follows symlinks
                except OSError:
                    continue  # a dangling symlink
                if stat.S_ISDIR(est.st_mode):
                    if entry.name != "__pycache__":
                        visit(entry.path)
                else:
                    found.append((entry.path, est))

        visit(folder)
        for path, st in sorted(found, key=lambda item: item[0]):
            self.add(path, st, named=False)


def resolve_report(inputs: Inputs, exclude: Iterable[PathLike] = ()) -> Resolved:
    """:func:`resolve` with what was skipped (binary files, FIFOs/devices/sockets, duplicates)."""
    names = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    walker = _Walker(exclude)
    for item in names:
        name = os.fspath(item)
        try:
            st: os.stat_result | None = os.stat(name)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            walker.walk(name)
        elif st is not None:
            walker.add(name, st, named=True)
        elif any(c in name for c in "*?["):
            matches = sorted(glob.glob(name, recursive=True))
            if not matches:
                raise FileNotFoundError(errno.ENOENT, "no file matches the pattern", name)
            for match in matches:
                try:
                    mst = os.stat(match)
                except OSError:
                    continue
                if stat.S_ISDIR(mst.st_mode):
                    walker.walk(match)
                else:
                    walker.add(match, mst, named=False)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such input file or directory", name)
    if not walker.out.files:
        listed = ", ".join(os.fspath(n) for n in names) or "(nothing)"
        skipped = walker.out.skipped()
        raise ValueError(
            f"no input files found in {listed}" + (f" ({skipped})" if skipped else "")
        )
    return walker.out


def resolve(inputs: Inputs, exclude: Iterable[PathLike] = ()) -> list[str]:
    """:func:`resolve_inputs` as absolute path strings (one ``stat`` per named input)."""
    return resolve_report(inputs, exclude).files


def resolve_inputs(inputs: Inputs, *, exclude: Iterable[PathLike] = ()) -> list[Path]:
    """The input files, in order: files as given, directories recursed (sorted; hidden files,
    ``__pycache__`` and binary files skipped), glob patterns expanded (sorted; ``**`` recurses).

    Paths are made absolute; a file found twice is kept once; ``exclude`` (and nothing else) is
    left out. ``FileNotFoundError`` names a missing input or a pattern that matches nothing;
    ``ValueError`` when no file is found at all.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["b.txt", "a.txt", "sub/c.jsonl", "__pycache__/b.pyc", ".hidden"]:
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     _ = (folder / name).write_text("x")
    >>> _ = (folder / "sub" / "d.pyc").write_bytes(b"\\x00\\x01")
    >>> [p.relative_to(folder).as_posix() for p in resolve_inputs(folder)]
    ['a.txt', 'b.txt', 'sub/c.jsonl']
    >>> [p.name for p in resolve_inputs(str(folder / "*.txt"))]
    ['a.txt', 'b.txt']
    """
    return [Path(p) for p in resolve(inputs, exclude)]
