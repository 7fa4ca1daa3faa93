"""BPE training: same ranks as a naive reference trainer, deterministic on any thread count,
save/load round trip, tiktoken parity of the trained encoding, errors, the CLI, ``explain``."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastllm
from fastllm import corpus
from fastllm import train as T
from fastllm._pretok import resolve_pattern

regex = pytest.importorskip("regex")
tiktoken = pytest.importorskip("tiktoken")
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

EOT = "<|endoftext|>"


# ---- the reference: naive BPE, recounting every pair at every step ----


def reference_train(
    texts: Iterable[str],
    vocab_size: int,
    pat_str: str = "gpt2",
    special_tokens: tuple[str, ...] = (EOT,),
) -> list[bytes]:
    """Token bytes by rank, by the documented rule, as slowly and plainly as possible.

    Special tokens are cut out of the text; each piece of the pattern is a word of byte ids. Each
    step counts every adjacent pair (overlapping ones too) weighted by the word's count, merges
    the most frequent pair (ties: the smallest (left id, right id)) left to right in every word,
    and stops at ``vocab_size - len(special_tokens)`` tokens or when no pair is left.
    """
    pattern = regex.compile(resolve_pattern(pat_str))
    specials = sorted(special_tokens, key=len, reverse=True)
    splitter = re.compile("|".join(map(re.escape, specials))) if specials else None
    counts: Counter[bytes] = Counter()
    for text in texts:
        for segment in splitter.split(text) if splitter else [text]:
            counts.update(piece.encode("utf-8") for piece in pattern.findall(segment))
    words = [(list(piece), n) for piece, n in counts.items()]
    vocab = [bytes([b]) for b in range(256)]
    while len(vocab) < vocab_size - len(special_tokens):
        stats: Counter[tuple[int, int]] = Counter()
        for word, n in words:
            for pair in zip(word, word[1:]):
                stats[pair] += n
        if not stats:
            break
        best = min(stats, key=lambda pair: (-stats[pair], pair))
        token = len(vocab)
        vocab.append(vocab[best[0]] + vocab[best[1]])
        merged = []
        for word, n in words:
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(token)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged.append((out, n))
        words = merged
    return vocab


def tokens_of(enc: fastllm.Encoding) -> list[bytes]:
    ranks = enc._mergeable_ranks
    return sorted(ranks, key=ranks.__getitem__)


def quiet_train(*args, **kwargs) -> fastllm.Encoding:
    """``train_bpe`` without the warning for a corpus that runs out of pairs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return T.train_bpe(*args, **kwargs)


# ---- same ranks as the reference ----

SMALL_CORPORA = {
    "english": lambda: [corpus.english_prose(30_000)],
    "python": lambda: [corpus.python_source(30_000)],
    "non_latin": lambda: [corpus.non_latin_text(15_000)],
    "documents": lambda: corpus.english_prose(20_000).split("\n\n"),
    "with_specials": lambda: [f"doc {i}: hello world{EOT}" for i in range(50)],
    "whitespace": lambda: [
        "\n".join(" " * (i % 17) + "x" * (i % 5) + "\t" * (i % 3) for i in range(300))
    ],
    "repeats": lambda: ["a" * n + " " + "ab" * n for n in range(1, 60)],
}


@pytest.mark.parametrize("pat_str", ["gpt2", "cl100k", "o200k"])
@pytest.mark.parametrize("kind", sorted(SMALL_CORPORA))
def test_same_ranks_as_reference(kind, pat_str):
    texts = SMALL_CORPORA[kind]()
    enc = quiet_train(texts, 420, pat_str=pat_str)
    assert tokens_of(enc) == reference_train(texts, 420, pat_str)
    assert enc.special_tokens_set == {EOT}
    assert enc.eot_token == enc.n_vocab - 1


def test_same_ranks_as_reference_with_a_custom_pattern():
    texts = [corpus.python_source(20_000)]
    enc = quiet_train(texts, 400, pat_str=r"\S+|\s+", special_tokens=())
    assert tokens_of(enc) == reference_train(texts, 400, r"\S+|\s+", ())
    assert enc._pat_str == r"\S+|\s+"


