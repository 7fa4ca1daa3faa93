"""The data path (issue 4): word tokenizer, sliding windows, DataLoader batches (pytest-benchmark).

Groups, each with fastllm and the book's Python code (chapter 2) as contenders:

* ``simple-encode`` / ``simple-decode``: ``SimpleTokenizer`` vs the book's ``SimpleTokenizerV2``
  on English prose, one unseen 100 kB chunk per round (targets: encode >= 10x, decode >= 5x);
* ``sliding-windows``: ``fastllm.sliding_windows`` at 10**4, 10**6 and 10**8 tokens (target:
  independent of size, < 1 ms at 10**8);
* ``batch-8x1024``: one int64 batch of 8 windows of 1024 tokens (inputs + targets, 128 KiB) from
  the views, directly and through the DataLoader, vs the book's stored tensors (target >= 1 GB/s);
* ``dataloader-1.2M``: building ``create_dataloader`` over 1.2 M tokens (L=256, stride=128) from
  the tokenizer's output vs the book's ``GPTDatasetV1`` construction (target >= 100x);
* ``text-to-dataloader-1.2M``: the same from raw text, tokenization included (fastllm's BPE vs
  tiktoken), on a text chunk no earlier round saw.

Run:

    python3 -m pytest benches/bench_data.py --benchmark-only -p no:cacheprovider
    python3 benches/bench_data.py          # the same, then prints the ratios
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastllm
from conftest import chunks
from fastllm import SimpleTokenizer, corpus, sliding_windows

torch = pytest.importorskip("torch")
tiktoken = pytest.importorskip("tiktoken")
from book_tokenizer import SimpleTokenizerV2  # noqa: E402  (tests/: the book's code)
from book_torch import create_dataloader_v1  # noqa: E402
from fastllm.data import GPTDataset, create_dataloader  # noqa: E402
from reference import reference_encoding  # noqa: E402


class PretokenizedText:
    """A "tokenizer" that returns given ids: times the book's window loop alone."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def encode(self, txt: str, allowed_special: Any = None) -> list[int]:
        return self.ids


# ---- SimpleTokenizer ----

SIMPLE_CHUNK = 100_000
SIMPLE_ROUNDS = {"fastllm": 20, "book": 20}


@pytest.fixture(scope="module")
def prose() -> list[str]:
    """Disjoint English chunks; the vocabulary is built from all of them (as the book does)."""
    return chunks("english", max(SIMPLE_ROUNDS.values()) + 1, SIMPLE_CHUNK)


@pytest.fixture(scope="module")
def simple_pair(prose: list[str]) -> tuple[SimpleTokenizer, SimpleTokenizerV2]:
    ours = SimpleTokenizer.from_text("\n".join(prose))
    return ours, SimpleTokenizerV2(ours.vocab)


@pytest.mark.parametrize("contender", ["fastllm", "book"])
def test_simple_encode(benchmark: Any, prose, simple_pair, contender: str) -> None:
    tokenizer = simple_pair[0] if contender == "fastllm" else simple_pair[1]
    texts = iter(prose)
    tokenizer.encode(next(texts))  # warm-up on its own chunk
    rounds = SIMPLE_ROUNDS[contender]
    benchmark.group = "simple-encode English prose, 100 kB chunks"
    benchmark.extra_info.update(contender=contender, bytes=SIMPLE_CHUNK)
    ids = benchmark.pedantic(
        tokenizer.encode, setup=lambda: ((next(texts),), {}), rounds=rounds, iterations=1
    )
    assert len(ids) > SIMPLE_CHUNK // 8


@pytest.mark.parametrize("contender", ["fastllm", "book"])
def test_simple_decode(benchmark: Any, prose, simple_pair, contender: str) -> None:
    ours = simple_pair[0]
    tokenizer = ours if contender == "fastllm" else simple_pair[1]
    id_lists = iter([ours.encode(text) for text in prose])
    tokenizer.decode(next(id_lists))
    rounds = SIMPLE_ROUNDS[contender]
    benchmark.group = "simple-decode English prose, 100 kB chunks"
    benchmark.extra_info.update(contender=contender, bytes=SIMPLE_CHUNK)
    text = benchmark.pedantic(
        tokenizer.decode, setup=lambda: ((next(id_lists),), {}), rounds=rounds, iterations=1
    )
    assert len(text) > SIMPLE_CHUNK // 2


