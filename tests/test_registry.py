"""Every tiktoken 0.14 encoding bundled, the model tables, the rest of tiktoken's API
(``encode_with_unstable``, ``_encode_bytes``, ...), any vocabulary through ``load_encoding``,
and the token-file check."""

from __future__ import annotations

import importlib.util
import os
import pickle
import random
from pathlib import Path

import pytest
import tiktoken
import tiktoken.model
import tiktoken.registry
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
import fastllm.model
import fastllm.registry
from conftest import ENCODING_NAMES, reference_encoding
from fastllm.tokenfile import check_encoding, tokenize_files
from reference import reference_parts

# ---- the bundled encodings are tiktoken's ----


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_bundled_parts_are_tiktokens(name):
    """Name, pattern, special tokens (o200k_harmony's 1,091 names on 1,090 ids) and
    explicit_n_vocab as tiktoken 0.14's constructor gives them; the ranks from the same file."""
    ours = fastllm.registry.ENCODING_CONSTRUCTORS[name]()
    theirs = reference_parts(name)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], key
    enc = fastllm.get_encoding(name)
    assert enc.special_tokens_set == reference_encoding(name).special_tokens_set


def test_harmony_specials():
    enc = fastllm.get_encoding("o200k_harmony")
    assert len(enc.special_tokens_set) == 1091
    assert {"<|start|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>"} <= (
        enc.special_tokens_set
    )
    assert enc.encode("<|start|>assistant<|channel|>", allowed_special="all") == (
        reference_encoding("o200k_harmony").encode(
            "<|start|>assistant<|channel|>", allowed_special="all"
        )
    )
    assert enc.n_vocab == 201088


def test_registry_mirrors_tiktoken_registry():
    assert fastllm.list_encoding_names() == tiktoken.registry.list_encoding_names()
    enc = fastllm.get_encoding("p50k_edit")
    assert fastllm.registry.ENCODINGS["p50k_edit"] is enc
    assert set(fastllm.registry.ENCODING_CONSTRUCTORS) == set(fastllm.list_encoding_names())
    with pytest.raises(ValueError, match="Expected a string in get_encoding"):
        fastllm.get_encoding(3)  # type: ignore[arg-type]


def test_tiktoken_api_is_covered():
    """Every public name of tiktoken's Encoding, package and registry has a fastllm twin (the
    `load` module and the extension module aside)."""
    missing = {n for n in dir(tiktoken.Encoding) if not n.startswith("__")} - set(
        dir(fastllm.Encoding)
    )
    assert missing == set()
    package = {n for n in dir(tiktoken) if not n.startswith("_")} - {"load"}
    assert {n for n in package if importlib.util.find_spec(f"fastllm.{n}") is None} - set(
        dir(fastllm)
    ) == set()
    registry = {"ENCODINGS", "ENCODING_CONSTRUCTORS", "get_encoding", "list_encoding_names"}
    assert registry <= set(dir(fastllm.registry))


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_pickle_bundled_by_name(name):
    enc = fastllm.get_encoding(name)
    data = pickle.dumps(enc)
    assert len(data) < 200
    assert pickle.loads(data) is enc


class Marked(fastllm.Encoding):
    """A user's subclass with its own attribute."""

    def shout(self, text: str) -> list[int]:
        return self.encode(text.upper())


def test_pickled_subclass_stays_a_subclass():
    base = fastllm.get_encoding("gpt2")
    enc = Marked(
        "marked",
        pat_str=base._pat_str,
        mergeable_ranks=base._mergeable_ranks,
        special_tokens=base._special_tokens,
    )
    enc.note = "kept"  # type: ignore[attr-defined]
    _ = enc.special_tokens_set  # a cached property: rebuilt, not pickled
    clone = pickle.loads(pickle.dumps(enc))
    assert type(clone) is Marked
    assert clone.note == "kept"
    assert clone.shout("hi") == enc.shout("hi") == base.encode("HI")
    assert clone.name == "marked" and clone._special_tokens == enc._special_tokens
    # A subclass built from a bundled encoding's parts is not pickled by name either.
    saved = Marked._from_core("gpt2", base._core_bpe)
    assert type(pickle.loads(pickle.dumps(saved))) is Marked


# ---- fastllm.model mirrors tiktoken.model ----


