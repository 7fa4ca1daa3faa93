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
import glob
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastllm.cli._common import (
    add_corpus_command,
    bytes_bar,
    corpus_inputs,
    corpus_progress,
    corpus_settings,
    fail,
    progress_bar,
)
from fastllm.tokenfile import (
    Terminated,
    _own_files,
    kept_text_bytes,
    manifest_path,
    tokenize_files,
)

__all__ = ["DEFAULT_OUTPUT", "add_parser", "cmd_tokenize"]

DEFAULT_OUTPUT = "tokens.bin"
_PROG = "fastllm tokenize"


def add_parser(subparsers: Any) -> None:
    """Registers ``tokenize`` on ``subparsers`` (from ``add_subparsers``)."""
    tokenize = add_corpus_command(
        subparsers,
        "tokenize",
        help="tokenize files into a memory-mapped token file (+ .idx and .json)",
        description="Tokenize text and JSONL files on all cores into OUT (flat uint16/uint32 "
        "tokens, <|endoftext|> after each document), OUT.idx (uint64 document start offsets) "
        "and OUT.json (encoding, checksum, counts, inputs). A stopped run resumes when rerun.",
    )
    tokenize.add_argument(
        "-o", "--output", default=DEFAULT_OUTPUT, help=f"token file (default: {DEFAULT_OUTPUT})"
    )
    tokenize.add_argument(
        "--shard-tokens",
        type=int,
        metavar="N",
        help="split the output into numbered shards of at most N tokens (OUT_train_000000.bin, "
        "...) with a manifest OUT.manifest.json; documents are not split unless longer than N",
    )
    tokenize.add_argument(
        "--val-tokens",
        type=int,
        metavar="N",
        help="make the first shard (OUT_val_000000.bin) a validation shard of at most N tokens",
    )
    tokenize.add_argument(
        "--layout",
        choices=("flat", "llmc"),
        default="flat",
        help="flat: tokens only (nanoGPT); llmc: llm.c's 256-int32 header before the tokens "
        "(implies shards)",
    )
    tokenize.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over instead of reusing earlier work",
    )
    tokenize.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (fastllm[ray]): the one at ADDRESS (HOST:PORT, ray://..., "
        "auto), else RAY_ADDRESS or a new local one; writes shards (--shard-tokens, default "
        "100,000,000) and a manifest, the same bytes as the local run with those options",
    )
    tokenize.add_argument(
        "--actors",
        type=int,
        default=None,
        help="with --ray: encoder actors, one CPU each (default: the cluster's CPUs)",
    )
    tokenize.set_defaults(func=cmd_tokenize)


def _leftovers(out: str) -> str:
    """The partial files a stopped run of ``out`` left, for messages ('' when none)."""
    base = Path(out)
    names = [Path(out + s) for s in (".partial", ".idx.partial", ".partial.json")]
    prefix = manifest_path(out).name[: -len(".manifest.json")]
    names += sorted(base.parent.glob(glob.escape(prefix) + "_*.partial"))
    names.append(base.with_name(prefix + ".manifest.partial.json"))
    return ", ".join(str(p) for p in names if p.exists())


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Runs ``fastllm tokenize`` with parsed arguments; returns the exit status."""
    inputs, described, errors = corpus_inputs(args, exclude=_own_files(args.output))
    say = (lambda message: None) if args.quiet else print
    say(f"input      {described}")
    if args.ray is not None:
        return _cmd_ray(args, inputs, errors, say)

    def run() -> Any:
        with corpus_progress(args, "tokenize") as progress:
            return tokenize_files(
                inputs,
                args.output,
                **corpus_settings(args, errors),
                resume=args.resume,
                progress=progress,
                layout=args.layout,
                shard_tokens=args.shard_tokens,
                val_tokens=args.val_tokens,
            )

    def kept() -> str:
        text = kept_text_bytes(args.output)
        done = f"{text / 1e6:,.1f} MB of text done, " if text is not None else ""
        return f"{done}kept in {_leftovers(args.output)}"

    return _run(args, say, run, kept)


def _run(
    args: argparse.Namespace, say: Any, run: Callable[[], Any], kept: Callable[[], str]
) -> int:
    """Runs ``run()`` (a local or Ray tokenize) and reports as every tokenize run does: the
    summary, or what was kept after an interruption or an error (``kept()`` says where)."""
    try:
        stats = run()
    except KeyboardInterrupt as stop:
        print(
            f"{_PROG}: {'terminated' if isinstance(stop, Terminated) else 'interrupted'}; "
            f"{kept()}: rerun the same command to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(stop, Terminated) else 130
    except (OSError, ValueError, ImportError) as error:
        left = _leftovers(args.output)
        failure = fail(_PROG, error)
        if left:
            failure = SystemExit(
                f"{failure.code}; work kept in {left} (rerun to resume, or delete it)"
            )
        raise failure from None
    if stats.note:
        say(f"note       {stats.note}; started over")
    say(stats.summary())
    return 0


def _cmd_ray(args: argparse.Namespace, inputs: list[Any], errors: str, say: Any) -> int:
    """``fastllm tokenize --ray``: the same output, made on a Ray cluster."""
    from fastllm import distributed

    def run() -> Any:
        with progress_bar(args.quiet, bytes_bar("tokenize")) as progress:
            return distributed.tokenize(
                inputs,
                args.output,
                address=args.ray or None,
                encoding=args.encoding,
                format=args.format,
                field=args.field,
                eot=args.eot,
                errors=errors,
                actors=args.actors,
                resume=args.resume,
                progress=distributed.progress_drawer(progress),
                layout=args.layout,
                shard_tokens=args.shard_tokens or distributed.DEFAULT_SHARD_TOKENS,
                val_tokens=args.val_tokens,
            )

    def kept() -> str:
        return f"the work checkpointed is kept in {_leftovers(args.output)}"

    return _run(args, say, run, kept)
