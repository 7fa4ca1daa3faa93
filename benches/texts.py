"""Benchmark inputs that need no tokenizer: pathological strings and 1-10 KB documents.

Standard library only, so that the cold benchmark's worker processes can import it without
loading any tokenizer before the one they time.
"""

from __future__ import annotations

import random

# One letter repeated, spaces, a whitespace mix, digits, punctuation, random CJK characters and
# one CJK character repeated: the runs that make a pre-tokenizer or a BPE merge loop go long.
PATHOLOGICAL = ["a", "spaces", "space_newline", "digits", "punctuation", "cjk_word", "cjk_char"]


def pathological(kind: str, size: int, seed: int) -> str:
    """About ``size`` bytes (UTF-8) of one pathological kind."""
    rng = random.Random(seed)
    if kind == "a":
        return "a" * size
    if kind == "spaces":
        return " " * size
    if kind == "space_newline":
        return "".join(rng.choice(" \n") for _ in range(size))
    if kind == "digits":
        return "".join(rng.choice("0123456789") for _ in range(size))
    if kind == "punctuation":
        return "".join(rng.choice('!"#$%&()*+,-./:;<=>?@[]^_`{|}~') for _ in range(size))
    if kind == "cjk_word":
        return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(size // 3))
    if kind == "cjk_char":
        return "\u4e00" * (size // 3)
    raise ValueError(kind)


def split_docs(text: str, seed: int, low: int = 1_000, high: int = 10_000) -> list[str]:
    """``text`` cut into documents of ``low``-``high`` bytes (uniform), at character boundaries.

    Every byte of ``text`` lands in exactly one document, so the batch encodes the same bytes
    as one call on ``text`` would.
    """
    data = text.encode("utf-8")
    rng = random.Random(seed)
    docs = []
    start = 0
    while start < len(data):
        end = min(start + rng.randint(low, high), len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end += 1
        docs.append(data[start:end].decode("utf-8"))
        start = end
    return docs
