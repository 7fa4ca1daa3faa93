"""The flat batch path (`encode_*batch_to_numpy`): parity with tiktoken across thread counts.

Each thread keeps one piece memo for all the documents it encodes (`rust/flat.rs`), so these
tests use batches whose documents repeat each other's words, special tokens between them, and
more distinct merged pieces than a memo keeps before it starts over.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import fastllm
from conftest import reference_encoding
from fastllm import corpus


def _docs(text: str, seed: int) -> list[str]:
    """``text`` cut into documents of 300-3000 characters, a few empty ones between them."""
    rng = random.Random(seed)
    docs, start = [], 0
    while start < len(text):
        end = start + rng.randint(300, 3_000)
        docs.append(text[start:end])
        if rng.random() < 0.05:
            docs.append("")
        start = end
    return docs


def _flat(batch: list[list[int]]) -> tuple[list[int], list[int]]:
    offsets = [0]
    for ids in batch:
        offsets.append(offsets[-1] + len(ids))
    return [t for ids in batch for t in ids], offsets


@pytest.mark.parametrize("kind", ["english", "python", "non_latin"])
def test_batch_to_numpy_matches_tiktoken(pair, kind):
    enc, ref = pair
    source = {
        "english": corpus.english_prose,
        "python": corpus.python_source,
        "non_latin": corpus.non_latin_text,
    }[kind]
    docs = _docs(source(200_000), seed=len(kind))
    expected = _flat(ref.encode_ordinary_batch(docs))
    for threads in [1, 2, 3, 8]:
        tokens, offsets = enc.encode_ordinary_batch_to_numpy(docs, num_threads=threads)
        assert tokens.dtype == np.uint32 and offsets.dtype == np.int64
        assert (tokens.tolist(), offsets.tolist()) == expected


def test_batch_to_numpy_memo_starting_over(pair):
    """More distinct merged pieces than one memo holds (it starts over past 65536 entries)."""
    enc, ref = pair
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyzäöüßéñ"
    words = ["".join(rng.choices(letters, k=rng.randint(4, 9))) for _ in range(90_000)]
    docs = [" ".join(words[i : i + 300]) for i in range(0, len(words), 300)]
    docs += docs[:20]  # and repeats after the start-over
    expected = _flat(ref.encode_ordinary_batch(docs))
    for threads in [1, 2]:
        tokens, offsets = enc.encode_ordinary_batch_to_numpy(docs, num_threads=threads)
        assert (tokens.tolist(), offsets.tolist()) == expected


def test_batch_to_numpy_special_tokens_between_documents():
    enc = fastllm.get_encoding("cl100k_base")
    ref = reference_encoding("cl100k_base")
    base = corpus.english_prose(60_000)
    docs = []
    for i in range(0, len(base), 700):
        docs.append(base[i : i + 700] + ("<|endoftext|>" if i % 1400 else "<|fim_prefix|>x"))
    expected = _flat(ref.encode_batch(docs, allowed_special="all"))
    for threads in [1, 2, 4]:
        tokens, offsets = enc.encode_batch_to_numpy(
            docs, num_threads=threads, allowed_special="all"
        )
        assert (tokens.tolist(), offsets.tolist()) == expected
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode_batch_to_numpy(docs, num_threads=2)


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_batch_of_mixed_text_matches_tiktoken(name):
    """Half a MB of non-Latin and English documents, a str repeated, a list and a tuple."""
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    text = corpus.non_latin_text(300_000) + corpus.english_prose(200_000)
    docs = _docs(text, seed=11)
    docs[5] = docs[7]  # the same str twice
    assert sum(map(len, docs)) > 256 << 10
    expected = _flat(ref.encode_ordinary_batch(docs))
    for threads in [1, 2, 3, 8]:
        tokens, offsets = enc.encode_ordinary_batch_to_numpy(docs, num_threads=threads)
        assert (tokens.tolist(), offsets.tolist()) == expected
    tokens, offsets = enc.encode_ordinary_batch_to_numpy(tuple(docs), num_threads=2)  # type: ignore[arg-type]
    assert (tokens.tolist(), offsets.tolist()) == expected


def test_batch_errors_late_in_the_list():
    enc, ref = fastllm.get_encoding("cl100k_base"), reference_encoding("cl100k_base")
    docs = _docs(corpus.non_latin_text(400_000), seed=3)
    late = len(docs) - 3
    # A lone surrogate late in the list: the wrapper encodes the fixed texts (as tiktoken does).
    with_surrogate = [*docs[:late], "x\ud800y", *docs[late:]]
    tokens, offsets = enc.encode_ordinary_batch_to_numpy(with_surrogate, num_threads=2)
    assert (tokens.tolist(), offsets.tolist()) == _flat(ref.encode_ordinary_batch(with_surrogate))
    with pytest.raises(TypeError):
        enc.encode_ordinary_batch_to_numpy([*docs, 5], num_threads=2)  # type: ignore[list-item]
    special = [*docs[:late], "a <|endoftext|>", *docs[late:]]
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode_batch_to_numpy(special, num_threads=2)
    # and the encoding still works
    tokens, _ = enc.encode_ordinary_batch_to_numpy(docs, num_threads=2)
    assert tokens.tolist() == _flat(ref.encode_ordinary_batch(docs))[0]
