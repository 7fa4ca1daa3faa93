"""Decode parity with tiktoken (issue 15): every way decode makes its text (Python's UTF-8
decoder, the whole-character UTF-16 table, bytes transcoded to UTF-16 in Rust) gives tiktoken's
str on every text kind, with special tokens and invalid UTF-8 inside, for every ``errors``; and
the token list is read as before (ints of every kind, the same errors)."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
import pytest

import fastllm
from conftest import reference_encoding
from fastllm import corpus

NAMES = ["gpt2", "cl100k_base", "o200k_base"]
#: Mostly two-byte scripts with some CJK and ASCII: gpt2 cuts many of these characters into
#: bytes, so its decode takes the transcoding path; cl100k and o200k the UTF-16 table.
MIXED = "Привет, мир! Γειά σου κόσμε. שלום עולם. مرحبا بالعالم. Ողջույն. 中文的 テスト 🎉\n"


def texts() -> dict[str, str]:
    return {
        "english": corpus.english_prose(60_000),
        "python": corpus.python_source(60_000),
        "non_latin": corpus.non_latin_text(60_000),
        "mixed": MIXED * 400,
    }


def lone_bytes(enc: Any) -> list[int]:
    """Ids of single bytes that are not valid UTF-8 on their own or next to others."""
    return [enc.encode_single_token(bytes([b])) for b in (0xD0, 0xE4, 0xB8, 0xF0, 0x80, 0xC0)]


@pytest.mark.parametrize("name", NAMES)
def test_decode_equals_tiktoken_on_every_kind_with_specials_and_invalid_bytes(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    lone = lone_bytes(enc)
    special = enc.encode("<|endoftext|>", allowed_special="all")
    for kind, text in texts().items():
        ids = ref.encode_ordinary(text)
        assert enc.decode(ids) == ref.decode(ids) == text, kind
        assert enc.decode_bytes(ids) == ref.decode_bytes(ids)
        assert enc.decode(np.array(ids, dtype=np.uint32)) == text
        cases = [ids[:1000] + special + ids[1000:], special + ids + special]
        for i, bad in enumerate([[x] for x in lone] + [lone[:2], lone[1:3], [lone[0]] * 3]):
            at = (len(ids) * (i + 1)) // 11
            cases += [ids[:at] + bad + ids[at:], ids + bad, bad + ids]
        for case in cases:
            assert enc.decode(case) == ref.decode(case), kind
            assert enc.decode_bytes(case) == ref.decode_bytes(case)
            for errors in ("ignore", "backslashreplace", "surrogateescape"):
                assert enc.decode(case, errors=errors) == ref.decode(case, errors=errors)
            try:
                expected = ref.decode(case, errors="strict")
            except UnicodeDecodeError as e:
                with pytest.raises(UnicodeDecodeError) as ours:
                    enc.decode(case, errors="strict")
                assert str(ours.value) == str(e)
            else:
                assert enc.decode(case, errors="strict") == expected


@pytest.mark.parametrize("name", NAMES)
def test_decode_of_byte_tokens_equals_python_near_every_sequence_edge(name):
    """Single-byte tokens around the standard's sequence bounds (Table 3-7), inside runs of
    two-byte characters and ASCII: the transcoder's and Python's checks agree."""
    enc = fastllm.get_encoding(name)
    word = list("слово ".encode()) + list(b"ab") + list("中".encode())
    edges = [
        [0xC2, 0x80], [0xDF, 0xBF], [0xC1, 0xBF], [0xE0, 0xA0, 0x80], [0xE0, 0x9F, 0xBF],
        [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80],
        [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
        [0xF5, 0x80], [0xFF], [0xD0], [0xD0, 0x41], [0x80], [0xE4, 0xB8],
    ]  # fmt: skip
    for edge in edges:
        for data in (word * 40 + edge + word * 40, word * 80 + edge, edge + word * 80):
            ids = [enc.encode_single_token(bytes([b])) for b in data]
            raw = bytes(data)
            assert enc.decode(ids) == raw.decode("utf-8", errors="replace"), edge
            assert enc.decode(ids, errors="ignore") == raw.decode("utf-8", errors="ignore")
            assert enc.decode_bytes(ids) == raw


class Small(enum.IntEnum):
    HELLO = 31373


class Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


@pytest.mark.parametrize("name", NAMES)
def test_token_lists_of_every_int_kind_read_as_tiktoken(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    ids = ref.encode_ordinary("hello world, " * 50)
    mixed: list[Any] = list(ids)
    mixed[3] = True
    mixed[5] = np.int64(mixed[5])
    mixed[7] = Small.HELLO
    mixed[9] = 0
    plain = [int(x) for x in mixed]
    assert enc.decode(mixed) == ref.decode(plain)
    assert enc.decode_bytes(mixed) == ref.decode_bytes(plain)
    assert enc.decode([Index(31373)]) == ref.decode([31373])
    for bad, error in ([2**30 + 5], KeyError), ([10**6], KeyError), ([-1], OverflowError):
        with pytest.raises(error):
            enc.decode(ids + bad)
        with pytest.raises(error):
            ref.decode(ids + bad)
    with pytest.raises(OverflowError, match="out of range"):
        enc.decode([*ids, 2**32])
    with pytest.raises(OverflowError):
        enc.decode([*ids, 2**70])
    with pytest.raises(TypeError):
        enc.decode([*ids, "a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        enc.decode([*ids, 1.0])  # type: ignore[list-item]


def test_a_list_changed_while_it_is_read_is_read_safely():
    """An item's ``__index__`` may change the list being read: the rest is read from the list
    as it is then (no stale length)."""
    enc = fastllm.get_encoding("gpt2")
    tokens: list[Any] = [31373] * 100

    class Shrink:
        def __index__(self) -> int:
            del tokens[10:]
            return 995

    tokens[5] = Shrink()
    assert enc.decode(tokens) == "hello" * 5 + " world" + "hello" * 4
