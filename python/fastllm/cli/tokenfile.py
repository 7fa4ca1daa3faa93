"""``fastllm tokenize``: corpus files to a memory-mapped token file (see :mod:`fastllm.tokenfile`).

``fastllm tokenize INPUT... -o OUT.bin`` writes the token file with a progress bar on stderr when
it is a terminal and a one-line summary. With no INPUT it reads this Python's standard library
sources (on every machine), with ``--errors replace`` as a few of those files are not UTF-8 on
purpose.

>>> from fastllm.cli import build_parser
>>> parser = build_parser()
>>> args = parser.parse_args(["tokenize", "data/", "-o", "train.bin", "--no-eot"])
>>> args.inputs, args.output, args.eot, args.encoding
(['data/'], 'train.bin', False, 'gpt2')
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fastllm.cli._common import (
    add_corpus_arguments,
    bytes_bar,
    corpus_inputs,
    encoding_from_args,
    fail,
    progress_bar,
    tokens_progress,
)
from fastllm.tokenfile import Terminated, tokenize_files

__all__ = ["DEFAULT_OUTPUT", "add_parser", "cmd_tokenize"]

DEFAULT_OUTPUT = "tokens.bin"
_PROG = "fastllm tokenize"


def add_parser(subparsers: Any) -> None:
    """Registers ``tokenize`` on ``subparsers`` (from ``add_subparsers``)."""
    tokenize = subparsers.add_parser(
        "tokenize",
        help="tokenize files into a memory-mapped token file (+ .idx and .json)",
        description="Tokenize text and JSONL files on all cores into OUT (flat uint16/uint32 "
        "tokens, <|endoftext|> after each document), OUT.idx (uint64 document start offsets) "
        "and OUT.json (encoding, checksum, counts, inputs). A stopped run resumes when rerun.",
    )
    add_corpus_arguments(tokenize)
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


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Runs ``fastllm tokenize`` with parsed arguments; returns the exit status."""
    inputs, described, errors = corpus_inputs(args)
    say = (lambda message: None) if args.quiet else print
    say(f"input      {described}")
    try:
        with progress_bar(args.quiet, bytes_bar("tokenize")) as progress:
            stats = tokenize_files(
                inputs,
                args.output,
                encoding=encoding_from_args(args),
                format=args.format,
                field=args.field,
                eot=args.eot,
                errors=errors,
                num_threads=args.threads,
                resume=args.resume,
                progress=tokens_progress(progress),
            )
    except KeyboardInterrupt as stop:
        kept = f"{progress.done / 1e6:,.1f} MB of input done, " if progress is not None else ""
        print(
            f"{_PROG}: {'terminated' if isinstance(stop, Terminated) else 'interrupted'}; "
            f"{kept}kept in {args.output}.partial: rerun the same command to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(stop, Terminated) else 130
    except (OSError, ValueError) as error:
        raise fail(_PROG, error) from None
    if stats.note:
        say(f"note       {stats.note}; started over")
    say(stats.summary())
    return 0