ALPHABET = st.sampled_from(
    [*"aab bcd  eé\n\t.,'s 0123 XYZ", "'ll", "'re", "  ", "\r\n", "ü", "ж", "中", "😀", EOT]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.lists(ALPHABET, max_size=60).map("".join), min_size=1, max_size=6),
    vocab_size=st.integers(257, 330),
    pat_str=st.sampled_from(["gpt2", "cl100k", "o200k"]),
)
def test_same_ranks_as_reference_on_generated_text(texts, vocab_size, pat_str):
    expected = reference_train(texts, vocab_size, pat_str)
    if all(not t.replace(EOT, "") for t in texts):
        with pytest.raises(ValueError, match="corpus is empty"):
            T.train_bpe(texts, vocab_size, pat_str=pat_str)
        return
    enc = quiet_train(texts, vocab_size, pat_str=pat_str)
    assert tokens_of(enc) == expected
    assert enc.n_vocab == len(expected) + 1


def test_tie_break_is_smallest_pair_of_ids():
    # (a, b) and (b, c) both occur 3 times: (97, 98) < (98, 99), so "ab" comes first. Bytes
    # order would agree here; (c, a) vs (a, c) below shows the rule is on ids, left id first.
    enc = quiet_train(["abc abc abc"], 257, special_tokens=())
    assert enc.decode_single_token_bytes(256) == b"ab"
    enc = quiet_train(["ca", "ac"], 257, special_tokens=())
    assert enc.decode_single_token_bytes(256) == b"ac"
    # Frequency first: (c, a) twice beats (a, c) once.
    enc = quiet_train(["ca ca", "ac"], 257, special_tokens=(), pat_str=r"\S+|\s+")
    assert enc.decode_single_token_bytes(256) == b"ca"


def test_overlapping_pairs_count_and_merge_left_to_right():
    # "aaaa": (a, a) 3 times; merged left to right into "aa aa", then "aaaa".
    enc = quiet_train(["aaaa"], 258, special_tokens=())
    assert tokens_of(enc)[256:] == [b"aa", b"aaaa"]
    assert enc.encode("aaaaa") == [257, 97]


def test_long_pieces_merge_into_doubling_runs():
    """Pieces of 300,000 and 400,000 bytes: every merge doubles a run (the structure, not a
    clock: a wrong incremental pair count would learn other tokens)."""
    text = "7" * 300_000 + " " + "ab" * 200_000
    enc = T.train_bpe([text], 256 + 24, special_tokens=())
    assert enc.decode(enc.encode(text)) == text
    assert len(enc.encode("ab" * 200_000)) < 1000
    learned = tokens_of(enc)[256:]
    assert learned[:5] == [b"77", b"ab", b"abab", b"7777", b"abababab"]
    assert set(learned) == {b"7" * 2**k for k in range(1, 13)} | {b"ab" * 2**k for k in range(12)}
    # The longest run token as often as it fits, then one token per set bit of the rest.
    assert len(enc.encode("ab" * 200_000)) == 100
    assert len(enc.encode("7" * 300_000)) == 78


# ---- streaming, files, threads ----


@pytest.fixture(scope="module")
def medium_text() -> str:
    return corpus.english_prose(300_000) + "\n" + corpus.python_source(300_000)


def test_same_ranks_on_any_thread_count(medium_text):
    docs = medium_text.split("\n\n")
    first = tokens_of(T.train_bpe(docs, 3000, num_threads=1))
    for threads in (2, 3, 8):
        assert tokens_of(T.train_bpe(docs, 3000, num_threads=threads)) == first
    before = fastllm.get_num_threads()
    try:
        fastllm.set_num_threads(1)
        assert tokens_of(T.train_bpe(docs, 3000)) == first
    finally:
        fastllm.set_num_threads(before)


