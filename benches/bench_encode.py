"""Encoder and decoder speed, warm: fastllm vs quicktok, splintr, tiktoken, HF tokenizers and
pure Python.

Every round works on text that no earlier round saw (``pedantic`` with a ``setup`` that hands
out the next disjoint chunk), so no cache can flatter anyone. Run all of it with

    python3 -m pytest benches/bench_encode.py --benchmark-only \
        --benchmark-json=benches/results/latest.json
    python3 benches/report.py benches/results/latest.json

``extra_info`` carries the input size in bytes (MB/s = bytes / mean), the contender and whether
its output equalled tiktoken's on that input (``exact``). quicktok and splintr are checked exact
against tiktoken on every text a test will time, before it is timed, by another instance of the
same peer (so that no cache of the timed instance has seen the text); a peer that is not exact is
reported (skipped with the reason) and not timed. Each peer is skipped when it is not installed.

Cold figures (a fresh process per measurement, the first call) come from ``benches/cold.py``.
"""

from __future__ import annotations

import pytest

from conftest import KINDS, chunks
from peers import batch_call, build, encoder, encodings, flat, unsupported, vocab_spec
from texts import PATHOLOGICAL, pathological

ENCODINGS = encodings()
CHUNK = 150_000
ROUNDS = {
    "fastllm": 12,
    "quicktok": 12,
    "splintr": 12,
    "tiktoken": 8,
    "hf_tokenizers": 4,
    "pure_python": 2,
}
CONTENDERS = list(ROUNDS)
# Peers that must be exact on the measured text before they are timed.
CHECKED_FIRST = ("quicktok", "splintr")


def _skip_unless(contender: str, name: str) -> None:
    reason = unsupported(contender, name)
    if reason:
        pytest.skip(reason)


def _check_first(contender: str, name: str, texts: list[str]) -> None:
    """Skips (reported, not timed) a peer that is not exact on any of ``texts``."""
    if contender not in CHECKED_FIRST:
        return
    checker = build(contender, vocab_spec(name))
    reference = encoder("tiktoken", name)
    for i, text in enumerate(texts):
        if checker.encode_ordinary(text) != reference.encode_ordinary(text):
            pytest.skip(
                f"{contender} is not exact against tiktoken on measured text {i}: not timed"
            )


def _exact(contender: str, name: str, text: str, ids: list[int]) -> bool:
    return ids == encoder("tiktoken", name).encode_ordinary(text)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("contender", CONTENDERS)
def test_encode_one_thread(benchmark, contender, kind, name):
    _skip_unless(contender, name)
    enc = encoder(contender, name)
    rounds = ROUNDS[contender]
    texts = chunks(kind, rounds + 1, CHUNK)
    check = texts.pop()
    _check_first(contender, name, texts)
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
    "contender",
    [
        "fastllm",
        "fastllm_numpy",
        "quicktok",
        "splintr",
        "tiktoken",
        "tiktoken_one_thread",
        "hf_tokenizers",
    ],
)
def test_encode_batch(benchmark, contender, name):
    base = contender.replace("_numpy", "").replace("_one_thread", "")
    _skip_unless(base, name)
    enc = encoder(base, name)
    rounds = 5
    batches = _docs(rounds + 1)
    check = batches.pop()
    if contender == "fastllm":
        run = enc.encode_ordinary_batch
    elif contender == "tiktoken_one_thread":

        def run(docs):
            return [enc.encode_ordinary(d) for d in docs]
    else:
        run = batch_call(base, enc)
    flat_of = "tiktoken" if contender in ("fastllm", "tiktoken_one_thread") else base
    reference = encoder("tiktoken", name).encode_ordinary_batch
    if base in CHECKED_FIRST:
        checker = batch_call(base, build(base, vocab_spec(name)))
        for i, docs in enumerate(batches):
            tokens, lengths = flat(base, checker(docs))
            ref_tokens, ref_lengths = flat("tiktoken", reference(docs))
            if not (tokens == ref_tokens).all() or not (lengths == ref_lengths).all():
                pytest.skip(
                    f"{base} is not exact against tiktoken on measured batch {i}: not timed"
                )
    size = sum(len(d.encode()) for d in batches[0])
    benchmark.group = f"batch {name} english"
    benchmark.extra_info.update(bytes=size, contender=contender, threads="all")
    tokens, lengths = flat(flat_of, run(check))
    ref_tokens, ref_lengths = flat("tiktoken", reference(check))
    benchmark.extra_info["exact"] = bool(
        len(tokens) == len(ref_tokens)
        and (tokens == ref_tokens).all()
        and (lengths == ref_lengths).all()
    )
    feed = iter(batches)
    benchmark.pedantic(run, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize(
    "contender", ["fastllm", "quicktok", "splintr", "tiktoken", "hf_tokenizers"]
)
def test_decode(benchmark, contender, name):
    _skip_unless(contender, name)
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


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("kind", PATHOLOGICAL)
@pytest.mark.parametrize(
    ("contender", "megabytes"), [("fastllm", 1), ("fastllm", 2), ("tiktoken", 1)]
)
def test_pathological(benchmark, contender, megabytes, kind, name):
    _skip_unless(contender, name)
    enc = encoder(contender, name)
    rounds = 3 if contender == "fastllm" else 1
    inputs = [pathological(kind, megabytes * 1_000_000, seed) for seed in range(rounds)]
    if contender == "tiktoken":
        try:
            enc.encode_ordinary(pathological(kind, megabytes * 1_000_000, rounds))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # pyo3's PanicException is a BaseException
            pytest.skip(f"tiktoken fails on this input ({type(e).__name__}: {e}): not timed")
    else:
        for i, text in enumerate(inputs):
            if encoder(contender, name).encode_ordinary(text) != _reference_ids(name, text):
                pytest.fail(f"{contender} is not exact against tiktoken on input {i}")
    benchmark.group = f"pathological {name} {kind}"
    benchmark.extra_info.update(bytes=megabytes * 1_000_000, contender=contender, threads=1)
    benchmark.extra_info["exact"] = contender != "tiktoken"
    feed = iter(inputs)
    benchmark.pedantic(
        enc.encode_ordinary, setup=lambda: ((next(feed),), {}), rounds=rounds, iterations=1
    )


def _reference_ids(name: str, text: str) -> list[int]:
    """tiktoken's ids for ``text``. Where tiktoken's regex fails on it (o200k_base's 1 MB of
    spaces overflows its stack and the Rust code panics), the same pattern is applied by the
    ``regex`` module (a tiktoken dependency) and each piece merged by tiktoken's own BPE."""
    reference = encoder("tiktoken", name)
    try:
        return list(reference.encode_ordinary(text))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # pyo3's PanicException is a BaseException
        import regex

        return [
            token
            for piece in regex.findall(reference._pat_str, text)
            for token in reference._encode_single_piece(piece)
        ]
