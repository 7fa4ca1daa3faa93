"""What every ``fastllm`` command shares: the arguments declared once, the inputs, the errors,
and the one progress bar (a line redrawn on stderr, closed on any exit by :func:`progress_bar`).

Files come from THE input walker, :mod:`fastllm._inputs` (one skip rule:
hidden names, ``__pycache__`` and binary files below a directory), for ``tokenize``, ``count``
and ``train-bpe`` alike.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from fastllm import samples
from fastllm._inputs import PathLike, Resolved, resolve_inputs, resolve_report
from fastllm._pretok import PATTERN_NAMES
from fastllm.encoding import Encoding
from fastllm.registry import list_encoding_names, load_encoding

#: ``progress(bytes_done, bytes_total, tokens, documents)`` of tokenize_files and count.
TokensProgress = Callable[[int, int, int, int], None]

__all__ = [
    "ProgressBar",
    "TerminalLine",
    "add_corpus_arguments",
    "add_corpus_command",
    "add_encoding",
    "add_quiet",
    "add_threads",
    "bar",
    "bytes_bar",
    "corpus_inputs",
    "corpus_progress",
    "corpus_settings",
    "encoding_from_args",
    "fail",
    "input_files",
    "input_report",
    "progress_bar",
    "special_token",
    "split_stdin",
    "tokens_progress",
]


# ---- arguments ----


def add_encoding(parser: argparse.ArgumentParser) -> None:
    """``--encoding NAME_OR_FILE`` (default: gpt2), with ``--pattern`` and ``--special`` for a
    ``.tiktoken`` file without sidecar; :func:`encoding_from_args` reads them."""
    parser.add_argument(
        "--encoding",
        default="gpt2",
        metavar="NAME_OR_FILE",
        help=f"a bundled encoding ({', '.join(list_encoding_names())}; default: gpt2), or a "
        "vocabulary file: one saved by train-bpe (its .json sidecar gives the pattern and the "
        "special tokens), or a .tiktoken file with --pattern and --special",
    )
    parser.add_argument(
        "--pattern",
        metavar="NAME_OR_REGEX",
        help="the pre-tokenizer of a .tiktoken file without sidecar: a pattern name ("
        f"{', '.join(sorted(PATTERN_NAMES))}) or a regex",
    )
    parser.add_argument(
        "--special",
        action="append",
        type=special_token,
        metavar="NAME=ID",
        help="a special token of a .tiktoken file without sidecar, e.g. "
        "--special '<|endoftext|>=50256' (repeatable; ids must not be ranks of the file)",
    )


def special_token(text: str) -> tuple[str, int]:
    """Parses ``--special NAME=ID`` (the last ``=`` separates the id).

    >>> special_token("<|endoftext|>=50256")
    ('<|endoftext|>', 50256)
    >>> special_token("eot")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected NAME=ID (e.g. '<|endoftext|>=50256'), got 'eot'
    """
    name, sep, number = text.rpartition("=")
    if not sep or not name or not number.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"expected NAME=ID (e.g. '<|endoftext|>=50256'), got {text!r}"
        )
    return name, int(number)


def encoding_from_args(args: argparse.Namespace) -> str | Encoding:
    """The encoding ``--encoding``, ``--pattern`` and ``--special`` name: a bundled name as is,
    anything else loaded by :func:`fastllm.load_encoding` (``ValueError``/``OSError`` naming the
    file and what to do when it cannot be).

    >>> from fastllm.cli import build_parser
    >>> encoding_from_args(build_parser().parse_args(["count", "--encoding", "o200k_base"]))
    'o200k_base'
    """
    specials: dict[str, int] = {}
    for name, token in args.special or []:
        if name in specials and specials[name] != token:
            raise ValueError(
                f"--special {name}: given twice, with ids {specials[name]} and {token}"
            )
        specials[name] = token
    if args.encoding in list_encoding_names() and args.pattern is None and not specials:
        return str(args.encoding)
    if args.encoding in list_encoding_names():
        raise ValueError(
            f"--pattern and --special are for a .tiktoken file; the bundled encoding "
            f"{args.encoding} has its own pattern and special tokens"
        )
    return load_encoding(args.encoding, pat_str=args.pattern, special_tokens=specials or None)


def add_threads(parser: argparse.ArgumentParser, what: str) -> None:
    """``--threads N``: ``what`` threads, 0 (the default) for all cores."""
    parser.add_argument(
        "--threads", type=int, default=0, help=f"{what} threads (default: all cores)"
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q``/``--quiet``: print nothing but errors (and draw no progress bar)."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (no progress bar)"
    )


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``tokenize`` and ``count``: the inputs and how documents are read, and
    ``--encoding``, ``--threads``, ``--quiet``."""
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, directories (recursed) or glob patterns; .gz and .zst are read "
        "transparently, *.parquet as Parquet (default: this Python's standard library sources)",
    )
    add_encoding(parser)
    add_threads(parser, "encoder")
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "text", "jsonl", "parquet"],
        help="text: a file is a document; jsonl: each line's --field is one; parquet: each row "
        "of the --field column is one; auto (default): *.parquet is Parquet, *.jsonl and "
        "*.ndjson are JSONL, other files text",
    )
    parser.add_argument(
        "--field",
        default="text",
        help="the JSONL field or Parquet column holding the text (default: text)",
    )
    parser.add_argument(
        "--eot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end every document with <|endoftext|> (default: yes)",
    )
    parser.add_argument(
        "--errors",
        choices=["strict", "replace"],
        default=None,
        help="invalid UTF-8: strict stops with the file and byte offset (default), replace reads "
        "it as U+FFFD and counts it (default for the default corpus)",
    )
    add_quiet(parser)


