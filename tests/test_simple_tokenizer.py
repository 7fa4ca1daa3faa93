"""``fastllm.SimpleTokenizer`` against the book's ``SimpleTokenizerV1``/``V2`` (chapter 2)."""

from __future__ import annotations

import doctest
import json
import pickle
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastllm
import fastllm.simple
from book_tokenizer import (  # the book's reference code
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    book_preprocess,
    book_vocab,
)
from fastllm import SimpleTokenizer, corpus

# ---- real text ----


@pytest.fixture(scope="module")
def real_text() -> str:
    """About 5 MB: English prose (licences, docstrings), then Python source."""
    text = corpus.english_prose(2_500_000) + "\n" + corpus.python_source(2_500_000)
    assert len(text.encode("utf-8")) > 4_500_000
    return text


def test_real_text_vocabulary_ids_and_decoding_equal_the_book(real_text):
    ours = SimpleTokenizer.from_text(real_text)
    vocab = book_vocab(real_text)
    assert ours.vocab == vocab
    assert list(ours.vocab) == list(vocab)  # same order too
    assert len(ours) == len(vocab)
    ref = SimpleTokenizerV2(vocab)
    ids = ours.encode(real_text)
    assert ids == ref.encode(real_text)
    assert ours.decode(ids) == ref.decode(ids)
    v1 = SimpleTokenizer(vocab, unk_token=None)
    assert v1.encode(real_text) == SimpleTokenizerV1(vocab).encode(real_text) == ids
    assert v1.decode(ids) == ours.decode(ids)


def test_real_text_unknown_words_like_v2(real_text):
    """Vocabulary from one half, encoding of the other: unknown words become <|unk|>."""
    half = len(real_text) // 2
    train, held_out = real_text[:half], real_text[half:]
    vocab = book_vocab(train)
    ours = SimpleTokenizer(vocab)
    ref = SimpleTokenizerV2(vocab)
    ids = ours.encode(held_out)
    assert ids == ref.encode(held_out)
    assert ids.count(vocab["<|unk|>"]) > 1000
    assert ours.decode(ids) == ref.decode(ids)
    assert ours.encode_to_numpy(held_out).tolist() == ids


