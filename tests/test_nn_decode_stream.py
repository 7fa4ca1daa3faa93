"""Tests for ``Encoding.decode_stream``: ids in one at a time, text out as soon as it is whole.

Joined, the pieces always equal ``decode`` of all the ids; no piece ever ends inside a character
(each is valid text on its own), and nothing is dropped at the end (``flush``).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
from fastllm.encoding import DecodeStream

ENC = fastllm.get_encoding("gpt2")

# GPT-2 has byte tokens for every byte: these spell characters across several tokens
MULTI_BYTE = "é日本語🙂👩‍👩‍👧Ωß€𝔘"


def pieces(ids: list[int], enc: fastllm.Encoding = ENC) -> list[str]:
    stream = enc.decode_stream()
    return [stream.step(t) for t in ids] + [stream.flush()]


def test_single_byte_tokens_split_characters() -> None:
    ids = ENC.encode("Ω")
    assert [ENC.decode_single_token_bytes(t) for t in ids] == [b"\xce", b"\xa9"]
    assert pieces(ids) == ["", "Ω", ""]
    rare = ENC.encode("𝔘")  # four bytes in three tokens
    assert len(rare) == 3
    assert pieces(rare) == ["", "", "𝔘", ""]
    emoji = ENC.encode("🙂")
    assert pieces(emoji) == ["", "🙂", ""]


def test_pending_bytes_and_flush() -> None:
    stream = ENC.decode_stream()
    first, second = ENC.encode("Ω")
    assert stream.step(first) == ""
    assert stream.pending == b"\xce"
    # the stream ends inside the character: flush gives U+FFFD, as decode does
    assert stream.flush() == "\ufffd" == ENC.decode([first])
    assert stream.pending == b""
    # after a flush the stream starts clean
    assert stream.step(second) == "\ufffd" == ENC.decode([second])
    assert stream.step(ENC.encode("a")[0]) == "a"


def test_strict_errors_raise() -> None:
    stream = ENC.decode_stream(errors="strict")
    first, _second = ENC.encode("Ω")
    assert stream.step(first) == ""
    with pytest.raises(UnicodeDecodeError):
        stream.flush()


def test_stream_generator_yields_as_ids_arrive() -> None:
    ids = ENC.encode("naïve café 🙂!")
    seen: list[int] = []

    def produce():
        for t in ids:
            seen.append(t)
            yield t

    out = []
    for piece in ENC.decode_stream().stream(produce()):
        assert piece
        # a piece comes no later than the id that completes it
        assert ENC.decode(seen).endswith(piece)
        out.append(piece)
    assert "".join(out) == ENC.decode(ids)


def test_special_tokens_decode_as_text() -> None:
    ids = ENC.encode("a<|endoftext|>b", allowed_special="all")
    assert "".join(pieces(ids)) == "a<|endoftext|>b"


def test_unknown_token_raises_like_decode() -> None:
    with pytest.raises(KeyError):
        ENC.decode_stream().step(10**9)


def _random_ids(rng: random.Random, n: int) -> list[int]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:  # single-byte tokens: characters split across tokens
            out.extend(ENC.encode(rng.choice(MULTI_BYTE)))
        elif kind < 0.7:
            out.append(rng.randrange(ENC.n_vocab - 1))  # any token, valid UTF-8 or not
        else:
            out.extend(ENC.encode(rng.choice([" the", " ünïcödé", "日本", "🙂", "x"])))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_random_id_sequences_equal_decode(seed: int) -> None:
    rng = random.Random(seed)
    ids = _random_ids(rng, rng.randrange(1, 200))
    # also cut in the middle of a character
    ids = ids[: rng.randrange(1, len(ids) + 1)]
    got = pieces(ids)
    assert "".join(got) == ENC.decode(ids)
    # every piece is whole text: encoding it back gives its own bytes (no half characters)
    total = b"".join(p.encode("utf-8") for p in got)
    assert total == ENC.decode(ids).encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text_round_trips_through_the_stream(text: str) -> None:
    ids = ENC.encode_ordinary(text)
    got = pieces(ids)
    assert "".join(got) == text
    for piece in got:
        assert "\ufffd" not in piece or "\ufffd" in text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50255), max_size=30))
def test_arbitrary_ids_equal_decode_replace(ids: list[int]) -> None:
    assert "".join(pieces(ids)) == ENC.decode(ids)


def test_other_encodings() -> None:
    for name in ("cl100k_base", "o200k_base"):
        enc = fastllm.get_encoding(name)
        text = "日本語のテキスト 🙂 and ascii"
        ids = enc.encode(text)
        assert "".join(pieces(ids, enc)) == text
        assert isinstance(enc.decode_stream(), DecodeStream)