def add_corpus_command(
    subparsers: Any, name: str, *, help: str, description: str
) -> argparse.ArgumentParser:
    """Registers the corpus command ``name`` (``tokenize``, ``count``) on ``subparsers`` with
    :func:`add_corpus_arguments`; returns its parser for the command's own arguments."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description
    )
    add_corpus_arguments(parser)
    return parser


def corpus_settings(args: argparse.Namespace, errors: str) -> dict[str, Any]:
    """The keyword arguments of :func:`fastllm.tokenize_files` and
    :func:`fastllm.count_tokens_in_files` that :func:`add_corpus_arguments` gives, with the
    ``errors`` mode of :func:`corpus_inputs`.

    >>> from fastllm.cli import build_parser
    >>> corpus_settings(build_parser().parse_args(["count", "--no-eot"]), "strict")["eot"]
    False
    """
    return {
        "encoding": encoding_from_args(args),
        "format": args.format,
        "field": args.field,
        "eot": args.eot,
        "errors": errors,
        "num_threads": args.threads,
    }


# ---- inputs and errors ----


def corpus_inputs(
    args: argparse.Namespace, exclude: Iterable[PathLike] = ()
) -> tuple[list[Any], str, str]:
    """The input files of ``tokenize``/``count`` (by THE walker, without ``exclude``), how to
    describe them (with what the walker skipped: binary files, FIFOs/devices/sockets), and the
    errors mode. ``--errors replace`` applies to text files only: binary files stay skipped.

    With no INPUT: this Python's standard library sources, read with ``errors="replace"`` (a few
    of those files are not UTF-8 on purpose).
    """
    if args.inputs:
        shown = ", ".join(args.inputs[:3])
        if len(args.inputs) > 3:
            shown += f" and {len(args.inputs) - 3:,} more"
        prog = f"fastllm {getattr(args, 'command', None) or 'tokenize'}"
        try:
            found = resolve_report(list(args.inputs), exclude)
        except (OSError, ValueError) as error:
            raise fail(prog, error) from None
        if found.skipped():
            shown += f"; {found.skipped()}"
        return list(found.files), shown, args.errors or "strict"
    files = samples.stdlib_files()
    return files, f"Python's standard library ({samples.stdlib_dir()})", args.errors or "replace"


def split_stdin(names: list[str]) -> tuple[list[str], bool]:
    """The names without ``-``, and whether ``-`` (stdin) was among them.

    >>> split_stdin(["a.txt", "-", "dir/"])
    (['a.txt', 'dir/'], True)
    """
    return [n for n in names if n != "-"], "-" in names


def input_files(names: list[str]) -> list[Path]:
    """The files ``names`` (files, directories, glob patterns) stand for, by THE walker;
    ``[]`` for no names."""
    return resolve_inputs(names) if names else []


def input_report(names: list[str]) -> Resolved:
    """The files ``names`` stand for with what was skipped, by THE walker (nothing for no
    names)."""
    return resolve_report(names) if names else Resolved()


def fail(prog: str, error: BaseException) -> SystemExit:
    """The ``SystemExit`` (status 1) that reports ``error`` as ``PROG: error: ...``.

    >>> fail("fastllm count", FileNotFoundError(2, "no such input file or directory", "a.txt"))
    SystemExit('fastllm count: error: a.txt: no such input file or directory')
    """
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error)
    return SystemExit(f"{prog}: error: {message}")


# ---- the progress bar ----


class TerminalLine:
    """Redraws one line of ``stream`` in place (``\\r``) and ends it on :meth:`close`.

    >>> import io
    >>> stream = io.StringIO()
    >>> line = TerminalLine(stream)
    >>> line.show("a"); line.show("b"); line.close()
    >>> stream.getvalue()
    '\\ra\\rb\\n'
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False
        self._length = 0

    def show(self, text: str) -> None:
        """Draws ``text`` over the line, blanking what a longer earlier frame left.

        >>> import io
        >>> stream = io.StringIO()
        >>> line = TerminalLine(stream)
        >>> line.show("50%  ETA 0:01"); line.show("100%")
        >>> stream.getvalue().split("\\r")[-1]
        '100%         '
        """
        pad = " " * max(0, self._length - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._length = len(text)
        self.shown = True

    def close(self) -> None:
        """Ends the line (if anything was drawn)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def bar(fraction: float, width: int) -> str:
    """``[####------]`` for a fraction between 0 and 1.

    >>> bar(0.5, 10)
    '[#####-----]'
    """
    filled = int(width * min(max(fraction, 0.0), 1.0))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class ProgressBar:
    """``LABEL  42% [#####-----] 13.2/31.5 MB  NOTE  61.2 MB/s  ETA 0:03`` on one line.

    ``unit`` and ``scale`` say how amounts are shown: ``("MB", 1e6)`` gives ``13.2/31.5 MB`` and
    ``MB/s``; a scale of 1 gives counts (``4,096/8,191``, ``merges/s``). The rate is measured
    from the bar's creation, or from :meth:`count_from` (so work done earlier, e.g. by a run
    that is resumed, is not counted).

    >>> import io
    >>> stream = io.StringIO()
    >>> progress = ProgressBar(stream, "count", unit="MB", scale=1e6)
    >>> progress.update(500_000, 1_000_000, "  1,234 tokens")
    >>> "count  50%" in stream.getvalue() and "1,234 tokens" in stream.getvalue()
    True
    """

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        unit: str,
        scale: float = 1.0,
        width: int = 24,
        percent: bool = True,
    ) -> None:
        self.line = TerminalLine(stream)
        self.label = label
        self.unit = unit
        self.scale = scale
        self.width = width
        self.percent = percent
        self.start = (time.perf_counter(), 0)
        #: The last amount done (for messages after a stop).
        self.done = 0

    @property
    def shown(self) -> bool:
        return self.line.shown

    def _amount(self, value: float) -> str:
        return f"{value:,}" if self.scale == 1 else f"{value / self.scale:,.1f}"

    def count_from(self, done: int) -> None:
        """Measures the rate from now and ``done`` on."""
        self.start = (time.perf_counter(), done)

    def update(self, done: int, total: int, note: str = "") -> None:
        """Redraws the bar: ``done`` of ``total`` (then ``note``), the rate and the ETA."""
        now = time.perf_counter()
        then, first = self.start
        self.done = done
        fraction = min(done / total, 1.0) if total else 1.0
        speed = ""
        if now > then and done > first:
            rate = (done - first) / (now - then)
            shown = f"{rate:,.0f}" if self.scale == 1 else f"{rate / self.scale:,.1f}"
            speed = f"  {shown} {self.unit}/s"
            if done < total:
                seconds = int((total - done) / rate)
                speed += f"  ETA {seconds // 60}:{seconds % 60:02d}"
        unit = "" if self.scale == 1 else f" {self.unit}"
        percent = f" {fraction:4.0%}" if self.percent else ""
        self.line.show(
            f"{self.label}{percent} {bar(fraction, self.width)} {self._amount(done)}/"
            f"{self._amount(total)}{unit}{note}{speed}   "
        )

    def status(self, message: str) -> None:
        """A message on the bar's line, until the bar replaces it."""
        self.line.show(message)

    def close(self) -> None:
        """Ends the bar's line (if it was drawn)."""
        self.line.close()


def bytes_bar(label: str) -> Callable[[TextIO], ProgressBar]:
    """Makes the bar of ``tokenize`` and ``count``: input MB done, MB/s.

    >>> import io
    >>> bytes_bar("count")(io.StringIO()).unit
    'MB'
    """
    return functools.partial(ProgressBar, label=label, unit="MB", scale=1e6)


@contextlib.contextmanager
def progress_bar(
    quiet: bool, make: Callable[[TextIO], ProgressBar]
) -> Iterator[ProgressBar | None]:
    """``make(sys.stderr)`` when stderr is a terminal and not ``quiet`` (else ``None``), closed
    however the block ends: the one place a bar is closed.

    >>> with progress_bar(True, bytes_bar("count")) as progress:
    ...     progress is None
    True
    """
    progress = make(sys.stderr) if not quiet and sys.stderr.isatty() else None
    try:
        yield progress
    finally:
        if progress is not None:
            progress.close()


@contextlib.contextmanager
def corpus_progress(args: argparse.Namespace, label: str) -> Iterator[TokensProgress | None]:
    """The ``progress`` callback of a corpus run (``tokenize``, ``count``): the bytes bar
    ``label`` drawn by :func:`tokens_progress` unless ``--quiet`` (or stderr is no terminal),
    closed however the block ends.

    >>> import argparse
    >>> with corpus_progress(argparse.Namespace(quiet=True), "count") as progress:
    ...     progress is None
    True
    """
    with progress_bar(args.quiet, bytes_bar(label)) as bar:
        yield tokens_progress(bar)


def tokens_progress(progress: ProgressBar | None) -> TokensProgress | None:
    """The ``progress(bytes_done, bytes_total, tokens, documents)`` callback drawing ``progress``.

    >>> import io
    >>> progress = ProgressBar(io.StringIO(), "tokenize", unit="MB", scale=1e6)
    >>> tokens_progress(progress)(1_000_000, 2_000_000, 250_000, 10)
    >>> progress.line.stream.getvalue()
    '\\rtokenize  50% [############------------] 1.0/2.0 MB  250,000 tokens   '
    """
    if progress is None:
        return None
    first = True

    def draw(done: int, total: int, tokens: int, documents: int) -> None:
        nonlocal first
        if first:  # bytes a resumed run did earlier are not counted in the rate
            progress.count_from(done)
            first = False
        progress.update(done, total, f"  {tokens:,} tokens")

    return draw
