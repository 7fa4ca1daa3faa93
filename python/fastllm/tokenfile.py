"""Tokenize large corpora into memory-mapped token files, or count their tokens (Rust, all cores).

:func:`tokenize_files` reads text and JSONL files (plain, ``.gz`` or ``.zst``; directories are
recursed and glob patterns expanded), encodes every document on all cores with the GIL released,
and writes, in input order:

- ``OUT``: the tokens of each document followed by ``<|endoftext|>``, flat, ``uint16`` when the
  vocabulary fits (GPT-2) else ``uint32``, little-endian: ``np.memmap(OUT, dtype)`` reads it;
- ``OUT.idx``: ``uint64`` token offsets where each document starts, then the token count;
- ``OUT.json``: the sidecar: encoding name and vocabulary checksum, dtype, token and document
  counts, the inputs with their sizes and counts (:func:`read_sidecar` reads it).

Work in progress lives in ``OUT.partial``, ``OUT.idx.partial`` and the journal
``OUT.partial.json`` (checkpointed every few seconds); only a complete run renames them and
writes ``OUT.json``, last. A rerun of a stopped run (Ctrl-C, SIGTERM, a bad input, a full disk,
even SIGKILL) reuses the work up to its last checkpoint when the encoding, settings and the inputs
read so far are unchanged, and says why when it cannot; a rerun of a complete one does nothing.

:func:`count_tokens_in_files` counts tokens per file and in total without writing anything.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "a.txt").write_text("Hello, world!")
>>> _ = (folder / "b.jsonl").write_text('{"text": "one"}\\n{"text": "two"}\\n')
>>> stats = tokenize_files(folder, folder / "tokens.bin")
>>> stats.tokens, stats.documents, stats.dtype
(9, 3, 'uint16')
>>> import numpy as np
>>> np.memmap(folder / "tokens.bin", dtype=np.uint16, mode="r").tolist()
[15496, 11, 995, 0, 50256, 505, 50256, 11545, 50256]
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from fastllm import _fastllm
from fastllm._inputs import (
    PathLike,
    check_format,
    format_of,
    input_format,
    resolve,
    resolve_inputs,
)
from fastllm.encoding import Encoding
from fastllm.registry import BUNDLED, ENCODINGS, load_encoding

__all__ = [
    "CountStats",
    "FileCount",
    "Terminated",
    "TokenizeStats",
    "check_encoding",
    "count_tokens_in_files",
    "index_path",
    "input_format",
    "read_sidecar",
    "resolve_inputs",
    "sidecar_path",
    "tokenize_files",
]

Inputs = Union[PathLike, Iterable[PathLike]]
#: ``progress(bytes_done, bytes_total, tokens, documents)``, called about every 100 ms.
Progress = Callable[[int, int, int, int], object]

#: Input bytes per encoder job (the Rust default; tests pass smaller ones).
_JOB_BYTES = 1 << 20


class Terminated(KeyboardInterrupt):
    """Raised instead of ``KeyboardInterrupt`` when SIGTERM stops a run.

    >>> issubclass(Terminated, KeyboardInterrupt)
    True
    """


def sidecar_path(out: PathLike) -> Path:
    """The JSON sidecar of the token file ``out``.

    >>> sidecar_path("data/train.bin").as_posix()
    'data/train.bin.json'
    """
    return Path(os.fspath(out) + ".json")


def index_path(out: PathLike) -> Path:
    """The document index (``uint64`` token offsets) of the token file ``out``.

    >>> index_path("data/train.bin").as_posix()
    'data/train.bin.idx'
    """
    return Path(os.fspath(out) + ".idx")


def _own_files(out: PathLike) -> set[str]:
    base = os.path.abspath(os.fspath(out))
    names = {base + s for s in ("", ".idx", ".json", ".partial", ".idx.partial", ".partial.json")}
    return names | {name + ".tmp" for name in names}


def read_sidecar(out: PathLike) -> dict[str, Any]:
    """The sidecar of a complete token file written by :func:`tokenize_files`.

    ``FileNotFoundError`` when there is none (the run did not complete, or another program wrote
    the file).

    >>> read_sidecar("no/such/tokens.bin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] no/such/tokens.bin.json not found: ...
    """
    path = sidecar_path(out)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        partial = Path(os.fspath(out) + ".partial")
        why = (
            f"{partial} exists: the run was stopped; rerun it to resume"
            if partial.exists()
            else "is this a token file written by fastllm tokenize?"
        )
        raise FileNotFoundError(errno.ENOENT, f"{path} not found: {why}", str(path)) from None
    meta: dict[str, Any] = json.loads(text)
    if meta.get("kind") != "fastllm-token-file":
        raise ValueError(f"{path} is not a fastllm token file sidecar")
    return meta


def check_encoding(out: PathLike, encoding: EncodingLike) -> dict[str, Any]:
    """Checks that the token file ``out`` was written with ``encoding``: the same ranks (their
    sha256), pre-tokenizer pattern and special tokens, as its sidecar records them (the name
    may differ: ``gpt2`` and ``r50k_base`` are one vocabulary). Returns the sidecar.

    Run it before training on a dataset, with the encoding the model is trained with: token ids
    of another vocabulary would be read silently. ``ValueError`` says what differs.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("Hello, world!")
    >>> _ = tokenize_files(folder / "a.txt", folder / "a.bin", encoding="gpt2")
    >>> check_encoding(folder / "a.bin", "r50k_base")["encoding"]["name"]
    'gpt2'
    >>> check_encoding(folder / "a.bin", "cl100k_base")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...a.bin was tokenized with 'gpt2', not with 'cl100k_base': the ranks differ ...
    """
    meta = read_sidecar(out)
    recorded: dict[str, Any] = meta.get("encoding", {})
    enc = encoding if isinstance(encoding, Encoding) else load_encoding(encoding)
    core = _corpus_encoder(enc)
    differences = []
    if recorded.get("vocab_sha256") != core.vocab_sha256:
        differences.append(
            f"the ranks differ (sha256 {str(recorded.get('vocab_sha256'))[:16]}... recorded, "
            f"{core.vocab_sha256[:16]}... given)"
        )
    if recorded.get("pattern") != enc._pat_str:
        differences.append("the pre-tokenizer patterns differ")
    if recorded.get("special_tokens") != enc._special_tokens:
        differences.append("the special tokens differ")
    if differences:
        raise ValueError(
            f"{os.fspath(out)} was tokenized with {recorded.get('name')!r}, not with "
            f"{enc.name!r}: {'; '.join(differences)}. Tokenize the corpus again with this "
            "encoding, or use the encoding it was tokenized with"
        )
    return meta


_ENCODERS: weakref.WeakKeyDictionary[Encoding, _fastllm.CorpusEncoder] = weakref.WeakKeyDictionary()
_BUNDLED_ENCODERS: dict[str, _fastllm.CorpusEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


EncodingLike = Union[str, "os.PathLike[str]", Encoding]


def _corpus_encoder(encoding: EncodingLike) -> _fastllm.CorpusEncoder:
    """The Rust encoder for corpus runs, built once per encoding (~0.1 s); a bundled one straight
    from its file (checksum verified), without a Python ``Encoding``; a path through
    :func:`fastllm.load_encoding` (a vocabulary with its sidecar)."""
    if isinstance(encoding, Encoding) and encoding is ENCODINGS.get(encoding.name):
        encoding = encoding.name  # a bundled one: by name, from its file
    if isinstance(encoding, str) and encoding in BUNDLED:
        spec = BUNDLED[encoding]
        with _ENCODERS_LOCK:
            core = _BUNDLED_ENCODERS.get(encoding)
            if core is None:
                data = _fastllm.read_vocab_file(spec.path, spec.sha256)
                core = _fastllm.CorpusEncoder(encoding, data, spec.special_tokens, spec.pattern)
                _BUNDLED_ENCODERS[encoding] = core
        return core
    if not isinstance(encoding, Encoding):
        encoding = load_encoding(encoding)
    with _ENCODERS_LOCK:
        core = _ENCODERS.get(encoding)
        if core is None:
            core = _fastllm.CorpusEncoder(
                encoding.name,
                encoding._core_bpe.tiktoken_bytes(),
                encoding._special_tokens,
                encoding._pat_str,
            )
            _ENCODERS[encoding] = core
    return core


@contextlib.contextmanager
def _sigterm_stops_the_run() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises :class:`Terminated` (when SIGTERM
    still has its default action), so the run stops cleanly and stays resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_threads(num_threads: int) -> int:
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(
            f"num_threads must be an integer >= 0 (0 = all cores), got {num_threads!r}"
        )
    return num_threads


@dataclass(frozen=True)
class TokenizeStats:
    """What :func:`tokenize_files` wrote (or found up to date).

    >>> stats = TokenizeStats(path=Path("t.bin"), encoding="gpt2", dtype="uint16", tokens=10,
    ...     documents=2, files=2, input_bytes=40, text_bytes=40, replaced=0, seconds=0.5)
    >>> stats.summary()
    'wrote t.bin: 10 tokens (uint16, gpt2) from 2 documents in 2 files, 40 B in 0.50 s (80 B/s)'
    """

    path: Path
    encoding: str
    dtype: str
    tokens: int
    documents: int
    files: int
    input_bytes: int
    text_bytes: int
    #: Invalid UTF-8 sequences read as U+FFFD (``errors="replace"``).
    replaced: int
    seconds: float
    resumed: bool = False
    #: Input bytes done by the earlier run this one resumed.
    resumed_bytes: int = 0
    up_to_date: bool = False
    #: Why earlier work could not be reused, when there was some.
    note: str | None = None
    sidecar: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def index_path(self) -> Path:
        """The document index next to the token file."""
        return index_path(self.path)

    @property
    def sidecar_path(self) -> Path:
        """The JSON sidecar next to the token file."""
        return sidecar_path(self.path)

    @property
    def bytes_per_second(self) -> float:
        """Input bytes processed by this run per second."""
        done = self.input_bytes - self.resumed_bytes
        return done / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: what was written, how much, how fast; replacements and resume if any."""
        what = (
            f"{self.tokens:,} tokens ({self.dtype}, {self.encoding}) from {self.documents:,} "
            f"documents in {self.files:,} files, {_size(self.input_bytes)}"
        )
        if self.up_to_date:
            return f"{self.path} is up to date: {what} (same inputs, encoding and settings)"
        line = (
            f"wrote {self.path}: {what} in {self.seconds:.2f} s ({_size(self.bytes_per_second)}/s)"
        )
        if self.resumed:
            line += f"; resumed after {_size(self.resumed_bytes)} done earlier"
        if self.replaced:
            line += f"; {self.replaced:,} invalid UTF-8 sequences replaced by U+FFFD"
        return line


@dataclass(frozen=True)
class FileCount:
    """Tokens and documents of one input file (see :func:`count_tokens_in_files`).

    >>> FileCount(Path("a.txt"), "text", bytes=13, text_bytes=13, documents=1, tokens=5).tokens
    5
    """

    path: Path
    format: str
    bytes: int
    text_bytes: int
    documents: int
    tokens: int


@dataclass(frozen=True)
class CountStats:
    """Token counts per file and in total (see :func:`count_tokens_in_files`).

    >>> stats = CountStats(files=[], encoding="gpt2", tokens=0, documents=0, input_bytes=0,
    ...     text_bytes=0, replaced=0, seconds=0.0, eot=True)
    >>> stats.tokens
    0
    """

    files: list[FileCount]
    encoding: str
    tokens: int
    documents: int
    input_bytes: int
    text_bytes: int
    replaced: int
    seconds: float
    #: Whether the counts include one end-of-text token per document.
    eot: bool


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def _prepare(
    inputs: Inputs, format: str, num_threads: int, exclude: Iterable[PathLike] = ()
) -> tuple[list[str], list[str]]:
    # Checked here: the format ("auto" is resolved here, per file) and num_threads (Rust's
    # OverflowError for -1 says less). ``errors`` is checked by Rust, with the same message.
    check_format(format)
    _check_threads(num_threads)
    files = resolve(inputs, exclude)
    if format != "auto":
        return files, [format] * len(files)
    return files, [format_of(f) for f in files]


def tokenize_files(
    inputs: Inputs,
    out: PathLike,
    *,
    encoding: EncodingLike = "gpt2",
    format: str = "auto",
    field: str = "text",
    eot: bool = True,
    errors: str = "strict",
    num_threads: int = 0,
    resume: bool = True,
    progress: Progress | None = None,
    checkpoint_interval: float = 5.0,
) -> TokenizeStats:
    """Tokenizes files into the token file ``out`` (plus ``out.idx`` and ``out.json``).

    - ``inputs``: a file, directory or glob pattern, or a list of them (see
      :func:`resolve_inputs`); ``.gz`` and ``.zst`` files are decompressed on the fly.
    - ``encoding``: a bundled encoding's name, any :class:`fastllm.Encoding`, or the path of a
      vocabulary saved by :func:`fastllm.train_bpe` / :meth:`fastllm.Encoding.save` (for a
      ``.tiktoken`` file without sidecar, pass ``fastllm.load_encoding(path, pat_str=...)``).
      The sidecar records which vocabulary it was; :func:`check_encoding` checks a token file
      against an encoding.
    - ``format``: ``"text"`` (a file is one document), ``"jsonl"`` (each line is a JSON object
      whose ``field`` is one document; blank lines are skipped) or ``"auto"`` (``*.jsonl`` and
      ``*.ndjson`` are JSONL, other files text).
    - ``eot``: append ``<|endoftext|>`` after each document.
    - ``errors``: ``"strict"`` stops at invalid UTF-8 with ``ValueError`` naming the file and byte
      offset; ``"replace"`` reads it as U+FFFD, counted in ``stats.replaced``.
    - ``num_threads``: encoder threads (0: all cores, see :func:`fastllm.set_num_threads`).
    - ``resume``: reuse earlier work (a complete output of the same inputs, or a stopped run's
      partial output); ``False`` starts over.
    - ``progress``: ``progress(bytes_done, bytes_total, tokens, documents)``, about every 100 ms.
    - ``checkpoint_interval``: seconds between checkpoints of the partial output.

    Text is taken byte for byte (no newline translation; a BOM stays U+FEFF), and the tokens are
    ``encode_ordinary`` of each document, exactly. Errors: ``FileNotFoundError`` for a missing
    input or output directory, ``ValueError`` for bad text or JSONL (file and byte offset or line
    number) and bad arguments, ``OSError`` for read and write failures (a full disk included),
    ``KeyboardInterrupt`` on Ctrl-C and :class:`Terminated` on SIGTERM; in every case the work
    done so far stays resumable and ``out`` is not created.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "doc.txt").write_text("It's a test.")
    >>> stats = tokenize_files(folder / "doc.txt", folder / "doc.bin")
    >>> stats.tokens, stats.dtype, stats.path.name
    (6, 'uint16', 'doc.bin')
    >>> tokenize_files(folder / "doc.txt", folder / "doc.bin").up_to_date
    True
    """
    out_path = Path(os.fspath(out))
    if out_path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "the output is a directory; name a file", str(out))
    parent = out_path.parent
    if not parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT,
            f"the output directory {os.fspath(parent)!r} does not exist; create it first",
            str(out),
        )
    files, formats = _prepare(inputs, format, num_threads, exclude=_own_files(out))
    core = _corpus_encoder(encoding)
    with _sigterm_stops_the_run():
        text = _fastllm.tokenize_files(
            core,
            files,
            formats,
            str(out_path),
            field=field,
            eot=bool(eot),
            errors=errors,
            num_threads=num_threads,
            resume=bool(resume),
            checkpoint_interval=float(checkpoint_interval),
            job_bytes=_JOB_BYTES,
            progress=progress,
        )
    meta = json.loads(text)
    run = meta.pop("run", {})
    return TokenizeStats(
        path=out_path,
        encoding=meta["encoding"]["name"],
        dtype=meta["dtype"],
        tokens=meta["token_count"],
        documents=meta["document_count"],
        files=len(meta["inputs"]),
        input_bytes=meta["input_bytes"],
        text_bytes=meta["text_bytes"],
        replaced=meta["replaced_invalid_utf8"],
        seconds=run.get("seconds", 0.0),
        resumed=bool(run.get("resumed", False)),
        resumed_bytes=int(run.get("resumed_bytes", 0)),
        up_to_date=bool(run.get("up_to_date", False)),
        note=run.get("note"),
        sidecar=meta,
    )


