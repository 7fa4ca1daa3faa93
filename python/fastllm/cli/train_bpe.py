"""``fastllm train-bpe``: train a byte-level BPE vocabulary on text files from the command line.

``fastllm train-bpe INPUT... --vocab-size N -o tok.tiktoken`` reads the files (directories
recursively, ``-`` for stdin), trains in Rust on all cores, and writes ``tok.tiktoken`` (tiktoken's
rank format) plus ``tok.tiktoken.json`` (pattern and special tokens) for
``fastllm.Encoding.load``. A progress bar (merges done, merge rate) goes to stderr when it is a
terminal; ``--quiet`` prints nothing but errors.

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

from fastllm._progress import TerminalLine, bar

__all__ = ["add_train_parser", "cmd_train_bpe", "special_tokens"]

DEFAULT_SPECIAL = "<|endoftext|>"
_PROG = "fastllm train-bpe"


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
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
        help="text files, or directories (all files below them, hidden ones skipped); '-' reads "
        "stdin",
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
    parser.add_argument(
        "--threads", type=int, default=0, help="counting threads (default: all cores)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(func=cmd_train_bpe)
    return parser


def special_tokens(args: argparse.Namespace) -> list[str]:
    """The special tokens the arguments ask for."""
    if args.no_special:
        return []
    return list(args.special) if args.special else [DEFAULT_SPECIAL]


def _files(inputs: list[str]) -> tuple[list[Path], bool]:
    """The files named or found under directories (sorted), and whether stdin was asked for."""
    files: list[Path] = []
    stdin = False
    for name in inputs:
        if name == "-":
            stdin = True
            continue
        path = Path(name)
        if path.is_dir():
            found: list[Path] = []
            for folder, subdirs, names in os.walk(path):
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
                found.extend(Path(folder, n) for n in names if not n.startswith("."))
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"{_PROG}: error: no such file or directory: {name}")
    return files, stdin


class _ProgressBar:
    """``merges [#####-----] 4,096/8,191  12,345 merges/s`` on one line of ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.line = TerminalLine(stream)
        self.last = (time.perf_counter(), 0)
        self.rate = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        then, before = self.last
        if now > then and done > before:
            self.rate = (done - before) / (now - then)
        self.last = (now, done)
        fraction = done / total if total else 1.0
        self.line.show(f"merges {bar(fraction, 30)} {done:,}/{total:,}  {self.rate:,.0f} merges/s ")

    def status(self, message: str) -> None:
        """A message on the bar's line, until the bar replaces it."""
        self.line.show(message)

    def close(self) -> None:
        self.line.close()


def _counting_status(bar: _ProgressBar, n_files: int) -> Callable[[int, int], None]:
    def show(files: int, n_bytes: int) -> None:
        bar.status(f"counting pieces: {files:,}/{n_files:,} files, {n_bytes / 1e6:,.1f} MB ")

    return show


def cmd_train_bpe(args: argparse.Namespace) -> int:
    """Runs ``fastllm train-bpe`` with parsed arguments; returns the exit status."""
    from fastllm.train import save_encoding, sidecar_path, train_with_stats

    files, stdin = _files(args.inputs)
    texts: list[Any] = list(files)
    if stdin:
        texts.append(sys.stdin.read())
    if not texts:
        raise SystemExit(f"{_PROG}: error: no input files found in {', '.join(args.inputs)}")
    output = Path(args.output)
    try:  # Fail now rather than after training.
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"{_PROG}: error: cannot create {output.parent}: {e.strerror}") from None
    if not os.access(output.parent, os.W_OK):
        raise SystemExit(f"{_PROG}: error: cannot write to {output.parent}")
    name = args.name or output.name.split(".")[0] or "trained"
    show_bar = not args.quiet and sys.stderr.isatty()
    say = (lambda message: None) if args.quiet else print
    size = sum(f.stat().st_size for f in files)
    say(f"input      {len(files):,} file(s){' + stdin' if stdin else ''}, {size / 1e6:,.2f} MB")
    bar = _ProgressBar(sys.stderr) if show_bar else None
    counting = None
    if bar is not None:
        bar.status("counting pieces...")
        counting = _counting_status(bar, len(files))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # The summary says it when the corpus runs out of pairs.
            warnings.simplefilter("ignore", RuntimeWarning)
            enc, stats = train_with_stats(
                texts,
                args.vocab_size,
                pat_str=args.pattern,
                special_tokens=special_tokens(args),
                name=name,
                num_threads=args.threads,
                progress=bar,
                file_progress=counting,
            )
    except (ValueError, OSError, TypeError) as e:
        if bar is not None:
            bar.close()
        raise SystemExit(f"{_PROG}: error: {e}") from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    try:
        save_encoding(enc, output)
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