# ---- sliding windows ----


@pytest.mark.parametrize("n_tokens", [10**4, 10**6, 10**8])
def test_sliding_windows(benchmark: Any, n_tokens: int) -> None:
    ids = np.empty(n_tokens, dtype=np.uint32)  # 400 MB at 10**8, never touched
    benchmark.group = "sliding-windows (max_length=1024, stride=1024)"
    benchmark.extra_info.update(contender=f"fastllm {n_tokens:.0e} tokens", n_tokens=n_tokens)
    inputs, targets = benchmark.pedantic(
        sliding_windows, args=(ids, 1024, 1024), rounds=200, iterations=10, warmup_rounds=5
    )
    assert inputs.shape == ((n_tokens - 1024 + 1023) // 1024, 1024)
    assert np.shares_memory(inputs, ids) and np.shares_memory(targets, ids)


# ---- one batch of 8 x 1024 ----

BATCH, CONTEXT = 8, 1024
BATCH_BYTES = 2 * BATCH * CONTEXT * 8  # inputs + targets, int64


@pytest.fixture(scope="module")
def corpus_ids() -> np.ndarray:
    """10**7 random GPT-2 ids (40 MB): batches come from all over, not from a warm cache."""
    return np.random.default_rng(0).integers(0, 50257, size=10**7, dtype=np.uint32)


def _random_rows(n_windows: int, seed: int) -> Iterator[list[int]]:
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, n_windows, size=BATCH).tolist()


@pytest.mark.parametrize("contender", ["fastllm", "fastllm-dataloader", "book-dataloader"])
def test_batch_8x1024(benchmark: Any, corpus_ids, contender: str) -> None:
    benchmark.group = "batch-8x1024 int64 inputs+targets (128 KiB)"
    benchmark.extra_info.update(contender=contender, bytes=BATCH_BYTES)
    if contender == "fastllm":
        dataset = GPTDataset(corpus_ids, None, CONTEXT, CONTEXT)
        rows = _random_rows(len(dataset), 1)
        batch = benchmark.pedantic(
            dataset.__getitem__,
            setup=lambda: ((next(rows),), {}),
            rounds=2000,
            iterations=1,
            warmup_rounds=20,
        )
    else:
        if contender == "fastllm-dataloader":
            loader = create_dataloader(corpus_ids, BATCH, CONTEXT, CONTEXT)
        else:
            tokenizer = PretokenizedText(corpus_ids.tolist())
            loader = create_dataloader_v1("", BATCH, CONTEXT, CONTEXT, tokenizer=tokenizer)
        batches = iter(loader)
        batch = benchmark.pedantic(
            lambda: next(batches),
            rounds=min(1000, len(loader) - 30),
            iterations=1,
            warmup_rounds=20,
        )
    inputs, targets = batch
    assert inputs.shape == targets.shape == (BATCH, CONTEXT)
    assert inputs.dtype == targets.dtype == torch.int64


# ---- building the dataset / loader over 1.2 M tokens ----

N_TOKENS = 1_200_000
BUILD_ROUNDS = {"fastllm-array": 50, "fastllm-list": 10, "book": 3}


@pytest.fixture(scope="module")
def token_lists() -> list[list[int]]:
    """Four disjoint 1.2 M-token slices of GPT-2 ids of the standard library's source."""
    enc = fastllm.get_encoding("gpt2")
    ids = enc.encode(corpus.python_source(12_000_000))
    assert len(ids) >= 4 * N_TOKENS
    return [ids[i * N_TOKENS : (i + 1) * N_TOKENS] for i in range(4)]


