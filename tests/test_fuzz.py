"""The fuzzing harness (issue 14), bounded for CI: hypothesis property tests with a fixed
``max_examples`` each (the whole file runs in well under a minute).

- ``encode`` against tiktoken on random vocabularies (random merges, long tokens included) and
  random texts, under a hand-written pre-tokenizer and a regex one;
- the ``.tiktoken`` parser, the encoding sidecar parser and the JSONL reader (through
  ``tokenize_files``) against malformed input: a clean Python exception or a correct result,
  never a crash (a crash would take the test process down, which fails the run).

Crashes found become regression tests in ``tests/test_reliability.py``. The Rust parsers have
proptest properties of their own (``rust/vocab.rs``, ``rust/bpe.rs``). Run longer locally with
``FASTLLM_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

import tiktoken
import tiktoken.load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastllm
from fastllm import Encoding

EXAMPLES = int(os.environ.get("FASTLLM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ALPHABET = "ab \n<|>é中"


@st.composite
def vocabularies(draw: st.DrawFn) -> dict[bytes, int]:
    """The 256 bytes plus random merges of existing tokens (so every token is reachable)."""
    tokens: list[bytes] = [bytes([b]) for b in range(256)]
    seeds = [t for t in tokens if t in {c.encode() for c in "ab <|>\n"}]
    seeds += ["é".encode(), "中".encode()]
    for left, right in draw(
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), max_size=80)
    ):
        pool = seeds + tokens[256:]
        token = pool[left % len(pool)] + pool[right % len(pool)]
        if token not in tokens:
            tokens.append(token)
    if draw(st.booleans()):
        tokens.append(b"a" * draw(st.integers(129, 600)))
    return {t: i for i, t in enumerate(tokens)}


TEXTS = st.text(alphabet=ALPHABET, max_size=400) | st.builds(
    lambda c, n: c * n, st.sampled_from("ab "), st.integers(200, 3000)
)


@FUZZ
@given(
    ranks=vocabularies(),
    text=TEXTS,
    pat=st.sampled_from(["r50k", "cl100k", r"\S+|\s+"]),
)
def test_encode_matches_tiktoken_on_random_vocabularies(ranks, text, pat):
    specials = {"<|x|>": len(ranks)}
    ours = Encoding("fz", pat_str=pat, mergeable_ranks=ranks, special_tokens=specials)
    theirs = tiktoken.Encoding(
        "fz", pat_str=ours._pat_str, mergeable_ranks=ranks, special_tokens=specials
    )
    assert ours.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")
    assert ours.decode(ours.encode_ordinary(text)) == text


LINE_PARTS = st.sampled_from(
    [b"YQ==", b"Yg==", b"YWI=", b" ", b"\t", b"  ", b"\n", b"\r\n", b"0", b"1", b"2", b"256",
     b"67108864", b"-1", b"!!", b"\xef\xbb\xbf", b"\xff", b"=", b"QQ"]
)


@FUZZ
@given(parts=st.lists(LINE_PARTS, max_size=40), junk=st.binary(max_size=30))
def test_tiktoken_parser_on_malformed_files(parts, junk):
    data = b"".join(parts) + junk
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "v.tiktoken")
        path.write_bytes(data)
        try:
            enc = Encoding.from_tiktoken_file(path, pat_str="r50k")
        except ValueError as error:
            assert len(str(error)) < 1000
            return
        # Whatever fastllm accepts, tiktoken reads the same way.
        assert enc._mergeable_ranks == tiktoken.load.load_tiktoken_bpe(str(path))


def _sidecar_values() -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=6,
    )


@FUZZ
@given(
    key=st.sampled_from(
        ["format", "version", "name", "pat_str", "special_tokens", "ranks_sha256", "n_vocab"]
    ),
    value=_sidecar_values(),
    drop=st.booleans(),
    raw=st.none() | st.binary(max_size=40),
)
def test_encoding_sidecar_parser_on_damaged_sidecars(key, value, drop, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "e.tiktoken")
        ranks = {bytes([b]): b for b in range(256)}
        Encoding("e", pat_str="r50k", mergeable_ranks=ranks, special_tokens={}).save(path)
        sidecar = Path(str(path) + ".json")
        meta = json.loads(sidecar.read_text())
        if drop:
            meta.pop(key, None)
        else:
            meta[key] = value
        sidecar.write_bytes(raw if raw is not None else json.dumps(meta).encode())
        try:
            enc = Encoding.load(path)
        except ValueError as error:
            assert str(path) in str(error)
            return
        assert enc.encode("ab") == [97, 98]


JSONL_PARTS = st.sampled_from(
    [b'{"text": "hi"}', b'{"text": 1}', b'{"t": "x"}', b"[1]", b"{", b'"s"', b"null", b"\n",
     b"\r\n", b"  ", b"\xff\xfe", b'{"text": "\\ud800"}', b'{"text": "a\\u0000b"}']
)


@FUZZ
@given(parts=st.lists(JSONL_PARTS, max_size=20), errors=st.sampled_from(["strict", "replace"]))
def test_jsonl_reader_on_malformed_input(parts, errors):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "d.jsonl")
        source.write_bytes(b"".join(parts))
        out = Path(folder, "t.bin")
        try:
            stats = fastllm.tokenize_files(str(source), out, errors=errors, resume=False)
        except (ValueError, OSError):
            return
        assert stats is not None
        assert out.exists() and Path(str(out) + ".json").exists()


def test_harness_budget_is_bounded():
    assert FUZZ.max_examples == EXAMPLES and FUZZ.deadline is None
    assert base64.b64encode(b"a") == b"YQ=="