def test_model_tables_are_tiktokens():
    assert fastllm.model.MODEL_TO_ENCODING == tiktoken.model.MODEL_TO_ENCODING
    assert list(fastllm.model.MODEL_PREFIX_TO_ENCODING.items()) == list(
        tiktoken.model.MODEL_PREFIX_TO_ENCODING.items()
    )
    assert set(fastllm.model.MODEL_TO_ENCODING.values()) <= set(fastllm.list_encoding_names())
    assert set(fastllm.model.MODEL_PREFIX_TO_ENCODING.values()) <= set(
        fastllm.list_encoding_names()
    )
    assert fastllm.encoding_for_model is fastllm.model.encoding_for_model


MODELS = [
    *tiktoken.model.MODEL_TO_ENCODING,
    *(p + "x" for p in tiktoken.model.MODEL_PREFIX_TO_ENCODING),
    "gpt-4o-2024-05-13",
    "gpt-4o-mini",
    "gpt-4.1-nano",
    "o1-preview",
    "o3-mini",
    "o4-mini-high",
    "gpt-5-codex",
    "gpt-oss-20b",
    "ft:gpt-4o-mini:org::id",
    "gpt-3.5-turbo-16k",
    "gpt-35-turbo-0613",
    "chatgpt-4o-latest",
]


@pytest.mark.parametrize("model", MODELS)
def test_encoding_for_model_as_tiktoken(model):
    name = tiktoken.model.encoding_name_for_model(model)
    assert fastllm.model.encoding_name_for_model(model) == name
    assert fastllm.encoding_for_model(model).name == name


@pytest.mark.parametrize("model", ["llama-7b", "", "gpt", "o2", "claude-3"])
def test_unknown_model_error_as_tiktoken(model):
    with pytest.raises(KeyError) as theirs:
        tiktoken.model.encoding_for_model(model)
    with pytest.raises(KeyError) as ours:
        fastllm.model.encoding_for_model(model)
    assert ours.value.args == (theirs.value.args[0].replace("tiktoken", "fastllm"),)
    assert ours.value.__suppress_context__


# ---- encode_with_unstable, _encode_bytes, _encode_only_native_bpe ----

UNSTABLE_TEXTS = [
    "hello fanta",
    "hello world",
    "hello ",
    "hello  ",
    "hello\n",
    "hello \n\n ",
    "a",
    "",
    " ",
    "I'm",
    "I'",
    "don't you",
    "x = 1\n    ",
    "def f(x):\n\treturn",
    "12345",
    "1234 56",
    "hello!!",
    "日本語のテキスト",
    "русский текст",
    "naïve café",
    "emoji 👍",
    "<|endoftext|>",
    "end <|endoftext|>",
    "<|endoftext|> start",
    "\u3000",
]


