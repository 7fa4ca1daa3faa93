"""``fastllm tokenize`` and ``fastllm count``: corpus preprocessing from the command line.

``fastllm tokenize INPUT... -o OUT.bin`` writes a memory-mapped token file (see
:mod:`fastllm.tokenize`) with a progress bar on stderr when it is a terminal and a one-line
summary; ``fastllm count INPUT...`` prints the tokens per file and in total. With no INPUT both
read this Python's standard library sources (on every machine), with ``--errors replace`` as a few
of those files are not UTF-8 on purpose.

>>> from fastllm.cli import build_parser
>>> parser = build_parser()
>>> args = parser.parse_args(["tokenize", "data/", "-o", "train.bin", "--no-eot"])
>>> args.inputs, args.output, args.eot, args.encoding
(['data/'], 'train.bin', False, 'gpt2')
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from fastllm._progress import TerminalLine, bar

__all__ = ["ProgressBar", "add_corpus_parsers"]

DEFAULT_OUTPUT = "tokens.bin"


class ProgressBar:
    """``tokenize  42% [#####-----] 13.2/31.5 MB  6,012,345 tokens  61.2 MB/s  ETA 0:03`` on one
    line of ``stream``; a ``progress`` callback for :func:`fastllm.tokenize.tokenize_files`.

    >>> import io
    >>> stream = io.StringIO()
    >>> bar = ProgressBar(stream, "count")
    >>> bar(500_000, 1_000_000, 1234, 5)
    >>> "count  50%" in stream.getvalue() and "1,234 tokens" in stream.getvalue()
    True
    """

    def __init__(self, stream: TextIO, label: str = "tokenize") -> None:
        self.line = TerminalLine(stream)
        self.label = label
        self.start: tuple[float, int] | None = None
        self.done = 0

    @property
    def shown(self) -> bool:
        return self.line.shown

    def __call__(self, done: int, total: int, tokens: int, documents: int) -> None:
        now = time.perf_counter()
        if self.start is None:
            self.start = (now, done)
        then, first = self.start
        self.done = done
        fraction = min(done / total, 1.0) if total else 1.0
        speed = ""
        if now > then and done > first:  # from the first call: resumed work is not counted
            rate = (done - first) / (now - then)
            speed = f"  {rate / 1e6:,.1f} MB/s"
            if done < total:
                seconds = int((total - done) / rate)
                speed += f"  ETA {seconds // 60}:{seconds % 60:02d}"
        self.line.show(
            f"{self.label} {fraction:4.0%} {bar(fraction, 24)} {done / 1e6:,.1f}/"
            f"{total / 1e6:,.1f} MB  {tokens:,} tokens{speed}   "
        )

    def close(self) -> None:
        """Ends the bar's line (if it was drawn)."""
        self.line.close()


def _default_inputs(args: argparse.Namespace) -> tuple[list[Any], str, str]:
    """The inputs, how to describe them, and the errors mode (default corpus: replace)."""
    if args.inputs:
        shown = ", ".join(args.inputs[:3])
        if len(args.inputs) > 3:
            shown += f" and {len(args.inputs) - 3:,} more"
        return list(args.inputs), shown, args.errors or "strict"
    from fastllm import corpus

    files = corpus.stdlib_files()
    return files, f"Python's standard library ({corpus.stdlib_dir()})", args.errors or "replace"


def _add_common(parser: argparse.ArgumentParser) -> None:
    from fastllm.registry import list_encoding_names

    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, directories (recursed) or glob patterns; .gz and .zst are read "
        "transparently (default: this Python's standard library sources)",
    )
    parser.add_argument(
        "--encoding",
        default="gpt2",
        choices=list_encoding_names(),
        help="bundled encoding (default: gpt2)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="encoder threads (default: all cores)"
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "text", "jsonl"],
        help="text: a file is a document; jsonl: each line's --field is one; auto (default): "
        "*.jsonl and *.ndjson are JSONL, other files text",
    )
    parser.add_argument(
        "--field", default="text", help="the JSONL field holding the text (default: text)"
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
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (no progress bar)"
    )


