"""The Encoding API beyond parity: constructors, files, errors, pickling, threads, fork."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import pickle
import sys

import numpy as np
import pytest
import tiktoken

import fastllm
from conftest import reference_encoding
from fastllm import _fastllm
from fastllm.registry import BUNDLED
from reference import bundled_bytes


def test_registry_names_and_models():
    assert fastllm.list_encoding_names() == tiktoken.list_encoding_names()
    assert fastllm.get_encoding("gpt2") is fastllm.get_encoding("gpt2")
    assert fastllm.encoding_for_model("gpt-4").name == "cl100k_base"
    assert fastllm.encoding_for_model("gpt-3.5-turbo-0613").name == "cl100k_base"
    assert fastllm.encoding_for_model("text-embedding-3-small").name == "cl100k_base"
    assert fastllm.encoding_for_model("gpt2").name == "gpt2"
    assert fastllm.encoding_for_model("davinci").name == "r50k_base"
    assert fastllm.encoding_for_model("gpt-4o").name == "o200k_base"
    r50k = fastllm.get_encoding("r50k_base")
    assert r50k.encode("hello world") == fastllm.get_encoding("gpt2").encode("hello world")


def test_unknown_encoding_lists_names():
    with pytest.raises(ValueError, match="Unknown encoding 'p60k_base'") as err:
        fastllm.get_encoding("p60k_base")
    for name in fastllm.list_encoding_names():
        assert name in str(err.value)
    assert "fastllm.load_encoding(path)" in str(err.value)


def test_unknown_model():
    with pytest.raises(KeyError, match="Could not automatically map llama-7b to a tokeniser"):
        fastllm.encoding_for_model("llama-7b")


def test_invalid_token_errors_match_tiktoken():
    enc, ref = fastllm.get_encoding("gpt2"), reference_encoding("gpt2")
    for call in [
        lambda e: e.decode([31373, 99_999_999]),
        lambda e: e.decode_bytes([50257]),
        lambda e: e.decode_single_token_bytes(99999),
        lambda e: e.decode_tokens_bytes([1, 50257]),
        lambda e: e.encode_single_token("not a single token"),
    ]:
        with pytest.raises(KeyError) as ours:
            call(enc)
        with pytest.raises(KeyError) as theirs:
            call(ref)
        assert ours.value.args == theirs.value.args
    with pytest.raises(OverflowError):
        enc.decode([-1])
    with pytest.raises(TypeError):
        enc.encode(123)  # type: ignore[arg-type]


def test_encode_to_numpy_is_writable_uint32():
    enc = fastllm.get_encoding("cl100k_base")
    arr = enc.encode_to_numpy("hello world, numpy!")
    assert arr.dtype == np.uint32
    assert arr.flags.writeable and arr.flags.c_contiguous
    assert arr.tolist() == enc.encode("hello world, numpy!")
    arr[0] = 7
    assert arr[0] == 7


def test_decode_accepts_arrays_and_tensors():
    enc = fastllm.get_encoding("gpt2")
    ids = enc.encode("arrays decode too")
    assert enc.decode(np.array(ids, dtype=np.int64)) == "arrays decode too"
    torch = pytest.importorskip("torch")
    assert enc.decode(torch.tensor(ids)) == "arrays decode too"


def test_batch_thread_counts_agree():
    enc = fastllm.get_encoding("gpt2")
    texts = [f"document {i} " * (i % 17 + 1) for i in range(300)]
    expected = [enc.encode_ordinary(t) for t in texts]
    for threads in [1, 2, 8]:
        assert enc.encode_ordinary_batch(texts, num_threads=threads) == expected
        assert enc.encode_batch(texts, num_threads=threads) == expected
    assert enc.decode_batch(expected, num_threads=2) == texts
    assert enc.encode_batch([]) == []


def test_count_tokens():
    enc = fastllm.get_encoding("cl100k_base")
    text = "count me <|endoftext|> please"
    assert enc.count_tokens(text, allowed_special="all") == len(
        enc.encode(text, allowed_special="all")
    )
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.count_tokens(text)


def _toy_ranks() -> dict[bytes, int]:
    ranks = {bytes([b]): b for b in range(256)}
    for token in [b"he", b"ll", b"hell", b"hello", b" w", b"or", b" wor", b" world"]:
        ranks[token] = len(ranks)
    return ranks


def test_custom_encoding_like_tiktoken_and_pickles():
    tiktoken = pytest.importorskip("tiktoken")
    kwargs = {
        "pat_str": _fastllm.R50K_PATTERN,
        "mergeable_ranks": _toy_ranks(),
        "special_tokens": {"<|endoftext|>": 264},
    }
    enc = fastllm.Encoding("toy", **kwargs)
    ref = tiktoken.Encoding("toy", **kwargs)
    text = "hello world, hello <|endoftext|> wor"
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert enc.n_vocab == 265
    clone = pickle.loads(pickle.dumps(enc))
    assert clone is not enc
    assert clone.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert clone._special_tokens == enc._special_tokens
    short = fastllm.Encoding("toy", pat_str="r50k", mergeable_ranks=_toy_ranks(), special_tokens={})
    assert short._pat_str == _fastllm.R50K_PATTERN


def test_extending_an_encoding_like_tiktoken_users_do():
    base = fastllm.get_encoding("cl100k_base")
    enc = fastllm.Encoding(
        name="cl100k_im",
        pat_str=base._pat_str,
        mergeable_ranks=base._mergeable_ranks,
        special_tokens={**base._special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265},
    )
    assert enc.encode("<|im_start|>hi<|im_end|>", allowed_special="all") == [100264, 6151, 100265]


def test_explicit_n_vocab_checked():
    with pytest.raises(ValueError, match="explicit_n_vocab=10"):
        fastllm.Encoding(
            "toy",
            pat_str="r50k",
            mergeable_ranks=_toy_ranks(),
            special_tokens={},
            explicit_n_vocab=10,
        )


def test_invalid_pattern_named():
    with pytest.raises(ValueError, match=r"invalid pat_str \"\(\?<oops\""):
        fastllm.Encoding("bad", pat_str="(?<oops", mergeable_ranks=_toy_ranks(), special_tokens={})


def test_bad_mergeable_ranks():
    with pytest.raises(TypeError, match="mergeable_ranks keys must be bytes, got 'a'"):
        fastllm.Encoding("bad", pat_str="r50k", mergeable_ranks={"a": 0}, special_tokens={})  # type: ignore[dict-item]
    ranks = _toy_ranks()
    ranks[b"xyz"] = 0
    with pytest.raises(ValueError, match=r"gives rank 0 to two tokens"):
        fastllm.Encoding("bad", pat_str="r50k", mergeable_ranks=ranks, special_tokens={})
    partial = {b"a": 0, b"b": 1}
    enc = fastllm.Encoding("partial", pat_str="r50k", mergeable_ranks=partial, special_tokens={})
    with pytest.raises(ValueError, match=r"byte 0x63 has no token"):
        enc.encode("abc")


def test_from_tiktoken_file_round_trip(tmp_path):
    path = tmp_path / "toy.tiktoken"
    lines = [f"{base64.b64encode(t).decode()} {r}" for t, r in _toy_ranks().items()]
    path.write_text("\n".join(lines) + "\n")
    enc = fastllm.Encoding.from_tiktoken_file(path, pat_str="r50k")
    assert enc.name == "toy"
    assert enc.encode("hello world") == [259, 263]
    bundled = BUNDLED["gpt2"]
    gpt2 = fastllm.Encoding.from_tiktoken_file(
        bundled.path,
        name="gpt2",
        pat_str="r50k",
        special_tokens={"<|endoftext|>": 50256},
        expected_sha256=bundled.sha256,
    )
    assert gpt2.encode("hello world") == [31373, 995]


def test_corrupt_vocab_file_names_file_and_line(tmp_path):
    good = bundled_bytes("gpt2").splitlines()
    truncated = tmp_path / "truncated.tiktoken"
    truncated.write_bytes(b"\n".join(good[:100]) + b"\n" + good[100].split(b" ")[0] + b"\n")
    with pytest.raises(ValueError, match=r"truncated\.tiktoken, line 101: expected"):
        fastllm.Encoding.from_tiktoken_file(truncated, pat_str="r50k")
    garbage = tmp_path / "garbage.tiktoken"
    garbage.write_bytes(b"IQ== 0\n%%%% 1\n")
    with pytest.raises(ValueError, match=r"garbage\.tiktoken, line 2: invalid base64"):
        fastllm.Encoding.from_tiktoken_file(garbage, pat_str="r50k")
    with pytest.raises(OSError, match=r"cannot read .*missing.tiktoken"):
        fastllm.Encoding.from_tiktoken_file(tmp_path / "missing.tiktoken", pat_str="r50k")
    with pytest.raises(ValueError, match=r"sha256 is .* expected 00ff"):
        fastllm.Encoding.from_tiktoken_file(
            BUNDLED["gpt2"].path, pat_str="r50k", expected_sha256="00ff"
        )


def _gpt2_byte_chars() -> tuple[list[int], dict[int, str]]:
    """GPT-2's byte order (printable bytes first) and its byte-to-character table."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    others = [b for b in range(256) if b not in printable]
    to_char = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}
    return printable + others, to_char


