"""``fastllm count``: the tokens of corpus files, per file and in total (nothing is written).

>>> from fastllm.cli import build_parser
>>> build_parser().parse_args(["count", "a.txt", "--total"]).total
True
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastllm.cli._common import (
    add_corpus_command,
    corpus_inputs,
    corpus_progress,
    corpus_settings,
    fail,
)
from fastllm.tokenfile import count_tokens_in_files

__all__ = ["add_parser", "cmd_count"]

_PROG = "fastllm count"


def add_parser(subparsers: Any) -> None:
    """Registers ``count`` on ``subparsers`` (from ``add_subparsers``)."""
    count = add_corpus_command(
        subparsers,
        "count",
        help="count tokens per file and in total",
        description="Count the tokens of text and JSONL files per file and in total, as "
        "fastllm tokenize would write them (nothing is written).",
    )
    count.add_argument("--total", action="store_true", help="print only the total")
    count.set_defaults(func=cmd_count)


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def cmd_count(args: argparse.Namespace) -> int:
    """Runs ``fastllm count`` with parsed arguments; returns the exit status."""
    inputs, described, errors = corpus_inputs(args)
    try:
        with corpus_progress(args, "count") as progress:
            stats = count_tokens_in_files(
                inputs, **corpus_settings(args, errors), progress=progress
            )
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:
        raise fail(_PROG, error) from None
    cwd = Path.cwd()
    eot = " incl. one <|endoftext|> per document" if stats.eot else ""
    print(f"{'tokens':>14} {'documents':>10} {'bytes':>14}  file ({stats.encoding}{eot})")
    if not args.total:
        for item in stats.files:
            print(
                f"{item.tokens:>14,} {item.documents:>10,} {item.bytes:>14,}  "
                f"{_shown(item.path, cwd)}"
            )
    print(
        f"{stats.tokens:>14,} {stats.documents:>10,} {stats.input_bytes:>14,}  total: "
        f"{len(stats.files):,} files in {stats.seconds:.2f} s; {described}"
    )
    if stats.replaced:
        print(f"{stats.replaced:,} invalid UTF-8 sequences counted as U+FFFD")
    return 0
