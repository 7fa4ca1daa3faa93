"""Encoder and decoder speed: fastllm vs tiktoken vs HF tokenizers vs pure Python.

Every round works on text that no earlier round saw (``pedantic`` with a ``setup`` that hands
out the next disjoint chunk), so no cache can flatter anyone. Run all of it with

    python3 -m pytest benches/bench_encode.py --benchmark-only \
        --benchmark-json=benches/results/latest.json
    python3 benches/report.py benches/results/latest.json

``extra_info`` carries the input size in bytes (MB/s = bytes / mean), the contender and whether
its output equalled tiktoken's on that input (``exact``).
"""

from __future__ import annotations

import random

import pytest

from conftest import KINDS, chunks
from peers import available, encoder

ENCODINGS = ["gpt2", "cl100k_base"]
CHUNK = 150_000
ROUNDS = {"fastllm": 12, "tiktoken": 8, "hf_tokenizers": 4, "pure_python": 2}
CONTENDERS = list(ROUNDS)


def _skip_unless(contender: str) -> None:
    if not available(contender):
        pytest.skip(f"{contender} is not installed")


def _exact(contender: str, name: str, text: str, ids: list[int]) -> bool:
    return ids == encoder("tiktoken", name).encode_ordinary(text)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_encode_one_thread(benchmark, contender, kind, name):
    _skip_unless(contender)
    enc = encoder(contender, name)
    rounds = ROUNDS[contender]
    texts = chunks(kind, rounds + 1, CHUNK)
    check = texts.pop()
    benchmark.group = f"encode {name} {kind}"
    benchmark.extra_info.update(bytes=CHUNK, contender=contender, threads=1)
    benchmark.extra_info["exact"] = _exact(contender, name, check, enc.encode_ordinary(check))
    feed = iter(texts)
    result = benchmark.pedantic(
        enc.encode_ordinary, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1
    )
    assert len(result) > CHUNK // 10


BATCH_DOCS = 400


def _docs(n_rounds: int) -> list[list[str]]:
    """Rounds of English documents (paragraphs), disjoint across rounds."""
    text = chunks("english", 1, 260_000 * n_rounds)[0]
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    per_round = len(paragraphs) // n_rounds
    return [paragraphs[i * per_round : (i + 1) * per_round] for i in range(n_rounds)]


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize(
    "contender", ["fastllm", "fastllm_numpy", "tiktoken", "tiktoken_one_thread", "hf_tokenizers"]
)
def test_encode_batch(benchmark, contender, name):
    base = contender.replace("_numpy", "").replace("_one_thread", "")
    _skip_unless(base)
    enc = encoder(base, name)
    rounds = 5
    batches = _docs(rounds + 1)
    check = batches.pop()
    if contender == "fastllm_numpy":
        run = enc.encode_ordinary_batch_to_numpy
    elif contender == "tiktoken_one_thread":

        def run(docs):
            return [enc.encode_ordinary(d) for d in docs]
    else:
        run = enc.encode_ordinary_batch
    size = sum(len(d.encode()) for d in batches[0])
    benchmark.group = f"batch {name} english"
    benchmark.extra_info.update(bytes=size, contender=contender, threads="all")
    out = run(check)
    flat = out[0].tolist() if contender == "fastllm_numpy" else [t for ids in out for t in ids]
    reference = encoder("tiktoken", name).encode_ordinary_batch(check)
    benchmark.extra_info["exact"] = flat == [t for ids in reference for t in ids]
    feed = iter(batches)
    benchmark.pedantic(run, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("contender", ["fastllm", "tiktoken", "hf_tokenizers"])
def test_decode(benchmark, contender, name):
    _skip_unless(contender)
    enc = encoder(contender, name)
    rounds = 10
    reference = encoder("tiktoken", name)
    texts = chunks("english", rounds, CHUNK)
    token_lists = [reference.encode_ordinary(t) for t in texts]
    benchmark.group = f"decode {name}"
    benchmark.extra_info.update(bytes=CHUNK, contender=contender, threads=1)
    benchmark.extra_info["exact"] = enc.decode(token_lists[0]) == texts[0]
    feed = iter(token_lists)
    benchmark.pedantic(enc.decode, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1)


def pathological(kind: str, size: int, seed: int) -> str:
    rng = random.Random(seed)
    if kind == "a":
        return "a" * size
    if kind == "spaces":
        return " " * size
    if kind == "space_newline":
        return "".join(rng.choice(" \n") for _ in range(size))
    if kind == "digits":
        return "".join(rng.choice("0123456789") for _ in range(size))
    if kind == "punctuation":
        return "".join(rng.choice('!"#$%&()*+,-./:;<=>?@[]^_`{|}~') for _ in range(size))
    if kind == "cjk_word":
        return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(size // 3))
    raise ValueError(kind)


PATHOLOGICAL = ["a", "spaces", "space_newline", "digits", "punctuation", "cjk_word"]


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("kind", PATHOLOGICAL)
@pytest.mark.parametrize(
    ("contender", "megabytes"), [("fastllm", 1), ("fastllm", 2), ("tiktoken", 1)]
)
def test_pathological(benchmark, contender, megabytes, kind, name):
    enc = encoder(contender, name)
    rounds = 3 if contender == "fastllm" else 1
    inputs = [pathological(kind, megabytes * 1_000_000, seed) for seed in range(rounds)]
    benchmark.group = f"pathological {name} {kind}"
    benchmark.extra_info.update(bytes=megabytes * 1_000_000, contender=contender, threads=1)
    feed = iter(inputs)
    benchmark.pedantic(
        enc.encode_ordinary, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1
    )
    if contender == "fastllm" and megabytes == 1:
        benchmark.extra_info["exact"] = enc.encode_ordinary(inputs[0]) == encoder(
            "tiktoken", name
        ).encode_ordinary(inputs[0])
