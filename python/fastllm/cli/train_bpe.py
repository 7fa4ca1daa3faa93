"""``fastllm train-bpe``: train a byte-level BPE vocabulary on text files from the command line.

``fastllm train-bpe INPUT... --vocab-size N -o tok.tiktoken`` reads the files (directories
recursively by THE input walker, as ``tokenize`` does; ``-`` for stdin), trains in Rust on all
cores, and writes ``tok.tiktoken`` (tiktoken's rank format) plus ``tok.tiktoken.json`` (pattern
and special tokens) for ``fastllm.Encoding.load``. A progress bar (merges done, merge rate) goes
to stderr when it is a terminal; ``--quiet`` prints nothing but errors.

>>> from fastllm.cli import build_parser
>>> parser = build_parser()
>>> args = parser.parse_args(["train-bpe", "a.txt", "--vocab-size", "1000", "-o", "t.tiktoken"])
>>> args.vocab_size, args.pattern, special_tokens(args)
(1000, 'gpt2', ['<|endoftext|>'])
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from fastllm._sidecar import sidecar_path
from fastllm.cli._common import (
    ProgressBar,
    add_quiet,
    add_threads,
    fail,
    input_report,
    progress_bar,
    split_stdin,
)
from fastllm.train import train_with_stats

__all__ = ["add_parser", "cmd_train_bpe", "merges_bar", "special_tokens"]

DEFAULT_SPECIAL = "<|endoftext|>"
_PROG = "fastllm train-bpe"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``train-bpe`` subcommand on ``subparsers`` (from ``add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-bpe",
        help="train a byte-level BPE vocabulary on text files",
        description="Train a byte-level BPE vocabulary (256 bytes, then merges, then special "
        "tokens) on UTF-8 text files and write it as a .tiktoken rank file plus a .json sidecar "
        "(pattern, special tokens) that fastllm.Encoding.load reads.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="text files, directories (all files below them; hidden, __pycache__ and binary "
        "files skipped) or glob patterns; '-' reads stdin",
    )
    parser.add_argument(
        "--vocab-size",
        type=int,
        required=True,
        metavar="N",
        help="tokens in the vocabulary: 256 bytes + learned tokens + special tokens",
    )
    parser.add_argument(
        "-o", "--output", required=True, help="the .tiktoken file to write (plus OUTPUT.json)"
    )
    parser.add_argument(
        "--pattern",
        default="gpt2",
        help="pre-tokenizer: gpt2 (= r50k), cl100k, o200k, or a regex (default: gpt2)",
    )
    parser.add_argument(
        "--special",
        action="append",
        metavar="TOKEN",
        help=f"a special token (repeat for more; default: {DEFAULT_SPECIAL})",
    )
    parser.add_argument("--no-special", action="store_true", help="no special tokens")
    parser.add_argument("--name", help="the encoding's name (default: OUTPUT's file stem)")
    add_threads(parser, "counting")
    add_quiet(parser)
    parser.set_defaults(func=cmd_train_bpe)
    return parser


def special_tokens(args: argparse.Namespace) -> list[str]:
    """The special tokens the arguments ask for."""
    if args.no_special:
        return []
    return list(args.special) if args.special else [DEFAULT_SPECIAL]


def merges_bar(stream: TextIO) -> ProgressBar:
    """``merges [#####-----] 4,096/8,191  12,345 merges/s`` on one line of ``stream``.

    >>> import io
    >>> progress = merges_bar(io.StringIO())
    >>> progress.update(5, 10)
    >>> "[###############---------------] 5/10" in progress.line.stream.getvalue()
    True
    """
    return ProgressBar(stream, "merges", unit="merges", width=30, percent=False)


def _counting_status(progress: ProgressBar, n_files: int) -> Callable[[int, int], None]:
    def show(files: int, n_bytes: int) -> None:
        progress.status(f"counting pieces: {files:,}/{n_files:,} files, {n_bytes / 1e6:,.1f} MB ")

    return show


def cmd_train_bpe(args: argparse.Namespace) -> int:
    """Runs ``fastllm train-bpe`` with parsed arguments; returns the exit status."""
    names, stdin = split_stdin(args.inputs)
    try:
        found = input_report(names)
        files = [Path(f) for f in found.files]
    except (OSError, ValueError) as error:
        raise fail(_PROG, error) from None
    texts: list[Any] = list(files)
    if stdin:
        texts.append(sys.stdin.read())
    output = Path(args.output)
    try:  # Fail now rather than after training.
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"{_PROG}: error: cannot create {output.parent}: {e.strerror}") from None
    if not os.access(output.parent, os.W_OK):
        raise SystemExit(f"{_PROG}: error: cannot write to {output.parent}")
    name = args.name or output.name.split(".")[0] or "trained"
    say = (lambda message: None) if args.quiet else print
    size = sum(f.stat().st_size for f in files)
    skipped = f"; {found.skipped()}" if found.skipped() else ""
    say(
        f"input      {len(files):,} file{'s' if len(files) != 1 else ''}"
        f"{' + stdin' if stdin else ''}, {size / 1e6:,.2f} MB{skipped}"
    )
    start = time.perf_counter()
    try:
        with progress_bar(args.quiet, merges_bar) as progress, warnings.catch_warnings():
            # The summary says it when the corpus runs out of pairs.
            warnings.simplefilter("ignore", RuntimeWarning)
            counting = None
            if progress is not None:
                progress.status("counting pieces...")
                counting = _counting_status(progress, len(files))
            enc, stats = train_with_stats(
                texts,
                args.vocab_size,
                pat_str=args.pattern,
                special_tokens=special_tokens(args),
                name=name,
                num_threads=args.threads,
                progress=None if progress is None else progress.update,
                file_progress=counting,
            )
    except (ValueError, OSError, TypeError) as error:
        raise SystemExit(f"{_PROG}: error: {error}") from None
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    try:
        enc.save(output)
    except OSError as e:
        raise SystemExit(f"{_PROG}: error: cannot write {output}: {e.strerror or e}") from None
    n_special = len(enc.special_tokens_set)
    say(f"corpus     {stats.bytes / 1e6:,.2f} MB of text, {stats.unique_pieces:,} distinct pieces")
    say(
        f"vocabulary {enc.n_vocab:,} tokens = 256 bytes + {stats.learned:,} learned + "
        f"{n_special} special, in {seconds:.2f} s ({stats.steps / max(seconds, 1e-9):,.0f} "
        "merges/s overall)"
    )
    if enc.n_vocab < args.vocab_size:
        say(f"note       the corpus ran out of pairs before --vocab-size {args.vocab_size:,}")
    say(f"wrote      {output} and {sidecar_path(output)}")
    return 0
