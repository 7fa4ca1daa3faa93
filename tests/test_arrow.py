"""Arrow string columns in (``Encoding.encode_ordinary_arrow``) and HF datasets: tiktoken's tokens
for every kind of string column, zero-copy results, bounded memory, clear errors."""

from __future__ import annotations

import doctest
import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastllm
from fastllm import samples as corpus

pa = pytest.importorskip("pyarrow")
import pyarrow.compute as pc  # noqa: E402

import fastllm.arrow  # noqa: E402


def sample_texts() -> list[str | None]:
    """Documents of 0 bytes to ~10 KB: English, Python, non-Latin text, nulls, empty strings,
    special-token look-alikes (encoded as ordinary text) and lone multibyte characters."""
    english = corpus.english_prose(120_000)
    python = corpus.python_source(60_000)
    other = corpus.non_latin_text(40_000)
    texts: list[str | None] = []
    for source, step in ((english, 2_000), (python, 7_000), (other, 300)):
        for i in range(0, len(source), step):
            texts.append(source[i : i + step + (i % 997)])
    texts[5:5] = [None, "", "<|endoftext|> hi", None, "é", " ", "\n\n", "🙂" * 7]
    texts.append(None)
    return texts


TEXTS = sample_texts()


def expected(reference, texts, eot=None):
    tokens: list[int] = []
    offsets = [0]
    for text in texts:
        tokens.extend(reference.encode_ordinary(text or ""))
        if eot is not None:
            tokens.append(eot)
        offsets.append(len(tokens))
    return tokens, offsets


def check(enc, reference, column, texts, **kwargs):
    got = enc.encode_ordinary_arrow(column, **kwargs)
    eot = reference.eot_token if kwargs.get("eot") else None
    tokens, offsets = expected(reference, texts, eot)
    assert got.tokens.dtype == np.uint32 and got.offsets.dtype == np.int64
    assert got.offsets.tolist() == offsets
    assert got.tokens.tolist() == tokens
    assert got.null_count == sum(t is None for t in texts)
    assert got.num_rows == len(texts)
    return got