def test_streams_an_iterable_in_batches(medium_text, monkeypatch):
    docs = medium_text.split("\n\n")
    one_batch = tokens_of(T.train_bpe(docs, 2000))
    monkeypatch.setattr(T, "BATCH_CHARS", 10_000)
    monkeypatch.setattr(T, "BATCH_TEXTS", 50)
    batches = []
    add_texts = fastllm._fastllm.BpeTrainer.add_texts

    def spy(self, texts):
        batches.append(len(texts))
        return add_texts(self, texts)

    monkeypatch.setattr(fastllm._fastllm.BpeTrainer, "add_texts", spy)

    def generate() -> Iterator[str]:
        yield from docs

    assert tokens_of(T.train_bpe(generate(), 2000)) == one_batch
    assert sum(batches) == len(docs)
    assert len(batches) > 10
    assert max(batches) <= 50


def test_files_and_texts_train_alike(tmp_path, medium_text):
    paths = []
    for i, part in enumerate([medium_text[:200_000], medium_text[200_000:], "", "x y z"]):
        path = tmp_path / f"part{i}.txt"
        path.write_text(part, encoding="utf-8")
        paths.append(path)
    texts = [p.read_text(encoding="utf-8") for p in paths]
    from_files = T.train_bpe(paths, 2500)
    assert tokens_of(from_files) == tokens_of(T.train_bpe(texts, 2500))
    mixed = T.train_bpe([paths[0], texts[1], paths[3]], 2500)
    assert tokens_of(mixed) == tokens_of(T.train_bpe([texts[0], texts[1], texts[3]], 2500))
    assert tokens_of(T.train_bpe(paths[0], 600)) == tokens_of(T.train_bpe(texts[0], 600))