def test_data_gym_pair(tmp_path):
    order, to_char = _gpt2_byte_chars()
    merges = [
        ("h", "e"),
        ("l", "l"),
        ("he", "ll"),
        ("hell", "o"),
        ("\u0120", "w"),
        ("o", "r"),
        ("\u0120w", "or"),
        ("l", "d"),
        ("\u0120wor", "ld"),
    ]
    encoder = {to_char[b]: i for i, b in enumerate(order)}
    for first, second in merges:
        encoder[first + second] = len(encoder)
    encoder["<|endoftext|>"] = len(encoder)
    vocab_bpe, encoder_json = tmp_path / "vocab.bpe", tmp_path / "encoder.json"
    vocab_bpe.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    encoder_json.write_text(json.dumps(encoder))
    enc = fastllm.Encoding.from_data_gym(
        vocab_bpe, encoder_json, name="toy", special_tokens={"<|endoftext|>": 265}
    )
    assert enc.encode("hello world<|endoftext|>", allowed_special="all") == [259, 264, 265]
    assert enc.decode([259, 264]) == "hello world"
    assert enc.encode("!") == [0]

    encoder_json.write_text(json.dumps({**encoder, "he": 999}))
    with pytest.raises(ValueError, match=r"encoder.json: token \"he\" has id 999"):
        fastllm.Encoding.from_data_gym(vocab_bpe, encoder_json, name="toy")
    encoder_json.write_text("{not json")
    with pytest.raises(ValueError, match=r"encoder.json, line 1: invalid JSON"):
        fastllm.Encoding.from_data_gym(vocab_bpe, encoder_json, name="toy")
    vocab_bpe.write_text("#version: 0.2\nh e x\n")
    with pytest.raises(ValueError, match=r"vocab.bpe, line 2: expected two"):
        fastllm.Encoding.from_data_gym(vocab_bpe, encoder_json, name="toy")


