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

Design notes: this module resolves what Python owns (the inputs and their formats, the encoding)
and turns Rust's typed results into :class:`TokenizeStats` / :class:`CountStats`; the Rust core
checks the output path and the shard settings (it writes the files) and does the work with the
GIL released. Writing costs ~6% CPU over counting alone (stdlib sources, one thread: 0.89 vs
0.84 CPU-s for 31.5 MB).

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
    "ShardInfo",
    "ShardManifest",
    "ShardWriter",
    "Terminated",
    "TokenizeStats",
    "check_encoding",
    "count_tokens_in_files",
    "index_path",
    "input_format",
    "kept_text_bytes",
    "manifest_path",
    "open_shard_writer",
    "read_sidecar",
    "resolve_inputs",
    "sidecar_path",
    "tokenize_files",
]

Inputs = Union[PathLike, Iterable[PathLike]]

#: Writes whole documents into numbered shards and a manifest (see :func:`open_shard_writer`).
ShardWriter = _fastllm.ShardWriter
#: One complete shard: ``path``, ``index_path``, ``split``, ``tokens``, ``documents``, ``bytes``,
#: ``sha256``.
ShardInfo = _fastllm.ShardInfo
#: A complete sharded output: ``path`` (the manifest), ``layout``, ``dtype``, ``token_count``,
#: ``document_count``, ``shards``, ``json`` (the manifest's text).
ShardManifest = _fastllm.ShardManifest
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
    manifest = os.path.abspath(manifest_path(out))
    names |= {manifest, manifest[: -len(".json")] + ".partial.json"}
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


EncodingLike = Union[str, "os.PathLike[str]", Encoding]


_ENCODERS: weakref.WeakKeyDictionary[Encoding, _fastllm.CorpusEncoder] = (
    weakref.WeakKeyDictionary()
)
_ENCODERS_LOCK = threading.Lock()


def _corpus_encoder(encoding: EncodingLike) -> _fastllm.CorpusEncoder:
    """The Rust encoder for corpus runs: it shares the ``Encoding``'s Rust core (no copy, no
    second parse). A bundled encoding's checksum was verified when it was loaded, so it is
    passed on; any other's is computed in Rust from its ranks. A name or a path is loaded with
    :func:`fastllm.load_encoding` (a bundled name, or a vocabulary with its sidecar)."""
    enc = encoding if isinstance(encoding, Encoding) else load_encoding(encoding)
    with _ENCODERS_LOCK:
        core = _ENCODERS.get(enc)
        if core is None:
            spec = BUNDLED.get(enc.name)
            bundled = spec is not None and enc is ENCODINGS.get(enc.name)
            core = _fastllm.CorpusEncoder.from_core(
                enc._core_bpe, enc.name, spec.sha256 if bundled and spec else None
            )
            _ENCODERS[enc] = core
    return core


def manifest_path(out: PathLike) -> Path:
    """The manifest of the sharded output ``out`` (``DIR/NAME.manifest.json``).

    >>> manifest_path("data/fineweb.bin").as_posix()
    'data/fineweb.manifest.json'
    """
    path = Path(os.fspath(out))
    stem = path.stem if path.suffix and path.stem else path.name
    return path.with_name(stem + ".manifest.json")