def test_the_books_v2_example():
    """Section 2.4: two texts joined by <|endoftext|>, unknown 'Hello' and 'palace'."""
    vocab = book_vocab("do you like tea? In the sunlit terraces of the . ,")
    tokenizer = SimpleTokenizer(vocab)
    text = " <|endoftext|> ".join(
        ("Hello, do you like tea?", "In the sunlit terraces of the palace.")
    )
    assert text == "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tokenizer.encode(text)
    assert ids == SimpleTokenizerV2(vocab).encode(text)
    assert tokenizer.decode(ids) == (
        "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )


def test_the_books_v1_raises_key_error_naming_the_word():
    vocab = book_vocab("do you like tea?", special_tokens=())
    v1 = SimpleTokenizer(vocab, unk_token=None)
    assert v1.encode("do you like tea?") == SimpleTokenizerV1(vocab).encode("do you like tea?")
    with pytest.raises(KeyError) as ref_error:
        SimpleTokenizerV1(vocab).encode("Hello, do you like tea?")
    with pytest.raises(KeyError, match="'Hello' is not in the vocabulary") as error:
        v1.encode("Hello, do you like tea?")
    assert ref_error.value.args == ("Hello",)
    assert "unk_token" in str(error.value)
    assert SimpleTokenizer.from_text("a b", special_tokens=()).unk_token is None


# ---- every code point, and random text rich in separators ----


def test_every_code_point_splits_like_pythons_re():
    """Python's ``\\s`` (all of Unicode) and the punctuation, each between two words."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(f"a{c}b{c}{c}" for c in chars)
    vocab = book_vocab(text)
    ours = SimpleTokenizer.from_text(text)
    assert ours.vocab == vocab
    ids = ours.encode(text)
    assert ids == SimpleTokenizerV2(vocab).encode(text)
    assert ours.decode(ids) == SimpleTokenizerV2(vocab).decode(ids)


SEPARATOR_RICH = st.text(
    alphabet=st.sampled_from(
        list(",.:;?_!\"()'-- \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u2028\u202f\u3000")
        + list("abcXYZ0é日本€\u180e\u200b\u00ad")
    ),
    max_size=200,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=SEPARATOR_RICH, text=SEPARATOR_RICH)
def test_random_text_equals_the_book(train, text):
    if not book_preprocess(train):
        with pytest.raises(ValueError, match="text is empty or only whitespace"):
            SimpleTokenizer.from_text(train)
        return
    ours = SimpleTokenizer.from_text(train)
    vocab = book_vocab(train)
    assert ours.vocab == vocab
    ids = ours.encode(text)
    assert ids == SimpleTokenizerV2(vocab).encode(text)
    assert ours.decode(ids) == SimpleTokenizerV2(vocab).decode(ids)


WEIRD_TOKENS = st.lists(
    st.text(alphabet=st.sampled_from(list("a.,( )!'\"_\t\u3000\x1c-")), max_size=4),
    min_size=1,
    max_size=12,
    unique=True,
)


@settings(max_examples=300, deadline=None)
@given(tokens=WEIRD_TOKENS, data=st.data())
def test_decode_cleanup_with_any_tokens(tokens, data):
    """User vocabularies may hold tokens with spaces or punctuation inside, or the empty string:
    the clean-up regex runs over the joined text, so must ours."""
    vocab = {t: i * 3 for i, t in enumerate(tokens)}  # sparse ids are fine
    ids = data.draw(st.lists(st.sampled_from(sorted(vocab.values())), max_size=20))
    tokenizer = SimpleTokenizer(vocab, unk_token=None)
    assert tokenizer.decode(ids) == SimpleTokenizerV1(vocab).decode(ids)


# ---- the Python face ----


def test_vocab_len_contains_repr_lookup():
    tok = SimpleTokenizer.from_text("the cat sat on the mat.")
    assert len(tok) == 8
    assert tok.vocab == {
        ".": 0,
        "cat": 1,
        "mat": 2,
        "on": 3,
        "sat": 4,
        "the": 5,
        "<|endoftext|>": 6,
        "<|unk|>": 7,
    }
    assert "cat" in tok and "dog" not in tok and 3 not in tok
    assert tok.token_to_id("mat") == 2 and tok.token_to_id("dog") is None
    assert tok.id_to_token(5) == "the" and tok.id_to_token(99) is None
    assert tok.id_to_token(-1) is None
    assert repr(tok) == "SimpleTokenizer(vocab_size=8, unk_token='<|unk|>')"
    tok.vocab["cat"] = 100  # a copy
    assert tok.token_to_id("cat") == 1


def test_short_and_long_calls_give_the_same_lists():
    """A call much shorter than the vocabulary builds plain ints; a long one uses cached ints."""
    words = [f"w{i}" for i in range(4000)]
    tok = SimpleTokenizer.from_text(" ".join(words))
    assert tok.encode("w17 w3999 nope") == [tok.vocab["w17"], tok.vocab["w3999"], len(tok) - 1]
    long_ids = tok.encode(" ".join(words * 2))
    assert long_ids == [tok.vocab[w] for w in words * 2]
    assert tok.encode("w17 w3999 nope") == [tok.vocab["w17"], tok.vocab["w3999"], len(tok) - 1]


def test_special_token_in_text_keeps_ids_contiguous():
    tok = SimpleTokenizer.from_text("b <|endoftext|> a")
    assert tok.vocab == {"a": 0, "b": 1, "<|endoftext|>": 2, "<|unk|>": 3}
    assert tok.encode("a <|endoftext|> c") == [0, 2, 3]


def test_decode_accepts_arrays_tensors_and_tuples():
    tok = SimpleTokenizer.from_text("Hello, world.")
    ids = tok.encode("Hello, world.")
    assert tok.decode(tuple(ids)) == "Hello, world."
    assert tok.decode(np.array(ids, dtype=np.int64)) == "Hello, world."
    assert tok.decode(iter(ids)) == "Hello, world."
    torch = pytest.importorskip("torch")
    assert tok.decode(torch.tensor(ids)) == "Hello, world."


def test_pickle_and_equality():
    tok = SimpleTokenizer.from_text("Hello, world. Is this-- a test?")
    again = pickle.loads(pickle.dumps(tok))
    assert again == tok and again is not tok
    assert again.encode("Is this a test?") == tok.encode("Is this a test?")
    v1 = SimpleTokenizer(tok.vocab, unk_token=None)
    assert pickle.loads(pickle.dumps(v1)).unk_token is None
    assert v1 != tok
    assert tok != "not a tokenizer"
    with pytest.raises(TypeError):
        hash(tok)


def test_save_and_load(tmp_path):
    tok = SimpleTokenizer.from_text("Ünïcödé, «quotes» and 日本語 -- too.")
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "fastllm.SimpleTokenizer" and data["version"] == 1
    assert data["unk_token"] == "<|unk|>"
    assert "日本語" in path.read_text(encoding="utf-8")
    loaded = SimpleTokenizer.load(str(path))
    assert loaded == tok

    plain = tmp_path / "vocab.json"
    plain.write_text(json.dumps({"a": 0, "b": 1, "<|unk|>": 2}), encoding="utf-8")
    assert SimpleTokenizer.load(plain).encode("a c") == [0, 2]
    plain.write_text(json.dumps({"a": 0}), encoding="utf-8")
    assert SimpleTokenizer.load(plain).unk_token is None

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        SimpleTokenizer.load(bad)
    bad.write_text(json.dumps({"format": "fastllm.SimpleTokenizer", "version": 9}))
    with pytest.raises(ValueError, match="format version 9"):
        SimpleTokenizer.load(bad)


def test_concurrent_encodes_agree(real_text):
    """Encoding runs with the GIL released; two threads at once get the same whole result."""
    tok = SimpleTokenizer.from_text(real_text)
    results: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(tok.encode(real_text))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] == tok.encode(real_text)


# ---- errors ----


def test_error_empty_text():
    with pytest.raises(ValueError, match=r"text is empty or only whitespace \(0 characters\)"):
        SimpleTokenizer.from_text("")
    with pytest.raises(ValueError, match=r"only whitespace \(3 characters\)"):
        SimpleTokenizer.from_text(" \n\t")
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        SimpleTokenizer.from_text(b"abc")  # type: ignore[arg-type]


def test_error_unk_token_not_in_vocab():
    with pytest.raises(ValueError, match=r"unk_token '<\|unk\|>' is not in the vocabulary"):
        SimpleTokenizer({"a": 0})
    with pytest.raises(ValueError, match="unk_token '<unk>' is not in the vocabulary"):
        SimpleTokenizer.from_text("a", unk_token="<unk>")
    with pytest.raises(TypeError, match="unk_token must be a str or None"):
        SimpleTokenizer({"a": 0}, unk_token=1)  # type: ignore[arg-type]


def test_error_bad_vocab():
    with pytest.raises(ValueError, match="vocab maps both 'a' and 'b' to id 0"):
        SimpleTokenizer({"a": 0, "b": 0}, unk_token=None)
    with pytest.raises(ValueError, match=r"vocab\['a'\] = -1: token ids must be integers"):
        SimpleTokenizer({"a": -1}, unk_token=None)
    with pytest.raises(ValueError, match=r"vocab\['a'\] = 67108864"):
        SimpleTokenizer({"a": 1 << 26}, unk_token=None)
    with pytest.raises(ValueError, match=r"vocab\['a'\] = 1.5"):
        SimpleTokenizer({"a": 1.5}, unk_token=None)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"vocab keys must be str tokens, got 1 \(int\)"):
        SimpleTokenizer({1: 0}, unk_token=None)  # type: ignore[dict-item]


def test_error_bad_special_tokens():
    with pytest.raises(ValueError, match="special_tokens lists 'x' twice"):
        SimpleTokenizer.from_text("a", special_tokens=("x", "x"))
    with pytest.raises(TypeError, match=r"wrap it: special_tokens=\('<\|unk\|>',\)"):
        SimpleTokenizer.from_text("a", special_tokens="<|unk|>")
    with pytest.raises(TypeError, match="special_tokens must be str, got 3"):
        SimpleTokenizer.from_text("a", special_tokens=(3,))  # type: ignore[arg-type]


def test_error_decode_unknown_ids():
    tok = SimpleTokenizer.from_text("a b")
    with pytest.raises(KeyError, match="Invalid token for decoding: 4"):
        tok.decode([0, 4])
    with pytest.raises(KeyError, match="Invalid token for decoding: -1"):
        tok.decode([-1])
    with pytest.raises(
        KeyError, match="Invalid token for decoding: 1267650600228229401496703205376"
    ):
        tok.decode([2**100])
    with pytest.raises(ValueError, match=r"ids\[1\] is 'b' \(str\); token ids must be integers"):
        tok.decode([0, "b"])  # type: ignore[list-item]


def test_docstring_examples():
    result = doctest.testmod(fastllm.simple, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 10


def test_exported_at_top_level():
    assert fastllm.SimpleTokenizer is SimpleTokenizer
    assert fastllm.simple.SPLIT_PATTERN == r'([,.:;?_!"()\']|--|\s)'
