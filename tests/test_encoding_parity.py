"""Token-for-token parity with tiktoken 0.14 built from the same vocabulary files."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastllm
from conftest import ENCODING_NAMES, reference_encoding
from fastllm import corpus

CORPUS_BYTES = 1_500_000


@pytest.fixture(scope="module")
def real_texts() -> dict[str, str]:
    return {
        "english": corpus.english_prose(CORPUS_BYTES),
        "python": corpus.python_source(CORPUS_BYTES),
        "non_latin": corpus.non_latin_text(CORPUS_BYTES),
    }


@pytest.mark.parametrize("kind", ["english", "python", "non_latin"])
def test_real_text_identical(pair, real_texts, kind):
    enc, ref = pair
    text = real_texts[kind]
    assert len(text.encode()) >= CORPUS_BYTES
    ours = enc.encode_ordinary(text)
    assert ours == ref.encode_ordinary(text)
    assert enc.decode(ours) == text
    docs = text.split("\n\n")[:2000]
    assert enc.encode_ordinary_batch(docs) == ref.encode_ordinary_batch(docs)


EDGE_CASES = [
    "",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\r\n\r\n  \r\n",
    "\t\t x",
    "a\u00a0b \u00a0 \u00a0\u00a0c",
    "\u3000\u3000日本\u3000語",
    " \u2028 \u2029 \u0085 \u180e x",
    "\x0b\x0c\x1c\x1d\x1e\x1f text",
    "hello   world  \n\n  \t end   ",
    "trailing spaces   ",
    "I'm you're he's she'd we'll they've it's",
    "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S",
    "I'm You'Re hE's sHe'D We'lL",
    "don’t can’t ’s 's ''s '''",
    "'s's's 'S 'ſ 'K 'k",
    "\u0663\u0664\u0665 \u0967\u0968 \uff11\uff12\uff13 \u2460\u2461 Ⅻ ½ 12345678901",
    "1234567 12 123 1234 ١٢٣٤٥",
    "👨\u200d👩\u200d👧\u200d👦 family 🏳️\u200d🌈 flag 👍🏽",
    "e\u0301 cafe\u0301 n\u0303 \u0301\u0301\u0301 a\u0308\u0304",
    "Ελληνικά русский язык עברית العربية हिन्दी ไทย 한국어 中文 日本語",
    "!!!??? ... --- ,,, ;;; ::: ((( ))) [[[ ]]] {{{ }}}",
    "$$$ %%% ^^^ &&& *** @@@ ### ~~~ `` ||| \\\\ //",
    "def f(x):\n    return x ** 2  # comment\n\n\nclass A:\n\tpass\n",
    "x" * 3000,
    " " * 3000,
    "\n" * 500 + " " * 500,
    "9" * 2000,
    "中" * 2000,
    "<|endoftext|>",
    "<|endoftext|",
    "<|endoftext|><|endoftext|>",
    "a<|endoftext|>b",
    "\ud800",
    "a\udfffb",
    "\ud83d\ude00 surrogate pair written as escapes",
    "\x00\x01\x02 control \x7f\x80\x9f",
    "\ufeffBOM and \ufffd replacement \uffff",
    "\U0010ffff\U000e0001 planes",
]


@pytest.mark.parametrize("text", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases(pair, text):
    enc, ref = pair
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
    assert enc.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    expected = ref.encode(text, allowed_special="all")
    assert enc.count_tokens(text, allowed_special="all") == len(expected)
    assert enc.encode_to_numpy(text, allowed_special="all").tolist() == ref.encode(
        text, allowed_special="all"
    )
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert enc.decode(enc.encode_ordinary(text)) == text


def test_lone_surrogates_become_replacement(pair):
    enc, ref = pair
    text = "a\ud800b\udc00"
    assert enc.encode(text) == ref.encode(text)
    assert enc.decode(enc.encode(text)) == "a\ufffdb\ufffd"
    assert enc.encode_batch([text, "ok"]) == ref.encode_batch([text, "ok"])
    assert enc.encode_ordinary_batch([text]) == ref.encode_ordinary_batch([text])


HYPOTHESIS_SPECIALS = [
    *("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|endofprompt|>", "<|start|>"),
    *("<|end|>", "<|message|>", "<|channel|>", "<|reserved_200018|>", "<|startoftext|>"),
    *("<|", "|>", "x", "<|endoftext", "<|start|", "end|>"),
]

_ALPHABET = st.characters(codec="utf-8") | st.sampled_from(
    list(" \t\n\r\u00a0\u3000\u2028'’sStTdDmMlLvVrReE0123456789٣߀!?.,-_<|>()")
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(_ALPHABET, max_size=60), st.sampled_from(ENCODING_NAMES))
def test_hypothesis_unicode(text, name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    ids = enc.encode_ordinary(text)
    assert ids == ref.encode_ordinary(text)
    assert enc.decode(ids) == text
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(HYPOTHESIS_SPECIALS) | st.text(max_size=8),
        max_size=8,
    ).map("".join)
)
def test_hypothesis_special_mixtures(text):
    for name in ENCODING_NAMES:
        enc, ref = fastllm.get_encoding(name), reference_encoding(name)
        assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
        assert enc.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())


def _outcome(fn):
    try:
        return ("ok", fn())
    except ValueError as e:
        return ("ValueError", str(e))


def _subsets(tokens):
    return [set(c) for r in range(len(tokens) + 1) for c in itertools.combinations(tokens, r)]


def _sample_specials(enc) -> list[str]:
    """Every special token, or for o200k_harmony's 1,091: the named ones and a few reserved
    ones (the one sharing its id with ``<|endofprompt|>`` among them)."""
    specials = sorted(enc.special_tokens_set)
    if len(specials) <= 16:
        return specials
    named = [s for s in specials if not s.startswith("<|reserved_")]
    return [*named, "<|reserved_200000|>", "<|reserved_200018|>", "<|reserved_201087|>"]


def test_every_special_token_combination(pair):
    enc, ref = pair
    specials = _sample_specials(enc)
    text = "start " + " mid ".join(specials) + " end"
    # tiktoken compiles a regex of every disallowed token per set: few sets for harmony's 1,091.
    n = 16 if len(enc.special_tokens_set) <= 16 else 6
    choices_allowed = [*_subsets(specials)[:n], "all"]
    choices_disallowed = [*_subsets(specials)[:n], "all", ()]
    for allowed, disallowed in itertools.product(choices_allowed, choices_disallowed):
        kwargs = {"allowed_special": allowed, "disallowed_special": disallowed}
        for probe in [text, *specials, "plain text"]:
            assert _outcome(lambda p=probe, kw=kwargs: enc.encode(p, **kw)) == _outcome(
                lambda p=probe, kw=kwargs: ref.encode(p, **kw)
            ), (probe, kwargs)


def test_disallowed_message_is_tiktokens(pair):
    enc, ref = pair
    with pytest.raises(ValueError) as ours:
        enc.encode("x <|endoftext|> y")
    with pytest.raises(ValueError) as theirs:
        ref.encode("x <|endoftext|> y")
    assert str(ours.value) == str(theirs.value)
    assert "disallowed special token '<|endoftext|>'" in str(ours.value)


def test_disallowed_non_special_string_as_tiktoken(pair):
    # tiktoken also refuses text that matches a disallowed string that is no special token.
    enc, ref = pair
    for text in ["say hello", "nothing here"]:
        assert _outcome(lambda t=text: enc.encode(t, disallowed_special={"hello"})) == _outcome(
            lambda t=text: ref.encode(t, disallowed_special={"hello"})
        )


def test_decoding_matches(pair):
    enc, ref = pair
    text = "héllo wörld 世界 👍🏽 <|endoftext|>"
    ids = ref.encode(text, allowed_special="all")
    assert enc.decode_bytes(ids) == ref.decode_bytes(ids)
    assert enc.decode_tokens_bytes(ids) == ref.decode_tokens_bytes(ids)
    assert enc.decode_with_offsets(ids) == ref.decode_with_offsets(ids)
    assert enc.decode_batch([ids, ids[:3]]) == ref.decode_batch([ids, ids[:3]])
    assert enc.decode_bytes_batch([ids, []]) == ref.decode_bytes_batch([ids, []])
    partial = ids[:-1] + enc.encode_ordinary("é")[:1]
    assert enc.decode(partial) == ref.decode(partial)
    assert enc.decode(partial, errors="ignore") == ref.decode(partial, errors="ignore")
    assert enc.decode_single_token_bytes(ids[0]) == ref.decode_single_token_bytes(ids[0])


def test_properties_match(pair):
    enc, ref = pair
    assert enc.name == ref.name
    assert enc.n_vocab == ref.n_vocab
    assert enc.max_token_value == ref.max_token_value
    assert enc.eot_token == ref.eot_token
    assert enc.special_tokens_set == ref.special_tokens_set
    assert enc.token_byte_values() == ref.token_byte_values()
    assert enc._special_tokens == ref._special_tokens
    assert enc._pat_str == ref._pat_str
    assert enc._mergeable_ranks == ref._mergeable_ranks
    for token in [0, enc.eot_token, enc.max_token_value]:
        assert enc.is_special_token(token) == ref.is_special_token(token)
    assert enc.encode_single_token("hello") == ref.encode_single_token("hello")
    assert enc.encode_single_token(b" world") == ref.encode_single_token(b" world")
    assert enc.encode_single_token("<|endoftext|>") == ref.encode_single_token("<|endoftext|>")
    assert repr(enc) == repr(ref)
    for token in sorted(set(ref._special_tokens.values())):
        assert enc.decode_single_token_bytes(token) == ref.decode_single_token_bytes(token)
        assert enc.is_special_token(token) == ref.is_special_token(token)
    for special in _sample_specials(enc):
        assert enc.encode_single_token(special) == ref.encode_single_token(special)


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=80)
    | st.lists(
        st.sampled_from([0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x80, 0xC3, 0x41, 0xED, 0xA0, 0xFF]),
        max_size=40,
    ).map(bytes)
)
def test_decode_replace_equals_python_on_any_bytes(data):
    enc = fastllm.get_encoding("gpt2")
    ids = [enc.encode_single_token(bytes([b])) for b in data]
    assert enc.decode(ids) == data.decode("utf-8", errors="replace")
    assert enc.decode(ids, errors="ignore") == data.decode("utf-8", errors="ignore")
    assert enc.decode_bytes(ids) == data


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_decode_of_non_latin_text_equals_tiktoken(name):
    """Mostly non-ASCII text is made UTF-16 in Rust (issue 15): the same str as tiktoken's,
    a leading U+FEFF and characters past U+FFFF included, and invalid UTF-8 inside it still
    replaced as Python's decoder does."""
    import numpy as np

    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    text = "\ufeff" + corpus.non_latin_text(30_000) + " 🎉𠀋 done"
    ids = ref.encode_ordinary(text)
    assert enc.decode(ids) == ref.decode(ids) == text
    assert enc.decode(np.array(ids, dtype=np.uint32)) == text
    assert enc.decode(np.array(ids, dtype=np.int64)) == text
    lone = [enc.encode_single_token(bytes([b])) for b in (0xE4, 0xB8, 0xF0, 0x80)]
    middle = len(ids) // 2
    for bad in ([lone[0]], [lone[0], lone[1]], [lone[2]], [lone[3]]):
        for cut in (ids[:middle] + bad + ids[middle:], ids + bad, bad + ids):
            assert enc.decode(cut) == ref.decode(cut)
            assert enc.decode(cut, errors="ignore") == ref.decode(cut, errors="ignore")
