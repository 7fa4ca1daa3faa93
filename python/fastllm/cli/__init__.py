"""The ``fastllm`` command line: ``encode``, ``tokenize``, ``count``, ``train-bpe``, ``pretrain``.

One module per command (:mod:`fastllm.cli.encode`, :mod:`fastllm.cli.tokenfile` for
``tokenize``, :mod:`fastllm.cli.count`, :mod:`fastllm.cli.train_bpe`); what they share (the
arguments declared once, the input walker, the progress bar) is in :mod:`fastllm.cli._common`.

>>> build_parser().parse_args(["count", "a.txt"]).command
'count'
"""

from __future__ import annotations

import argparse

from fastllm._fastllm import __version__
from fastllm.cli import count, encode, pretrain, tokenfile, train_bpe

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``fastllm`` command."""
    parser = argparse.ArgumentParser(
        prog="fastllm", description="Rust-accelerated tokenization for LLMs built from scratch."
    )
    parser.add_argument("--version", action="version", version=f"fastllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    encode.add_parser(sub)
    tokenfile.add_parser(sub)
    count.add_parser(sub)
    train_bpe.add_parser(sub)
    pretrain.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