def add_corpus_parsers(subparsers: Any) -> None:
    """Registers ``tokenize`` and ``count`` on ``subparsers`` (from ``add_subparsers``).

    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="fastllm")
    >>> add_corpus_parsers(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["count", "a.txt", "--total"]).total
    True
    """
    tokenize = subparsers.add_parser(
        "tokenize",
        help="tokenize files into a memory-mapped token file (+ .idx and .json)",
        description="Tokenize text and JSONL files on all cores into OUT (flat uint16/uint32 "
        "tokens, <|endoftext|> after each document), OUT.idx (uint64 document start offsets) "
        "and OUT.json (encoding, checksum, counts, inputs). A stopped run resumes when rerun.",
    )
    _add_common(tokenize)
    tokenize.add_argument(
        "-o", "--output", default=DEFAULT_OUTPUT, help=f"token file (default: {DEFAULT_OUTPUT})"
    )
    tokenize.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over instead of reusing earlier work",
    )
    tokenize.set_defaults(func=cmd_tokenize)

    count = subparsers.add_parser(
        "count",
        help="count tokens per file and in total",
        description="Count the tokens of text and JSONL files per file and in total, as "
        "fastllm tokenize would write them (nothing is written).",
    )
    _add_common(count)
    count.add_argument("--total", action="store_true", help="print only the total")
    count.set_defaults(func=cmd_count)


def _fail(prog: str, error: BaseException) -> SystemExit:
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error)
    return SystemExit(f"{prog}: error: {message}")


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Runs ``fastllm tokenize`` with parsed arguments; returns the exit status."""
    from fastllm.tokenize import Terminated, tokenize_files

    prog = "fastllm tokenize"
    inputs, described, errors = _default_inputs(args)
    say = (lambda message: None) if args.quiet else print
    bar = ProgressBar(sys.stderr) if not args.quiet and sys.stderr.isatty() else None
    say(f"input      {described}")
    try:
        stats = tokenize_files(
            inputs,
            args.output,
            encoding=args.encoding,
            format=args.format,
            field=args.field,
            eot=args.eot,
            errors=errors,
            num_threads=args.threads,
            resume=args.resume,
            progress=bar,
        )
    except KeyboardInterrupt as stop:
        if bar is not None:
            bar.close()
        partial = f"{args.output}.partial"
        kept = f"{bar.done / 1e6:,.1f} MB of input done, " if bar is not None else ""
        print(
            f"{prog}: {'terminated' if isinstance(stop, Terminated) else 'interrupted'}; "
            f"{kept}kept in {partial}: rerun the same command to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(stop, Terminated) else 130
    except (OSError, ValueError) as error:
        if bar is not None:
            bar.close()
        raise _fail(prog, error) from None
    if bar is not None:
        bar.close()
    if stats.note:
        say(f"note       {stats.note}; started over")
    say(stats.summary())
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    """Runs ``fastllm count`` with parsed arguments; returns the exit status."""
    from fastllm.tokenize import count_tokens_in_files

    prog = "fastllm count"
    inputs, described, errors = _default_inputs(args)
    bar = ProgressBar(sys.stderr, "count") if not args.quiet and sys.stderr.isatty() else None
    try:
        stats = count_tokens_in_files(
            inputs,
            encoding=args.encoding,
            format=args.format,
            field=args.field,
            eot=args.eot,
            errors=errors,
            num_threads=args.threads,
            progress=bar,
        )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:
        if bar is not None:
            bar.close()
        raise _fail(prog, error) from None
    if bar is not None:
        bar.close()
    cwd = Path.cwd()

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(cwd))
        except ValueError:
            return str(path)

    eot = " incl. one <|endoftext|> per document" if stats.eot else ""
    print(f"{'tokens':>14} {'documents':>10} {'bytes':>14}  file ({stats.encoding}{eot})")
    if not args.total:
        for item in stats.files:
            print(f"{item.tokens:>14,} {item.documents:>10,} {item.bytes:>14,}  {shown(item.path)}")
    print(
        f"{stats.tokens:>14,} {stats.documents:>10,} {stats.input_bytes:>14,}  total: "
        f"{len(stats.files):,} files in {stats.seconds:.2f} s; {described}"
    )
    if stats.replaced:
        print(f"{stats.replaced:,} invalid UTF-8 sequences counted as U+FFFD")
    return 0
