"""Arrow columns in: ``Encoding.encode_ordinary_arrow`` vs the ``list[str]`` paths, and HF
``datasets.map`` with fastllm vs tiktoken.

Documents are 1-10 KB of English prose and Python source; every round gets a column no earlier
round saw. Run with

    python3 -m pytest benches/bench_arrow.py --benchmark-only --benchmark-group-by=group

Contenders in "arrow column <encoding>" (targets: fastllm_arrow >= 0.9x fastllm_to_pylist,
>= 3x tiktoken_batch):
- ``fastllm_arrow``: ``enc.encode_ordinary_arrow(column)``, tokens + offsets as NumPy;
- ``fastllm_to_pylist``: ``enc.encode_ordinary_batch_to_numpy(column.to_pylist())``, the list
  made inside the timed call;
- ``tiktoken_batch``: tiktoken's ``encode_ordinary_batch`` on the list (made outside the call).

In "datasets.map <encoding>" (target: fastllm >= 5x tiktoken): ``fastllm.arrow.tokenize_dataset``
vs ``ds.map(lambda b: {"ids": tk.encode_ordinary_batch(b["text"])}, batched=True)``; both add an
``ids`` column, checked equal before timing.
"""

from __future__ import annotations

import pytest

import fastllm
import fastllm.arrow
from fastllm import samples as corpus
from peers import encoder

pa = pytest.importorskip("pyarrow")

ENCODINGS = ["gpt2", "cl100k_base"]
COLUMN_BYTES = 4_000_000
ROUNDS = 5


def _columns(n: int) -> list[object]:
    """``n`` disjoint string columns of ~COLUMN_BYTES, documents of 1-10 KB: the machine's
    English prose (~2 MB) then Python source, dealt out in turn so each column has the same mix."""
    text = corpus.english_prose(10**8) + corpus.python_source(COLUMN_BYTES * n)
    docs, at = [], 0
    while at < len(text):
        length = 1_000 + (at * 7919) % 9_000
        docs.append(text[at : at + length])
        at += length
    return [pa.array(docs[i::n], pa.large_string()) for i in range(n)]


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("contender", ["fastllm_arrow", "fastllm_to_pylist", "tiktoken_batch"])
def test_arrow_column(benchmark, contender, name):
    enc = fastllm.get_encoding(name)
    columns = _columns(ROUNDS + 1)
    check = columns.pop()
    ref = encoder("tiktoken", name)
    want = ref.encode_ordinary_batch(check.to_pylist())
    got = enc.encode_ordinary_arrow(check)
    assert [got.tokens[a:b].tolist() for a, b in zip(got.offsets, got.offsets[1:])] == want

    if contender == "fastllm_arrow":
        run, inputs = enc.encode_ordinary_arrow, iter(columns)
    elif contender == "fastllm_to_pylist":

        def run(column):
            return enc.encode_ordinary_batch_to_numpy(column.to_pylist())

        inputs = iter(columns)
    else:
        run, inputs = ref.encode_ordinary_batch, iter([c.to_pylist() for c in columns])
    benchmark.group = f"arrow column {name}"
    benchmark.extra_info.update(bytes=COLUMN_BYTES, contender=contender)
    benchmark.pedantic(run, setup=lambda: ((next(inputs),), {}), rounds=ROUNDS, iterations=1)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("contender", ["fastllm", "tiktoken"])
def test_datasets_map(benchmark, contender, name):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    enc = fastllm.get_encoding(name)
    ref = encoder("tiktoken", name)
    sets = [datasets.Dataset.from_dict({"text": c.to_pylist()}) for c in _columns(ROUNDS + 1)]

    def with_tiktoken(ds):
        return ds.map(
            lambda batch: {"ids": ref.encode_ordinary_batch(batch["text"])},
            batched=True,
            batch_size=1000,
        )

    def with_fastllm(ds):
        return fastllm.arrow.tokenize_dataset(ds, enc, batch_size=1000)

    check = sets.pop()
    assert with_fastllm(check)[:]["ids"] == with_tiktoken(check)[:]["ids"]
    run = with_fastllm if contender == "fastllm" else with_tiktoken
    feed = iter(sets)
    benchmark.group = f"datasets.map {name}"
    benchmark.extra_info.update(bytes=COLUMN_BYTES, contender=contender)
    benchmark.pedantic(run, setup=lambda: ((next(feed),), {}), rounds=ROUNDS, iterations=1)