def _encode_in_child(queue):
    queue.put(fastllm.get_encoding("gpt2").encode_ordinary_batch(["fork", "safe"] * 50))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_batch_after_fork_does_not_deadlock():
    enc = fastllm.get_encoding("gpt2")
    enc.encode_ordinary_batch(["warm the parent"] * 100, num_threads=2)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_encode_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == enc.encode_ordinary_batch(["fork", "safe"] * 50)


def test_vocab_files_match_recorded_checksums():
    sums = (BUNDLED["gpt2"].path.parent / "SHA256SUMS").read_text().split()
    recorded = dict(zip(sums[1::2], sums[0::2]))
    for spec in BUNDLED.values():
        assert recorded[spec.file.removesuffix(".zst")] == spec.sha256
        assert os.path.getsize(spec.path) > 300_000
    for name in BUNDLED:
        assert hashlib.sha256(bundled_bytes(name)).hexdigest() == BUNDLED[name].sha256


def test_batch_to_numpy_flat_tokens_and_offsets():
    enc = fastllm.get_encoding("cl100k_base")
    texts = ["first document", "", "third <|endoftext|> one", "ünïcödé 世界"]
    tokens, offsets = enc.encode_batch_to_numpy(texts, allowed_special="all")
    assert tokens.dtype == np.uint32 and offsets.dtype == np.int64
    assert offsets.tolist()[0] == 0 and offsets[-1] == len(tokens)
    expected = enc.encode_batch(texts, allowed_special="all")
    for i, ids in enumerate(expected):
        assert tokens[offsets[i] : offsets[i + 1]].tolist() == ids
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode_batch_to_numpy(texts)
    ordinary, _ = enc.encode_ordinary_batch_to_numpy(texts)
    assert ordinary.tolist() == [t for text in texts for t in enc.encode_ordinary(text)]


def test_thread_setting():
    before = fastllm.get_num_threads()
    assert before >= 1
    try:
        fastllm.set_num_threads(1)
        assert fastllm.get_num_threads() == 1
        enc = fastllm.get_encoding("gpt2")
        assert enc.encode_ordinary_batch(["a b", "c"]) == [[64, 275], [66]]
    finally:
        fastllm.set_num_threads(0)
    assert fastllm.get_num_threads() == before
