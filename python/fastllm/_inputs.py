"""THE input walker: which files a list of files, directories and glob patterns names (a leaf).

One rule for every caller (:func:`fastllm.tokenize_files`, :func:`fastllm.count_tokens_in_files`
and the ``fastllm tokenize``, ``count`` and ``train-bpe`` commands):

- a file named (or matched by a glob pattern) is used as it is;
- a directory is recursed, sorted; below it, hidden files and directories (``.name``),
  ``__pycache__`` directories and binary files (a NUL byte in the first 8 KiB, as git decides;
  ``.gz``/``.zst`` files are decompressed, so they are kept) are skipped;
- paths are made absolute and a file found twice is kept once.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Union

__all__ = [
    "FORMATS",
    "PathLike",
    "check_format",
    "format_of",
    "input_format",
    "resolve",
    "resolve_inputs",
]

PathLike = Union[str, "os.PathLike[str]"]
Inputs = Union[PathLike, Iterable[PathLike]]

FORMATS = ("auto", "text", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")
#: Bytes read from a file found under a directory to tell text from binary.
_SNIFF_BYTES = 8192


def format_of(path: str) -> str:
    """``"jsonl"`` for ``*.jsonl``/``*.ndjson`` (also compressed), else ``"text"``."""
    name = os.path.basename(path).lower()
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
    """``"text"`` or ``"jsonl"`` for one input: ``format`` itself, or from the file name.

    With ``"auto"``, ``*.jsonl`` and ``*.ndjson`` (also compressed: ``.gz``, ``.zst``) are JSONL,
    everything else is text.

    >>> input_format("data/part-0.jsonl.zst"), input_format("book.txt")
    ('jsonl', 'text')
    """
    if check_format(format) != "auto":
        return format
    return format_of(os.fspath(path))


def _is_binary(path: str) -> bool:
    if path.lower().endswith(_COMPRESSED_SUFFIXES):
        return False
    try:
        with open(path, "rb") as f:
            return b"\0" in f.read(_SNIFF_BYTES)
    except OSError:
        return False  # kept: reading it later reports the error


def _walk(folder: str) -> list[str]:
    found: list[str] = []
    for root, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "__pycache__")
        for name in names:
            path = os.path.join(root, name)
            if not name.startswith(".") and not _is_binary(path):
                found.append(path)
    return sorted(found)


def resolve(inputs: Inputs, exclude: Iterable[PathLike] = ()) -> list[str]:
    """:func:`resolve_inputs` as absolute path strings (one ``stat`` per named input)."""
    names = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    skip = {os.path.abspath(os.fspath(p)) for p in exclude}
    found: list[str] = []
    seen: set[str] = set()
    cwd = os.getcwd()

    def add(path: str) -> None:
        absolute = os.path.normpath(path if os.path.isabs(path) else os.path.join(cwd, path))
        if absolute not in seen and absolute not in skip:
            seen.add(absolute)
            found.append(absolute)

    for item in names:
        name = os.fspath(item)
        try:
            is_dir: bool | None = stat.S_ISDIR(os.stat(name).st_mode)
        except OSError:
            is_dir = None
        if is_dir:
            for file in _walk(name):
                add(file)
        elif is_dir is not None:
            add(name)
        elif any(c in name for c in "*?["):
            matches = sorted(glob.glob(name, recursive=True))
            if not matches:
                raise FileNotFoundError(errno.ENOENT, "no file matches the pattern", name)
            for match in matches:
                if os.path.isdir(match):
                    for file in _walk(match):
                        add(file)
                else:
                    add(match)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such input file or directory", name)
    if not found:
        listed = ", ".join(os.fspath(n) for n in names) or "(nothing)"
        raise ValueError(f"no input files found in {listed}")
    return found


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