#: Encodings that share a pattern and most ranks with one above get the short list.
_SHORT_UNSTABLE = ["hello fanta", "x = 1\n    ", "end <|endoftext|>", "naïve café"]


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_encode_with_unstable_as_tiktoken(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    full = name in ("gpt2", "cl100k_base", "o200k_base")
    texts = UNSTABLE_TEXTS if full else [*_SHORT_UNSTABLE[:4], "<|start|>x<|end|>"]
    for text in texts:
        for allowed in [frozenset(), "all"] if "<|" in text else [frozenset()]:
            kwargs = {"allowed_special": allowed, "disallowed_special": ()}
            stable, completions = enc.encode_with_unstable(text, **kwargs)
            ref_stable, ref_completions = ref.encode_with_unstable(text, **kwargs)
            assert stable == ref_stable, text
            assert {tuple(c) for c in completions} == {tuple(c) for c in ref_completions}, text
            assert len(completions) == len(ref_completions)
            prefix = enc.decode_bytes(stable)
            assert text.encode().startswith(prefix)
    stable, completions = enc.encode_with_unstable("hello fanta")
    assert all(enc.decode_bytes(stable + c).startswith(b"hello fanta") for c in completions)


def test_encode_with_unstable_errors_as_tiktoken():
    enc, ref = fastllm.get_encoding("cl100k_base"), reference_encoding("cl100k_base")
    with pytest.raises(ValueError) as ours:
        enc.encode_with_unstable("x <|endoftext|>")
    with pytest.raises(ValueError) as theirs:
        ref.encode_with_unstable("x <|endoftext|>")
    assert str(ours.value) == str(theirs.value)


@settings(max_examples=25, deadline=None)
@given(st.text(st.sampled_from(list("ab fnt'\n\t1.é日")), max_size=12))
def test_encode_with_unstable_generated(text):
    for name in ["gpt2", "cl100k_base", "o200k_base"]:
        enc, ref = fastllm.get_encoding(name), reference_encoding(name)
        stable, completions = enc.encode_with_unstable(text)
        ref_stable, ref_completions = ref.encode_with_unstable(text)
        assert stable == ref_stable
        assert {tuple(c) for c in completions} == {tuple(c) for c in ref_completions}


def _byte_strings() -> list[bytes]:
    rng = random.Random(11)
    texts = ["hello 世界 <|endoftext|> x", "def f():\n    return 1  ", "naïve  \n", "12345"]
    out = [b"", b"\xff", b"\x80abc", b"hello \xe4\xb8", b" \xe4\xb8\xad", b"ab\xf0\x9f\x91"]
    for text in texts:
        data = text.encode()
        out += [data[:i] for i in range(len(data) + 1)]
        out += [data[:i] + b"\xff" + data[i:] for i in range(0, len(data), 3)]
    out += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(200)]
    return out


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_encode_bytes_as_tiktoken(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    for data in _byte_strings():
        assert enc._encode_bytes(data) == ref._encode_bytes(data), data
        assert enc.decode_bytes(enc._encode_bytes(data)) == data


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_encode_only_native_bpe_as_tiktoken(name):
    enc, ref = fastllm.get_encoding(name), reference_encoding(name)
    text = Path(os.__file__).read_text(encoding="utf-8")[:20_000] + "".join(UNSTABLE_TEXTS)
    assert enc._encode_only_native_bpe(text) == ref._encode_only_native_bpe(text)
    assert enc._encode_only_native_bpe(text) == enc.encode_ordinary(text)


# ---- any vocabulary: load_encoding and get_encoding of a path ----


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, fastllm.Encoding]:
    """A vocabulary trained and saved as train_bpe users do: (path, encoding)."""
    enc = fastllm.train_bpe(
        Path(os.__file__).read_text(encoding="utf-8"),
        400,
        pat_str="cl100k",
        special_tokens=["<|endoftext|>", "<|pad|>"],
        name="tiny",
    )
    path = str(tmp_path_factory.mktemp("trained") / "tiny.tiktoken")
    enc.save(path)
    return path, enc


def test_load_any_vocabulary(trained, tmp_path):
    path, enc = trained
    text = "The tokenizer of a trained model. <|endoftext|>"
    for source in [path, path + ".json", os.path.abspath(path)]:
        loaded = fastllm.load_encoding(source)
        assert loaded.name == "tiny"
        assert loaded.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert fastllm.load_encoding("o200k_base") is fastllm.get_encoding("o200k_base")
    # A bare rank file (plain or zstd-compressed) with its pattern and special tokens given.
    for bare in [tmp_path / "bare.tiktoken", tmp_path / "bare.tiktoken.zst"]:
        data = Path(path).read_bytes()
        if bare.suffix == ".zst":
            data = zstandard.ZstdCompressor().compress(data)
        bare.write_bytes(data)
        loaded = fastllm.load_encoding(
            bare, pat_str="cl100k", special_tokens={"<|endoftext|>": 398, "<|pad|>": 399}
        )
        assert loaded.name == "bare"
        assert loaded.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    # Same pattern and specials as the sidecar: accepted.
    assert fastllm.load_encoding(path, pat_str="cl100k").name == "tiny"


def test_get_encoding_of_a_path_names_the_loader(trained, tmp_path):
    path, _ = trained
    with pytest.raises(ValueError, match=r"is a file path; it has a sidecar .*load_encoding"):
        fastllm.get_encoding(path)
    bare = tmp_path / "bare.tiktoken"
    bare.write_bytes(Path(path).read_bytes())
    with pytest.raises(ValueError, match=r"no sidecar: load it with fastllm.load_encoding\(path"):
        fastllm.get_encoding(str(bare))
    with pytest.raises(ValueError, match=r"there is no file"):
        fastllm.get_encoding(tmp_path / "nope.tiktoken")  # type: ignore[arg-type]