KINDS = {
    "string": lambda t: pa.array(t, pa.string()),
    "large_string": lambda t: pa.array(t, pa.large_string()),
    "string_view": lambda t: pa.array(t, pa.string_view()),
    "chunked": lambda t: pa.chunked_array(
        [pa.array(t[i : i + 37], pa.string()) for i in range(0, len(t), 37)]
        + [pa.array([], pa.string())]
    ),
    "chunked_large": lambda t: pa.chunked_array(
        [t[: len(t) // 3], t[len(t) // 3 :]], pa.large_string()
    ),
    "chunked_view": lambda t: pa.chunked_array([t[:50], t[50:]], pa.string_view()),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("eot", [False, True])
def test_every_kind_equals_tiktoken(pair, kind, eot):
    enc, reference = pair
    check(enc, reference, KINDS[kind](TEXTS), TEXTS, eot=eot)


@pytest.mark.parametrize("kind", ["string", "large_string", "string_view"])
def test_sliced_arrays(pair, kind):
    enc, reference = pair
    array = KINDS[kind](TEXTS)
    for start, length in [(1, 10), (7, 100), (len(TEXTS) - 3, 3), (4, 0)]:
        part = array.slice(start, length)
        check(enc, reference, part, TEXTS[start : start + length])
    chunked = pa.chunked_array([array.slice(3, 40), array.slice(50, 30)])
    check(enc, reference, chunked, TEXTS[3:43] + TEXTS[50:80], eot=True)


def test_threads_and_tables(pair):
    enc, reference = pair
    column = pa.array(TEXTS)
    for threads in [1, 2, 3, None]:
        check(enc, reference, column, TEXTS, num_threads=threads)
    # A table or record batch with a single column is that column.
    check(enc, reference, pa.table({"text": column}), TEXTS)
    check(enc, reference, pa.record_batch({"text": column}), TEXTS)
    check(enc, reference, pa.array([], pa.string()), [])
    check(enc, reference, pa.chunked_array([], pa.large_string()), [])
    check(enc, reference, pa.array([None, None], pa.string()), [None, None], eot=True)


def test_capsule_objects_from_other_libraries(pair):
    enc, reference = pair

    class OnlyStream:
        def __init__(self, data):
            self.data = data

        def __arrow_c_stream__(self, requested_schema=None):
            return self.data.__arrow_c_stream__(requested_schema)

    class OnlyArray(OnlyStream):
        def __arrow_c_array__(self, requested_schema=None):
            return self.data.__arrow_c_array__(requested_schema)

    check(enc, reference, OnlyStream(pa.chunked_array([TEXTS[:9], TEXTS[9:]])), TEXTS)
    check(enc, reference, OnlyArray(pa.array(TEXTS, pa.large_string())), TEXTS)
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([("text", pa.string())]),
        (pa.record_batch({"text": pa.array(TEXTS[i : i + 20])}) for i in range(0, len(TEXTS), 20)),
    )
    check(enc, reference, reader, TEXTS)


def test_polars(pair):
    pl = pytest.importorskip("polars")
    enc, reference = pair
    series = pl.Series("text", TEXTS)
    check(enc, reference, series, TEXTS, eot=True)
    check(enc, reference, series.slice(3, 50), TEXTS[3:53])
    check(enc, reference, pl.DataFrame({"text": TEXTS}), TEXTS)


def test_duckdb(pair):
    duckdb = pytest.importorskip("duckdb")
    enc, reference = pair
    docs = pa.table({"text": pa.array(TEXTS)})  # noqa: F841 (read by the query)
    result = duckdb.sql("SELECT text FROM docs")
    check(enc, reference, result, TEXTS)


def test_results_own_their_memory_and_to_arrow_is_zero_copy(pair):
    enc, reference = pair
    got = enc.encode_ordinary_arrow(pa.array(TEXTS), eot=True)
    for array in (got.tokens, got.offsets):
        assert array.flags.writeable and array.flags.c_contiguous
        assert array.base is not None  # owned by the Rust buffer handed over, not a view of input
    ids = got.to_arrow()
    assert ids.type == pa.large_list(pa.uint32())
    assert ids.values.buffers()[1].address == got.tokens.ctypes.data
    assert ids.offsets.buffers()[1].address == got.offsets.ctypes.data
    tokens, offsets = expected(reference, TEXTS, reference.eot_token)
    assert ids.to_pylist() == [tokens[a:b] for a, b in zip(offsets, offsets[1:])]
    small = got.to_arrow(large=False)
    assert small.type == pa.list_(pa.uint32())
    assert small.values.buffers()[1].address == got.tokens.ctypes.data
    assert small.to_pylist() == ids.to_pylist()
    del got
    gc.collect()
    assert ids.to_pylist()[0] == tokens[: offsets[1]]  # the list column keeps the tokens alive


def test_non_string_columns_say_what_to_pass():
    enc = fastllm.get_encoding("gpt2")
    with pytest.raises(TypeError, match=r"got a column of type Int64; cast it first"):
        enc.encode_ordinary_arrow(pa.array([1, 2, 3]))
    with pytest.raises(TypeError, match=r"got a column of type Binary.*pass a string column"):
        enc.encode_ordinary_arrow(pa.array([b"a"]))
    with pytest.raises(TypeError, match=r"dictionary-encoded.*dictionary_decode"):
        enc.encode_ordinary_arrow(pa.array(["a", "b", "a"]).dictionary_encode())
    with pytest.raises(TypeError, match=r"a table with 2 columns \['text', 'n'\]; pass one"):
        enc.encode_ordinary_arrow(pa.table({"text": ["a"], "n": [1]}))
    with pytest.raises(TypeError, match=r"got list; pass a string column"):
        enc.encode_ordinary_arrow(["not", "arrow"])
    with pytest.raises(TypeError, match=r"got NoneType"):
        enc.encode_ordinary_arrow(None)
    with pytest.raises(ValueError, match=r"num_threads must be None or >= 0"):
        enc.encode_ordinary_arrow(pa.array(["a"]), num_threads=-1)

    class BadCapsule:
        def __arrow_c_stream__(self, requested_schema=None):
            return 42

    with pytest.raises(TypeError, match="PyCapsule"):
        enc.encode_ordinary_arrow(BadCapsule())


def test_invalid_utf8_is_an_error_not_garbage():
    enc = fastllm.get_encoding("gpt2")
    offsets = pa.py_buffer(np.array([0, 1, 3], dtype=np.int32).tobytes())
    data = pa.py_buffer(b"a\xff\xfe")
    bad = pa.Array.from_buffers(pa.string(), 2, [None, offsets, data])
    with pytest.raises(ValueError, match=r"row 1 of the Arrow column is not valid UTF-8"):
        enc.encode_ordinary_arrow(bad)
    backwards = pa.py_buffer(np.array([0, 3, 1], dtype=np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), 2, [None, backwards, pa.py_buffer(b"abc")])
    # The C interface has no buffer sizes: the data buffer ends at the last offset (1), so row 0
    # (bytes 0..3) lies outside it.
    with pytest.raises(ValueError, match=r"row 0 of the Arrow column points outside its data"):
        enc.encode_ordinary_arrow(bad)


def test_cast_columns_work():
    enc = fastllm.get_encoding("gpt2")
    column = pc.cast(pa.array(["x y"], pa.large_binary()), pa.large_string())
    assert enc.encode_ordinary_arrow(column).tokens.tolist() == enc.encode_ordinary("x y")


def test_datasets_map_gives_tiktoken_ids(pair):
    datasets = pytest.importorskip("datasets")
    enc, reference = pair
    texts = [t for t in TEXTS if t is not None]
    ds = datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))})
    want = [reference.encode_ordinary(t) for t in texts]

    mapped = ds.with_format("arrow").map(
        fastllm.arrow.dataset_mapper(enc), batched=True, batch_size=17
    )
    assert mapped.column_names == ["text", "n", "ids"]
    assert mapped.with_format(None)[:]["ids"] == want

    out = fastllm.arrow.tokenize_dataset(ds, enc, batch_size=50, remove_columns=True)
    assert out.column_names == ["ids"] and out.format["type"] is None
    assert out[:]["ids"] == want
    with_eot = fastllm.arrow.tokenize_dataset(ds.with_format("numpy"), enc, eot=True)
    assert with_eot.format["type"] == "numpy"
    assert [row.tolist() for row in with_eot[:5]["ids"]] == [
        [*w, reference.eot_token] for w in want[:5]
    ]

    with pytest.raises(KeyError, match=r"no column 'body' in the dataset; it has \['text', 'n'\]"):
        fastllm.arrow.tokenize_dataset(ds, enc, "body")
    with pytest.raises(TypeError, match=r"with_format\('arrow'\)"):
        ds.map(fastllm.arrow.dataset_mapper(enc), batched=True)