@pytest.mark.parametrize("contender", ["fastllm-array", "fastllm-list", "book"])
def test_dataloader_1_2m(benchmark: Any, token_lists, contender: str) -> None:
    """From the tokenizer's output: a uint32 array (``encode_to_numpy``, what
    ``create_dataloader`` uses for text), a Python list (``encode``), or the book's loop."""
    benchmark.group = "dataloader-1.2M tokens from token ids (L=256, stride=128)"
    benchmark.extra_info.update(contender=contender, n_tokens=N_TOKENS)
    arrays = [np.asarray(ids, dtype=np.uint32) for ids in token_lists]
    k = iter(range(10**9))

    def inputs() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(k) % len(token_lists)
        if contender == "fastllm-array":
            return (arrays[i],), {}
        return (token_lists[i],), {}

    if contender == "book":

        def build(ids: list[int]) -> Any:
            return create_dataloader_v1("", tokenizer=PretokenizedText(ids))

    else:

        def build(ids: Any) -> Any:
            return create_dataloader(ids)

    loader = benchmark.pedantic(
        build, setup=inputs, rounds=BUILD_ROUNDS[contender], iterations=1, warmup_rounds=1
    )
    assert len(loader.dataset) == (N_TOKENS - 256 + 127) // 128
    if contender == "book":
        held = sum(t.nbytes for t in loader.dataset.input_ids + loader.dataset.target_ids)
    else:
        held = loader.dataset.token_ids.nbytes
    benchmark.extra_info["bytes_held"] = held


TEXT_ROUNDS = 3


@pytest.fixture(scope="module")
def source_texts() -> list[str]:
    """Disjoint chunks of standard library source of about 1.2 M GPT-2 tokens each."""
    return chunks("python", TEXT_ROUNDS + 1, 2_500_000)


@pytest.mark.parametrize("contender", ["fastllm", "book"])
def test_text_to_dataloader_1_2m(benchmark: Any, source_texts, contender: str) -> None:
    benchmark.group = "text-to-dataloader-1.2M tokens incl. tokenization (L=256, stride=128)"
    benchmark.extra_info.update(contender=contender)
    texts = iter(source_texts)
    if contender == "fastllm":
        tokenizer = fastllm.get_encoding("gpt2")

        def build(text: str) -> Any:
            return create_dataloader(text, tokenizer=tokenizer)

    else:
        tokenizer = reference_encoding("gpt2")

        def build(text: str) -> Any:
            return create_dataloader_v1(text, tokenizer=tokenizer)

    build(next(texts))  # warm-up on its own chunk
    loader = benchmark.pedantic(
        build, setup=lambda: ((next(texts),), {}), rounds=TEXT_ROUNDS, iterations=1
    )
    assert len(loader.dataset) > 8_000


# ---- ratios ----

TARGETS = {
    "simple-encode": ("fastllm", "book", 10.0),
    "simple-decode": ("fastllm", "book", 5.0),
    "dataloader-1.2M": ("fastllm-array", "book", 100.0),
}


def _print_ratios(report: Path) -> None:
    data = json.loads(report.read_text())
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench["group"], {})[bench["extra_info"]["contender"]] = bench
    for group, contenders in groups.items():
        print(f"\n[{group}]  (median)")
        for name, bench in sorted(contenders.items(), key=lambda kv: kv[1]["stats"]["median"]):
            median = bench["stats"]["median"]
            line = f"  {name:28s} {median * 1e3:10.4f} ms"
            size = bench["extra_info"].get("bytes")
            if size:
                line += f"  {size / median / 1e9:8.3f} GB/s"
            held = bench["extra_info"].get("bytes_held")
            if held:
                line += f"  holds {held / 1e6:7.1f} MB"
            print(line)
        for key, (ours, book, target) in TARGETS.items():
            if group.startswith(key) and {ours, book} <= contenders.keys():
                ratio = contenders[book]["stats"]["median"] / contenders[ours]["stats"]["median"]
                print(f"  {ours} vs {book}: {ratio:.1f}x (target >= {target:g}x)")
        others = [n for n in contenders if n.startswith("fastllm") and "book" in contenders]
        for name in others:
            if not any(group.startswith(k) and TARGETS[k][0] == name for k in TARGETS):
                ratio = contenders["book"]["stats"]["median"] / contenders[name]["stats"]["median"]
                print(f"  {name} vs book: {ratio:.1f}x")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "bench.json"
        code = pytest.main(
            [
                __file__,
                "--benchmark-only",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={report}",
                *sys.argv[1:],
            ]
        )
        if report.exists():
            _print_ratios(report)
    sys.exit(int(code))