def test_load_encoding_errors(trained, tmp_path):
    path, _ = trained
    missing = str(tmp_path / "missing.tiktoken")
    with pytest.raises(FileNotFoundError, match=r"no such vocabulary file.*missing\.tiktoken"):
        fastllm.load_encoding(missing)
    with pytest.raises(ValueError, match=r"Unknown encoding 'o300k'\. fastllm bundles: gpt2"):
        fastllm.load_encoding("o300k")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fastllm.load_encoding(tmp_path)
    # Not a vocabulary.
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    with pytest.raises(ValueError, match=r"notes.txt, line 1: .* Is .*notes.txt a vocabulary"):
        fastllm.load_encoding(text, pat_str="gpt2")
    # A trained vocabulary without its sidecar.
    alone = tmp_path / "alone.tiktoken"
    alone.write_bytes(Path(path).read_bytes())
    with pytest.raises(ValueError, match=r"alone.tiktoken has no sidecar .* put the sidecar back"):
        fastllm.load_encoding(alone)
    # A sidecar that does not match its rank file.
    changed = tmp_path / "changed.tiktoken"
    fastllm.get_encoding("gpt2").save(changed)
    changed.write_bytes(Path(path).read_bytes())
    with pytest.raises(ValueError, match=r"changed.tiktoken: sha256 is .* but its sidecar"):
        fastllm.load_encoding(changed)
    # A special token that collides with a rank, or with another special token.
    with pytest.raises(ValueError, match=r"'<\|x\|>'=100 collides with rank 100 of .*alone"):
        fastllm.load_encoding(alone, pat_str="cl100k", special_tokens={"<|x|>": 100})
    with pytest.raises(ValueError, match=r"'<\|a\|>' and '<\|b\|>' both have id 500"):
        fastllm.load_encoding(alone, pat_str="cl100k", special_tokens={"<|a|>": 500, "<|b|>": 500})
    # A pattern or specials that contradict the sidecar; options a bundled name does not take.
    with pytest.raises(ValueError, match="gives its pattern"):
        fastllm.load_encoding(path, pat_str="gpt2")
    with pytest.raises(ValueError, match="gives its special tokens"):
        fastllm.load_encoding(path, special_tokens={"<|x|>": 500})
    with pytest.raises(ValueError, match="bundled encoding with its own pattern"):
        fastllm.load_encoding("gpt2", pat_str="cl100k")
    with pytest.raises(ValueError, match="invalid pat_str"):
        fastllm.load_encoding(alone, pat_str="(unclosed")


# ---- token files record their vocabulary ----


def test_token_file_checked_against_an_encoding(trained, tmp_path):
    path, enc = trained
    doc = tmp_path / "doc.txt"
    doc.write_text("Some text to tokenize, twice over.")
    stats = tokenize_files(doc, tmp_path / "t.bin", encoding=path)
    assert stats.encoding == "tiny"
    meta = check_encoding(tmp_path / "t.bin", path)
    assert meta["encoding"]["special_tokens"] == {"<|endoftext|>": 398, "<|pad|>": 399}
    assert check_encoding(tmp_path / "t.bin", enc)["token_count"] == stats.tokens
    with pytest.raises(ValueError, match=r"t.bin was tokenized with 'tiny', not with 'gpt2'"):
        check_encoding(tmp_path / "t.bin", "gpt2")
    other = fastllm.Encoding(
        "tiny",
        pat_str="gpt2",
        mergeable_ranks=enc._mergeable_ranks,
        special_tokens=enc._special_tokens,
    )
    with pytest.raises(ValueError, match=r"the pre-tokenizer patterns differ\. Tokenize"):
        check_encoding(tmp_path / "t.bin", other)


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_every_bundled_encoding_tokenizes_files(name, tmp_path):
    doc = tmp_path / "doc.txt"
    text = "Bundled encodings, every one of them: 日本語, <|endoftext|> as text."
    doc.write_text(text)
    stats = tokenize_files(doc, tmp_path / "t.bin", encoding=name)
    assert stats.sidecar["encoding"]["vocab_sha256"] == fastllm.registry.BUNDLED[name].sha256
    ref = reference_encoding(name)
    assert stats.tokens == len(ref.encode_ordinary(text)) + 1
    assert check_encoding(tmp_path / "t.bin", name)["encoding"]["name"] == name