def test_module_docstring_examples():
    pytest.importorskip("datasets")
    result = doctest.testmod(
        fastllm.arrow, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0 and result.attempted > 5


PEAK_SCRIPT = textwrap.dedent(
    """
    import gc, sys
    import pyarrow as pa
    import fastllm
    from fastllm import samples as corpus

    def rss_kb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1])

    piece = corpus.english_prose(2_000_000)
    docs, size = [], 0
    while size < 50_000_000:
        for i in range(0, len(piece) - 10_000, 4_000):
            docs.append(piece[i : i + 1_000 + (i * 7) % 9_000])
            size += len(docs[-1])
    column = pa.array(docs, pa.large_string())
    del docs, piece
    enc = fastllm.get_encoding("gpt2")
    enc.encode_ordinary_arrow(column.slice(0, 100))  # loads the vocabulary
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # resets the peak RSS (VmHWM) to now
        f.write("5")
    before = rss_kb("VmRSS")
    out = enc.encode_ordinary_arrow(column, num_threads=2)
    peak = rss_kb("VmHWM")
    print(column.nbytes, out.tokens.nbytes, (peak - before) * 1024)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_peak_memory_is_the_tokens_plus_a_window():
    """Structural, not timing: the call's peak RSS over the ~50 MB column it reads is at most the
    tokens it returns plus 16 MB (no copy of the text, no second copy of the tokens)."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("cannot reset the peak RSS here")
    env = dict(os.environ, FASTLLM_NUM_THREADS="2")
    run = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    text_bytes, token_bytes, peak = map(int, run.stdout.split())
    assert text_bytes > 50_000_000
    assert peak <= token_bytes + 16 * 2**20, (peak, token_bytes)