def open_shard_writer(
    out: PathLike,
    *,
    encoding: str | Encoding = "gpt2",
    layout: str = "flat",
    shard_tokens: int | None = None,
    val_tokens: int | None = None,
    eot: bool = True,
) -> _fastllm.ShardWriter:
    """A writer of whole documents into numbered shards, as ``tokenize_files`` writes them.

    The shards of ``DIR/NAME.bin`` are ``DIR/NAME_val_000000.bin`` (with ``val_tokens``: the
    first shard, of at most that many tokens, is the validation shard, as llm.c does) then
    ``DIR/NAME_train_00000k.bin`` of at most ``shard_tokens`` tokens each; a document is not
    split across shards unless it is longer than one. ``layout="llmc"`` gives each shard llm.c's
    256-int32 header (magic 20240520, version 1, token count; uint16 tokens; 20240801, version 7
    and uint32 tokens for vocabularies over 65,535). Each shard appears under its final name only
    when complete, with its index ``SHARD.idx``; :meth:`ShardWriter.finish` writes the manifest
    ``DIR/NAME.manifest.json`` (shards in order, token and document counts, sha256, the
    vocabulary's identity) and returns it as a :data:`ShardManifest`.

    ``writer.write(tokens, doc_offsets)`` appends whole documents: a ``uint32`` array and
    ``int64`` offsets (``len(documents) + 1`` of them, from 0 to ``len(tokens)``: what
    :meth:`fastllm.Encoding.encode_ordinary_arrow` returns); with ``eot`` the end-of-text token
    is appended to each document. Feeding it the documents of ``tokenize_files``'s inputs in the
    same order gives the same bytes.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from fastllm import get_encoding
    >>> enc = get_encoding("gpt2")
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> writer = open_shard_writer(folder / "corpus.bin", shard_tokens=4, layout="llmc")
    >>> # Each document gets <|endoftext|>: 3, 2 and 3 tokens; 3 + 2 > 4 starts a new shard.
    >>> docs = [enc.encode_ordinary(t) for t in ["Hello world", "one", "two three"]]
    >>> tokens = np.array([t for d in docs for t in d], dtype=np.uint32)
    >>> offsets = np.cumsum([0] + [len(d) for d in docs], dtype=np.int64)
    >>> writer.write(tokens, offsets)
    >>> manifest = writer.finish()
    >>> [(pathlib.Path(s.path).name, s.tokens)
    ...  for s in manifest.shards]  # doctest: +NORMALIZE_WHITESPACE
    [('corpus_train_000000.bin', 3), ('corpus_train_000001.bin', 2),
     ('corpus_train_000002.bin', 3)]
    >>> manifest.token_count, pathlib.Path(manifest.path).name
    (8, 'corpus.manifest.json')
    """
    # The layout, the sizes and the output path are checked in Rust, which writes the files.
    return _fastllm.ShardWriter(
        _corpus_encoder(encoding),
        os.fspath(out),
        layout=layout,
        shard_tokens=shard_tokens,
        val_tokens=val_tokens,
        eot=bool(eot),
    )


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
    >>> print(stats.summary())  # doctest: +NORMALIZE_WHITESPACE
    wrote t.bin: 10 tokens (uint16, gpt2) from 2 documents in 2 files, 40 B of text in 0.50 s
    (80 B/s)
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
    #: Text bytes (decompressed) done by the earlier run this one resumed.
    resumed_text_bytes: int = 0
    up_to_date: bool = False
    #: Why earlier work could not be reused, when there was some.
    note: str | None = None
    sidecar: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The shard files in order, for a sharded output (``path`` is then its manifest).
    shards: tuple[Path, ...] = ()

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
        """Text bytes (decompressed) encoded by this run per second."""
        done = self.text_bytes - self.resumed_text_bytes
        return done / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: what was written, how much, how fast; replacements and resume if any.

        >>> print(TokenizeStats(path=Path("t.bin"), encoding="gpt2", dtype="uint16", tokens=1,
        ...     documents=1, files=1, input_bytes=5, text_bytes=5, replaced=0, seconds=1.0,
        ...     resumed=True).summary())  # doctest: +NORMALIZE_WHITESPACE
        wrote t.bin: 1 token (uint16, gpt2) from 1 document in 1 file, 5 B of text in 1.00 s
        (5 B/s)
        """
        what = (
            f"{_plural(self.tokens, 'token')} ({self.dtype}, {self.encoding}) from "
            f"{_plural(self.documents, 'document')} in {_plural(self.files, 'file')}, "
            f"{_size(self.text_bytes)} of text"
        )
        if self.shards:
            what += f" in {_plural(len(self.shards), 'shard')}"
        if self.up_to_date:
            return f"{self.path} is up to date: {what} (same inputs, encoding and settings)"
        line = (
            f"wrote {self.path}: {what} in {self.seconds:.2f} s ({_size(self.bytes_per_second)}/s)"
        )
        if self.resumed and self.resumed_text_bytes:
            line += f"; resumed after {_size(self.resumed_text_bytes)} of text done earlier"
        if self.replaced:
            line += f"; {self.replaced:,} invalid UTF-8 sequences replaced by U+FFFD"
        return line


def _plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``.

    >>> _plural(1, "file"), _plural(1000, "token")
    ('1 file', '1,000 tokens')
    """
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def kept_text_bytes(out: PathLike) -> int | None:
    """Text bytes a stopped run of ``out`` kept (what a rerun resumes after), or None.

    >>> kept_text_bytes("no/such/tokens.bin") is None
    True
    """
    for journal in (Path(os.fspath(out) + ".partial.json"), manifest_path(out).with_name(
        manifest_path(out).name.replace(".manifest.json", ".manifest.partial.json"))):
        try:
            meta = json.loads(journal.read_text(encoding="utf-8"))
            return int(meta["counts"]["text_bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


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
    layout: str = "flat",
    shard_tokens: int | None = None,
    val_tokens: int | None = None,
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
    - ``shard_tokens``, ``val_tokens``, ``layout``: write numbered shards and a manifest
      instead of one token file (see :func:`open_shard_writer` for the names and layouts);
      ``stats.shards`` lists them and ``stats.path`` is the manifest. Resume works per shard.

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
    # Checked in Rust (which writes the output): the output path (its directory, not a
    # directory or device, not one of the inputs), the shard settings, ``errors``. Here: what
    # Python resolves (the inputs, ``format``, the encoding) and ``num_threads``.
    out_path = Path(os.fspath(out))
    own = _own_files(out)
    if out_path.is_file() and not sidecar_path(out_path).exists():
        own.discard(os.path.abspath(out_path))  # not an earlier output of ours: maybe an input
    files, formats = _prepare(inputs, format, num_threads, exclude=own)
    core = _corpus_encoder(encoding)
    with _sigterm_stops_the_run():
        result = _fastllm.tokenize_files(
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
            layout=layout,
            shard_tokens=shard_tokens,
            val_tokens=val_tokens,
        )
    return TokenizeStats(
        path=Path(result.path),
        encoding=result.encoding,
        dtype=result.dtype,
        tokens=result.tokens,
        documents=result.documents,
        files=result.files,
        input_bytes=result.input_bytes,
        text_bytes=result.text_bytes,
        replaced=result.replaced,
        seconds=result.seconds,
        resumed=result.resumed,
        resumed_bytes=result.resumed_bytes,
        resumed_text_bytes=result.resumed_text_bytes,
        up_to_date=result.up_to_date,
        note=result.note,
        sidecar=result.sidecar,
        shards=tuple(Path(p) for p in result.shards),
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
        result = _fastllm.count_files(
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
    return CountStats(
        files=[
            FileCount(
                path=Path(path),
                format=fmt,
                bytes=nbytes,
                text_bytes=text_bytes,
                documents=documents,
                tokens=tokens,
            )
            for path, fmt, nbytes, text_bytes, documents, tokens in result.files
        ],
        encoding=result.encoding,
        tokens=result.tokens,
        documents=result.documents,
        input_bytes=result.input_bytes,
        text_bytes=result.text_bytes,
        replaced=result.replaced,
        seconds=result.seconds,
        eot=bool(eot),
    )
