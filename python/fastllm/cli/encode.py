"""``fastllm encode``: tokenize files and report what a user wants to see.

Files (default: this Python's standard library sources, found on every machine) are encoded with
a bundled encoding; the command prints how the text splits into tokens, the counts, and the speed.

>>> from fastllm.cli import build_parser
>>> args = build_parser().parse_args(["encode", "--text", "hi", "--show", "3"])
>>> args.text, args.show, args.encoding, args.threads
('hi', 3, 'gpt2', 0)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from fastllm import samples
from fastllm.cli._common import add_encoding, add_threads, encoding_from_args, fail
from fastllm.encoding import Encoding
from fastllm.registry import get_encoding

__all__ = ["DEFAULT_BYTES", "add_parser", "cmd_encode"]

#: Bytes of the default corpus (the standard library) read.
DEFAULT_BYTES = 8_000_000


def _read_inputs(paths: list[str], text: str | None) -> tuple[list[str], str]:
    if text is not None:
        return [text], "--text"
    if not paths:
        docs, size = [], 0
        for path in samples.stdlib_files():
            try:
                doc = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            docs.append(doc)
            size += len(doc.encode("utf-8"))
            if size >= DEFAULT_BYTES:
                break
        return docs, f"{len(docs)} files of Python's standard library ({samples.stdlib_dir()})"
    docs = []
    for name in paths:
        if name == "-":
            docs.append(sys.stdin.read())
            continue
        try:
            docs.append(Path(name).read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            raise SystemExit(f"fastllm encode: cannot read {name}: {e.strerror or e}") from None
    return docs, ", ".join(paths)


def _show_pieces(enc: Encoding, text: str, limit: int) -> str:
    ids = enc.encode_ordinary(text)[:limit]
    pieces = [enc.decode_single_token_bytes(i).decode("utf-8", "replace") for i in ids]
    return "\n".join(f"  {i:>6}  {p!r}" for i, p in zip(ids, pieces))


def cmd_encode(args: argparse.Namespace) -> int:
    """Runs ``fastllm encode`` with parsed arguments; returns the exit status."""
    try:
        chosen = encoding_from_args(args)
    except (OSError, ValueError) as error:
        raise fail("fastllm encode", error) from None
    enc = get_encoding(chosen) if isinstance(chosen, str) else chosen
    docs, what = _read_inputs(args.inputs, args.text)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    n_chars = sum(len(d) for d in docs)
    source = "bundled, offline" if isinstance(chosen, str) else f"from {args.encoding}"
    print(f"encoding   {enc.name} (vocabulary {enc.n_vocab:,} tokens, {source})")
    print(f"input      {what}")
    sample = next((d for d in docs if d.strip()), "")
    if args.show and sample:
        first_line = sample.strip().splitlines()[0][:200]
        print(f"\nfirst tokens of {first_line!r}:")
        print(_show_pieces(enc, first_line, args.show))

    start = time.perf_counter()
    counts = [len(enc.encode_ordinary(d)) for d in docs]
    one_thread = time.perf_counter() - start
    start = time.perf_counter()
    batch = enc.encode_ordinary_batch(docs, num_threads=args.threads)
    batched = time.perf_counter() - start
    n_tokens = sum(counts)
    if sum(len(b) for b in batch) != n_tokens:
        print("error: batch and single-thread token counts differ", file=sys.stderr)
        return 1
    mb = n_bytes / 1e6
    print(f"\ndocuments  {len(docs):,}")
    print(f"bytes      {n_bytes:,}  ({n_chars:,} characters)")
    print(f"tokens     {n_tokens:,}  ({n_bytes / max(n_tokens, 1):.2f} bytes per token)")
    print(f"speed      {mb / one_thread:,.1f} MB/s on one thread ({one_thread:.3f} s)")
    print(f"           {mb / batched:,.1f} MB/s with encode_ordinary_batch ({batched:.3f} s)")
    return 0


def add_parser(subparsers: Any) -> None:
    """Registers ``encode`` on ``subparsers`` (from ``add_subparsers``)."""
    encode = subparsers.add_parser(
        "encode",
        help="tokenize files and report tokens, counts and speed",
        description="Tokenize files (default: Python's standard library sources) and report "
        "the first tokens, the counts and the speed.",
    )
    encode.add_argument("inputs", nargs="*", help="text files ('-' for stdin)")
    encode.add_argument("--text", help="encode this string instead of files")
    add_encoding(encode)
    encode.add_argument("--show", type=int, default=12, help="tokens to show (default: 12)")
    add_threads(encode, "batch run")
    encode.set_defaults(func=cmd_encode)