def test_file_progress(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.txt"
        path.write_text(f"hello world {i} " * 100, encoding="utf-8")
        paths.append(path)
    calls: list[tuple[int, int]] = []
    T.train_with_stats(paths, 260, file_progress=lambda *args: calls.append(args))
    assert calls[-1] == (3, 3 * 1400)

    def stop(files: int, n_bytes: int) -> None:
        raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        T.train_with_stats(paths, 260, file_progress=stop)


def test_a_single_string_is_one_text():
    assert tokens_of(T.train_bpe("hello hello", 258)) == tokens_of(
        T.train_bpe(["hello hello"], 258)
    )


def test_lone_surrogates_become_replacement_characters():
    enc = quiet_train(["ab\ud800ab ab"], 300)
    assert tokens_of(enc) == tokens_of(quiet_train(["ab\ufffdab ab"], 300))


def test_progress_is_reported_and_can_stop_training(medium_text):
    calls: list[tuple[int, int]] = []
    T.train_bpe([medium_text], 4000, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (4000 - 257, 4000 - 257)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def stop(done: int, total: int) -> None:
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        T.train_bpe([medium_text], 4000, progress=stop)


def test_stats():
    enc, stats = T.train_with_stats(["hello world" + EOT, "hello"], 260)
    assert stats == T.TrainStats(texts=2, bytes=16, unique_pieces=2, learned=3, steps=3)
    assert enc.n_vocab == 260


# ---- the trained Encoding, save / load, tiktoken parity ----


@pytest.fixture(scope="module", params=["gpt2", "cl100k", "o200k"])
def trained(request) -> fastllm.Encoding:
    train_text = corpus.english_prose(200_000) + corpus.python_source(200_000)
    train_text += corpus.non_latin_text(100_000)
    return T.train_bpe(
        [train_text],
        3000,
        pat_str=request.param,
        special_tokens=(EOT, "<|fim|>"),
        name=f"toy-{request.param}",
    )


def held_out_texts() -> list[str]:
    return [
        corpus.english_prose(100_000, skip_bytes=1_500_000),
        corpus.python_source(100_000, skip_bytes=5_000_000),
        corpus.non_latin_text(50_000, seed=7),
        "Hello<|endoftext|>world<|fim|> it's 2024!\r\n\n   spaces   \t\ttabs 12345678 😀😀",
    ]


def test_trained_encoding_basics(trained):
    assert trained.n_vocab == 3000
    assert trained.max_token_value == 2999
    assert trained._special_tokens == {EOT: 2998, "<|fim|>": 2999}
    assert tokens_of(trained)[:256] == [bytes([b]) for b in range(256)]
    for text in held_out_texts():
        assert trained.decode(trained.encode(text, allowed_special="all")) == text


def test_save_and_load_round_trip(trained, tmp_path):
    path = tmp_path / "sub" / "tok.tiktoken"
    path.parent.mkdir()
    T.save_encoding(trained, path)
    meta = json.loads((tmp_path / "sub" / "tok.tiktoken.json").read_text(encoding="utf-8"))
    assert meta["pat_str"] == trained._pat_str
    assert meta["special_tokens"] == {EOT: 2998, "<|fim|>": 2999}
    assert meta["n_vocab"] == 3000
    loaded = T.load_encoding(path)
    assert loaded.name == trained.name
    assert loaded._pat_str == trained._pat_str
    assert loaded._special_tokens == trained._special_tokens
    assert loaded._mergeable_ranks == trained._mergeable_ranks
    assert T.load_encoding(str(path), name="other").name == "other"
    text = held_out_texts()[3]
    assert loaded.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")
    # tiktoken's own loader reads the rank file.
    assert load_tiktoken_bpe(str(path)) == trained._mergeable_ranks


def test_tiktoken_built_from_saved_files_gives_the_same_ids(trained, tmp_path):
    path = tmp_path / "tok.tiktoken"
    T.save_encoding(trained, path)
    meta = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    reference = tiktoken.Encoding(
        name=meta["name"],
        pat_str=meta["pat_str"],
        mergeable_ranks=load_tiktoken_bpe(str(path), expected_hash=meta["ranks_sha256"]),
        special_tokens=meta["special_tokens"],
    )
    for text in held_out_texts():
        assert trained.encode_ordinary(text) == reference.encode_ordinary(text)
        assert trained.encode(text, allowed_special="all") == reference.encode(
            text, allowed_special="all"
        )
    batch = held_out_texts()[:3]
    assert trained.encode_ordinary_batch(batch) == reference.encode_ordinary_batch(batch)


def test_load_checks_the_sha256(trained, tmp_path):
    path = tmp_path / "tok.tiktoken"
    T.save_encoding(trained, path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(ValueError, match="sha256"):
        T.load_encoding(path)


def test_load_errors(tmp_path):
    path = tmp_path / "tok.tiktoken"
    with pytest.raises(FileNotFoundError, match=r"tok\.tiktoken\.json"):
        T.load_encoding(path)
    sidecar = tmp_path / "tok.tiktoken.json"
    sidecar.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        T.load_encoding(path)
    sidecar.write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a fastllm encoding sidecar"):
        T.load_encoding(path)
    enc = T.train_bpe(["hello hello"], 258)
    T.save_encoding(enc, path)
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    sidecar.write_text(json.dumps({**meta, "pat_str": 5}), encoding="utf-8")
    with pytest.raises(ValueError, match="'pat_str'"):
        T.load_encoding(path)
    sidecar.write_text(json.dumps({**meta, "version": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="version 99"):
        T.load_encoding(path)


def test_trained_encoding_pickles(trained):
    import pickle

    copy = pickle.loads(pickle.dumps(trained))
    assert copy.name == trained.name
    assert copy._mergeable_ranks == trained._mergeable_ranks
    assert copy._special_tokens == trained._special_tokens
    text = held_out_texts()[3]
    assert copy.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")


def test_saves_any_encoding(tmp_path):
    gpt2 = fastllm.get_encoding("gpt2")
    path = tmp_path / "gpt2.tiktoken"
    T.save_encoding(gpt2, path)
    loaded = T.load_encoding(path)
    text = held_out_texts()[3]
    assert loaded.encode(text, allowed_special="all") == gpt2.encode(text, allowed_special="all")
    assert loaded.n_vocab == gpt2.n_vocab


# ---- errors ----


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match=r"vocab_size=257 .* at least 258"):
        T.train_bpe(["hello"], 257, special_tokens=(EOT, "<|b|>"))
    with pytest.raises(ValueError, match="vocab_size=100"):
        T.train_bpe(["hello"], 100, special_tokens=())
    with pytest.raises(ValueError, match="vocab_size=-1"):
        T.train_bpe(["hello"], -1)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        T.train_bpe(["hello"], 300.0)  # type: ignore[arg-type]


def test_special_token_that_is_a_learned_token():
    # Every byte is a token, so a one-byte special token always collides.
    with pytest.raises(ValueError, match="special token 'a' is one byte"):
        T.train_bpe(["hello"], 300, special_tokens=("a",))
    # Longer special tokens are cut out of the text first, so they are never learned.
    enc = quiet_train(["ab ab ab xy"], 300, special_tokens=("ab",))
    assert b"ab" not in enc._mergeable_ranks
    assert enc.encode("ab", allowed_special="all") == [enc.n_vocab - 1]


def test_bad_special_tokens():
    with pytest.raises(ValueError, match=re.escape("'<|x|>' is given twice")):
        T.train_bpe(["hello"], 300, special_tokens=("<|x|>", "<|x|>"))
    with pytest.raises(ValueError, match="empty"):
        T.train_bpe(["hello"], 300, special_tokens=("",))
    with pytest.raises(TypeError, match="special tokens must be str"):
        T.train_bpe(["hello"], 300, special_tokens=(b"<|x|>",))  # type: ignore[arg-type]
    # A bare string is one special token, not a string of one-character tokens.
    assert quiet_train(["hello"], 300, special_tokens=EOT).special_tokens_set == {EOT}


@pytest.mark.parametrize("texts", [[], [""], [EOT, EOT + EOT], iter([])])
def test_empty_corpus(texts):
    with pytest.raises(ValueError, match="corpus is empty"):
        T.train_bpe(texts, 300)


def test_pattern_that_does_not_compile():
    with pytest.raises(ValueError, match=r"invalid pat_str '\(unclosed'|\"\(unclosed\""):
        T.train_bpe(["hello"], 300, pat_str="(unclosed")


def test_bad_items_and_files(tmp_path):
    with pytest.raises(TypeError, match="item 1 is bytes"):
        T.train_bpe(["ok", b"bytes"], 300)  # type: ignore[list-item]
    with pytest.raises(OSError, match=r"missing\.txt"):
        T.train_bpe([tmp_path / "missing.txt"], 300)
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"hello \xff\xfe world")
    with pytest.raises(ValueError, match=r"data.bin is not UTF-8 text: invalid byte at offset 6"):
        T.train_bpe([binary], 300)


def test_warns_when_the_corpus_runs_out_of_pairs():
    with pytest.warns(RuntimeWarning, match="ran out of pairs.*vocab_size=1000"):
        enc = T.train_bpe(["ab ab"], 1000)
    assert enc.n_vocab == 256 + 2 + 1


# ---- explain ----


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_explain_gives_the_ids_encode_gives(name):
    enc = fastllm.get_encoding(name)
    for text in held_out_texts():
        text = text[:3000]
        assert T.explain(enc, text).ids == enc.encode(text, allowed_special="all")


def test_explain_trained(trained):
    text = held_out_texts()[3]
    explanation = T.explain(trained, text)
    assert explanation.ids == trained.encode(text, allowed_special="all")
    assert "".join(p.piece for p in explanation.pieces) == text
    specials = [p for p in explanation.pieces if p.special]
    assert [p.piece for p in specials] == [EOT, "<|fim|>"]
    for piece in explanation.pieces:
        if not piece.special:
            assert b"".join(piece.steps[0]) == piece.piece.encode("utf-8")
            assert len(piece.steps) == len(piece.merges) + 1
            assert [trained._mergeable_ranks[b] for b in piece.steps[-1]] == list(piece.ids)
    rendered = str(explanation)
    assert rendered.splitlines()[0].endswith(f"{len(explanation.ids)} tokens")
    assert f"{EOT!r} -> 1 token [2998]  (special token)" in rendered
    assert "␣" in rendered


@settings(max_examples=60, deadline=None)
@given(text=st.lists(ALPHABET, max_size=40).map("".join))
def test_explain_on_generated_text(text):
    enc = fastllm.get_encoding("cl100k_base")
    assert T.explain(enc, text).ids == enc.encode(text, allowed_special="all")
    str(T.explain(enc, text))