def count_tokens_in_files(
    inputs: Inputs,
    *,
    encoding: EncodingLike = "gpt2",
    format: str = "auto",
    field: str = "text",
    eot: bool = True,
    errors: str = "strict",
    num_threads: int = 0,
    progress: Progress | None = None,
) -> CountStats:
    """Counts tokens per file and in total, as :func:`tokenize_files` would write them.

    Same inputs and arguments as :func:`tokenize_files`; nothing is written. With ``eot=True``
    (the default) every document counts one end-of-text token, so ``stats.tokens`` is the length
    of the token file ``tokenize_files`` would write.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("Hello, world!")
    >>> stats = count_tokens_in_files(folder, eot=False)
    >>> stats.tokens, [(f.path.name, f.tokens) for f in stats.files]
    (4, [('a.txt', 4)])
    """
    files, formats = _prepare(inputs, format, num_threads)
    core = _corpus_encoder(encoding)
    with _sigterm_stops_the_run():
        text = _fastllm.count_files(
            core,
            files,
            formats,
            field=field,
            eot=bool(eot),
            errors=errors,
            num_threads=num_threads,
            job_bytes=_JOB_BYTES,
            progress=progress,
        )
    meta = json.loads(text)
    counts = [
        FileCount(
            path=Path(item["path"]),
            format=item["format"],
            bytes=item["bytes"],
            text_bytes=item["text_bytes"],
            documents=item["documents"],
            tokens=item["tokens"],
        )
        for item in meta["inputs"]
    ]
    return CountStats(
        files=counts,
        encoding=meta["encoding"]["name"],
        tokens=meta["token_count"],
        documents=meta["document_count"],
        input_bytes=meta["input_bytes"],
        text_bytes=meta["text_bytes"],
        replaced=meta["replaced_invalid_utf8"],
        seconds=meta["seconds"],
        eot=bool(eot),
    )
