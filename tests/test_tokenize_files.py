"""``fastllm.tokenize_files`` and ``fastllm.count_tokens_in_files``: exact tokens, output format,
every bad input, stops (Ctrl-C, SIGTERM, SIGKILL, full disk) and resume. The commands
``fastllm tokenize`` and ``fastllm count`` are tested in test_cli.py."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastllm
import fastllm.tokenfile as tk
from conftest import reference_encoding
from fastllm import corpus
from fastllm.tokenfile import (
    count_tokens_in_files,
    index_path,
    read_sidecar,
    resolve_inputs,
    sidecar_path,
    tokenize_files,
)
from tokenfile_runs import assert_stopped_cleanly, start, tokens, wait_for_progress

ROOT = Path(__file__).resolve().parent.parent


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


def _reference(name: str, docs: list[str], eot: bool = True) -> tuple[list[int], list[int]]:
    """tiktoken's encode_ordinary of each document (+ EOT), flat, and the document starts."""
    ref = reference_encoding(name)
    tokens: list[int] = []
    starts = []
    for doc in docs:
        starts.append(len(tokens))
        tokens.extend(ref.encode_ordinary(doc))
        if eot:
            tokens.append(ref.eot_token)
    return tokens, [*starts, len(tokens)]


@pytest.fixture(autouse=True)
def small_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs of 64 kB, so that the test corpora cross many job boundaries and cuts."""
    monkeypatch.setattr(tk, "_JOB_BYTES", 64 << 10)


def _corpus_dir(root: Path) -> tuple[list[Path], list[str]]:
    """A directory of text, JSONL, .gz and .zst files; returns the inputs and the documents in
    the order tokenize_files reads them."""
    root.mkdir(parents=True, exist_ok=True)
    prose = corpus.english_prose(300_000)
    code = corpus.python_source(200_000)
    foreign = corpus.non_latin_text(150_000)
    records = [p for p in corpus.english_prose(120_000, skip_bytes=300_000).split("\n\n") if p]
    records += ["", " leading space", "tabs\tand\r\nCRLF", "<|endoftext|> as text", "\ufeffbom"]
    lines = "".join(
        json.dumps({"id": i, "text": r, "meta": {"n": i}}) + "\n" for i, r in enumerate(records)
    )
    (root / "a_prose.txt").write_text(prose, encoding="utf-8", newline="")
    (root / "b_code.py.gz").write_bytes(gzip.compress(code.encode("utf-8")))
    (root / "c_records.jsonl").write_text(lines + "\n   \n", encoding="utf-8", newline="")
    (root / "d_foreign.txt").write_text(foreign, encoding="utf-8", newline="")
    (root / "e_empty.txt").write_bytes(b"")
    sub = root / "sub"
    sub.mkdir(exist_ok=True)
    half = len(records) // 2
    more = "".join(json.dumps({"text": r}) + "\n" for r in records[:half])
    try:
        (sub / "f_more.jsonl.zst").write_bytes(_zstd(more.encode("utf-8")))
        zst_docs = records[:half]
    except pytest.skip.Exception:
        (sub / "f_more.jsonl.gz").write_bytes(gzip.compress(more.encode("utf-8")))
        zst_docs = records[:half]
    (root / ".hidden.txt").write_text("never read")
    docs = [prose, code, *records, foreign, "", *zst_docs]
    return resolve_inputs(root), docs


# ---- acceptance: exact tokens, in order, text + JSONL + compressed ----


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_tokens_equal_tiktoken_per_document_plus_eot(tmp_path, name):
    files, docs = _corpus_dir(tmp_path / "in")
    out = tmp_path / f"{name}.bin"
    stats = tokenize_files(tmp_path / "in", out, encoding=name)
    want, starts = _reference(name, docs)
    got = tokens(out)
    assert got.dtype == (np.uint16 if name == "gpt2" else np.uint32)
    assert got.tolist() == want
    assert np.fromfile(index_path(out), dtype="<u8").tolist() == starts
    meta = read_sidecar(out)
    enc = fastllm.get_encoding(name)
    from fastllm.registry import BUNDLED

    assert meta["encoding"]["name"] == name
    assert meta["encoding"]["vocab_sha256"] == BUNDLED[name].sha256
    assert meta["encoding"]["n_vocab"] == enc.n_vocab
    assert meta["dtype"] == got.dtype.name
    assert meta["token_count"] == len(want) == stats.tokens
    assert meta["document_count"] == len(docs) == stats.documents
    assert meta["eot_token"] == enc.eot_token
    assert [Path(i["path"]) for i in meta["inputs"]] == files
    assert [i["bytes"] for i in meta["inputs"]] == [f.stat().st_size for f in files]
    assert sum(i["tokens"] for i in meta["inputs"]) == len(want)
    assert meta["index"] == {
        "file": f"{name}.bin.idx",
        "dtype": "uint64",
        "entries": len(docs) + 1,
        "meaning": meta["index"]["meaning"],
    }
    assert not any(
        p.name.endswith((".partial", ".partial.json", ".tmp")) for p in tmp_path.iterdir()
    )
    # Documents read back through the index decode to the inputs.
    docs_back = [enc.decode(got[a : b - 1].tolist()) for a, b in zip(starts, starts[1:])]
    assert docs_back == docs


def test_same_tokens_whatever_the_threads_and_job_size(tmp_path, monkeypatch):
    _corpus_dir(tmp_path / "in")
    outputs = []
    for threads, job in [(1, 1 << 20), (2, 4096), (3, 777)]:
        monkeypatch.setattr(tk, "_JOB_BYTES", job)
        out = tmp_path / f"o{threads}.bin"
        tokenize_files(tmp_path / "in", out, num_threads=threads)
        outputs.append((out.read_bytes(), index_path(out).read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_no_eot_text_format_and_field(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"body": "one two"}\n{"body": "three"}\n')
    out = tmp_path / "o.bin"
    stats = tokenize_files(tmp_path / "a.jsonl", out, field="body", eot=False)
    want, _ = _reference("gpt2", ["one two", "three"], eot=False)
    assert tokens(out).tolist() == want and stats.documents == 2
    # format="text" reads the same file as one document.
    tokenize_files(tmp_path / "a.jsonl", out, format="text", resume=False)
    text = (tmp_path / "a.jsonl").read_text()
    assert tokens(out).tolist() == _reference("gpt2", [text])[0]


def test_custom_encoding_and_one_without_eot(tmp_path):
    (tmp_path / "a.txt").write_text("abcab")
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256}
    toy = fastllm.Encoding("toy", pat_str="r50k", mergeable_ranks=ranks, special_tokens={})
    with pytest.raises(ValueError, match="no <\\|endoftext\\|> token"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", encoding=toy)
    stats = tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", encoding=toy, eot=False)
    assert tokens(tmp_path / "o.bin").tolist() == [256, 99, 256]
    assert stats.encoding == "toy" and stats.dtype == "uint16"


def test_count_matches_tokenize(tmp_path):
    files, docs = _corpus_dir(tmp_path / "in")
    stats = count_tokens_in_files(tmp_path / "in")
    written = tokenize_files(tmp_path / "in", tmp_path / "o.bin")
    assert stats.tokens == written.tokens and stats.documents == len(docs)
    assert [f.path for f in stats.files] == files
    meta = read_sidecar(tmp_path / "o.bin")
    assert [f.tokens for f in stats.files] == [i["tokens"] for i in meta["inputs"]]
    no_eot = count_tokens_in_files(tmp_path / "in", eot=False)
    assert no_eot.tokens == stats.tokens - len(docs)


def test_progress_callback_and_summary(tmp_path):
    _corpus_dir(tmp_path / "in")
    calls = []
    stats = tokenize_files(tmp_path / "in", tmp_path / "o.bin", progress=lambda *a: calls.append(a))
    done, total, tokens, documents = calls[-1]
    assert done == total == stats.input_bytes and tokens == stats.tokens
    assert documents == stats.documents
    line = stats.summary()
    assert line.startswith(f"wrote {tmp_path / 'o.bin'}: {stats.tokens:,} tokens (uint16, gpt2)")
    again = tokenize_files(tmp_path / "in", tmp_path / "o.bin")
    assert again.up_to_date and "is up to date" in again.summary()
    assert again.tokens == stats.tokens


# ---- bad input: clear errors, nothing lost ----


def test_invalid_utf8_strict_names_file_and_offset(tmp_path):
    good = "fine text\n" * 1000
    data = good.encode() + b"caf\xc3 \xff\xfe end"
    (tmp_path / "bad.txt").write_bytes(data)
    out = tmp_path / "o.bin"
    with pytest.raises(ValueError) as info:
        tokenize_files(tmp_path / "bad.txt", out)
    message = str(info.value)
    assert str(tmp_path / "bad.txt") in message
    assert f"byte offset {len(good) + 3}" in message and 'errors="replace"' in message
    assert not out.exists() and not sidecar_path(out).exists()


def test_invalid_utf8_replace_like_python_and_counted(tmp_path):
    data = b"caf\xc3 \xff\xfe end \xe2\x82 x \xed\xa0\x80 y \xf0\x9f\x98"
    (tmp_path / "bad.txt").write_bytes(data)
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "ok \xff"}\n')
    stats = tokenize_files(
        [tmp_path / "bad.txt", tmp_path / "bad.jsonl"], tmp_path / "o.bin", errors="replace"
    )
    text = data.decode("utf-8", errors="replace")
    assert stats.replaced == text.count("\ufffd") + 1
    want, _ = _reference("gpt2", [text, "ok \ufffd"])
    assert tokens(tmp_path / "o.bin").tolist() == want
    assert "invalid UTF-8 sequences replaced by U+FFFD" in stats.summary()


def test_invalid_utf8_in_a_compressed_file_reports_the_decompressed_offset(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"x" * 100_000 + b"\x80"))
    with pytest.raises(ValueError, match=r"a\.txt\.gz: invalid UTF-8 at byte offset 100000"):
        tokenize_files(tmp_path / "a.txt.gz", tmp_path / "o.bin")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"text": "a"}\n{"body": "b", "id": 2}\n', 2, 'no "text" field (found "body", "id")'),
        ('{"text": "a"}\n\n{"text": "b"\n', 3, "not valid JSON"),
        ('{"text": ["a"]}\n', 1, 'field "text" is an array, expected a string'),
        ('"just a string"\n', 1, 'expected a JSON object with a "text" field, found a string'),
    ],
)
def test_bad_jsonl_line_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    for run in (
        lambda: tokenize_files(path, tmp_path / "o.bin"),
        lambda: count_tokens_in_files(path),
    ):
        with pytest.raises(ValueError) as info:
            run()
        assert str(info.value).startswith(f"{path}, line {line}: ")
        assert message in str(info.value)
    assert not (tmp_path / "o.bin").exists()


def test_a_bad_line_late_in_a_big_file_has_the_right_line_number(tmp_path):
    lines = [json.dumps({"text": f"record {i} " * 20}) for i in range(5000)]
    lines[4321] = "{oops"
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"big\.jsonl, line 4322: not valid JSON"):
        count_tokens_in_files(tmp_path / "big.jsonl")


def test_missing_inputs_empty_input_sets_and_patterns(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no such input file or directory") as info:
        tokenize_files([tmp_path / "a.txt", tmp_path / "nope.txt"], tmp_path / "o.bin")
    assert info.value.filename == str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no file matches the pattern"):
        tokenize_files(str(tmp_path / "*.jsonl"), tmp_path / "o.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no input files found in"):
        tokenize_files(tmp_path / "empty", tmp_path / "o.bin")
    with pytest.raises(ValueError, match="no input files found"):
        count_tokens_in_files([])
    assert not (tmp_path / "o.bin.partial").exists()


def test_glob_patterns_and_directories(tmp_path):
    for name in ["x/1.txt", "x/2.txt", "x/deep/3.txt", "y.jsonl"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps({"text": name}) if name.endswith("l") else name)
    found = resolve_inputs([str(tmp_path / "x" / "*.txt"), tmp_path / "x", tmp_path / "y.jsonl"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "x/1.txt",
        "x/2.txt",
        "x/deep/3.txt",
        "y.jsonl",
    ]
    recursive = resolve_inputs(str(tmp_path / "**" / "*.txt"))
    assert len(recursive) == 3


def test_output_in_a_missing_directory_or_a_directory(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "no" / "such" / "o.bin")
    with pytest.raises(IsADirectoryError):
        tokenize_files(tmp_path / "a.txt", tmp_path)


def test_unreadable_input(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(OSError, match=r"cannot read .*a\.txt\.gz"):
        tokenize_files(tmp_path / "a.txt.gz", tmp_path / "o.bin")
    if os.geteuid() != 0:
        locked = tmp_path / "locked.txt"
        locked.write_text("secret")
        locked.chmod(0)
        with pytest.raises(OSError, match="ermission denied"):
            tokenize_files(locked, tmp_path / "o.bin")


def test_the_output_is_never_an_input(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    first = tokenize_files(tmp_path, tmp_path / "o.bin")
    (tmp_path / "b.txt").write_text("world")
    second = tokenize_files(tmp_path, tmp_path / "o.bin")
    assert (first.files, second.files) == (1, 2)
    assert not second.up_to_date and not second.resumed


def test_bad_arguments(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="errors must be"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", errors="ignore")
    with pytest.raises(ValueError, match="format must be"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", format="csv")
    with pytest.raises(ValueError, match="num_threads"):
        count_tokens_in_files(tmp_path / "a.txt", num_threads=-1)
    with pytest.raises(ValueError, match="Unknown encoding"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", encoding="nope")


# ---- resume ----


def test_a_fixed_input_resumes_after_the_work_before_it(tmp_path):
    texts = [corpus.english_prose(100_000, skip_bytes=i * 100_000) for i in range(5)]
    for i, text in enumerate(texts):
        (tmp_path / f"{i}.txt").write_text(text, newline="")
    (tmp_path / "3.txt").write_bytes(b"broken \xff")
    out = tmp_path / "o.bin"
    with pytest.raises(ValueError, match=r"3\.txt: invalid UTF-8"):
        tokenize_files(tmp_path, out)
    assert not out.exists()
    assert Path(f"{out}.partial").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="the run was stopped; rerun it to resume"):
        read_sidecar(out)
    (tmp_path / "3.txt").write_text(texts[3], newline="")
    stats = tokenize_files(tmp_path, out)
    assert stats.resumed and stats.resumed_bytes >= 2 * len(texts[0].encode())
    assert "resumed after" in stats.summary()
    assert tokens(out).tolist() == _reference("gpt2", texts)[0]


def test_changed_inputs_or_settings_start_over_and_say_why(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(corpus.english_prose(80_000, skip_bytes=i * 80_000))
    (tmp_path / "3.txt").write_bytes(b"\xff")
    with pytest.raises(ValueError):
        tokenize_files(tmp_path, tmp_path / "o.bin")
    (tmp_path / "0.txt").write_text("changed")
    (tmp_path / "3.txt").write_text("fixed")
    stats = tokenize_files(tmp_path, tmp_path / "o.bin")
    assert not stats.resumed
    assert "input 1" in stats.note and "0.txt" in stats.note

    (tmp_path / "3.txt").write_bytes(b"\xff")
    with pytest.raises(ValueError):
        tokenize_files(tmp_path, tmp_path / "o.bin")
    (tmp_path / "3.txt").write_text("fixed again")
    stats = tokenize_files(tmp_path, tmp_path / "o.bin", eot=False)
    assert not stats.resumed and "the settings differ" in stats.note


def test_no_resume_starts_over(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin")
    stats = tokenize_files(tmp_path / "a.txt", tmp_path / "o.bin", resume=False)
    assert not stats.up_to_date and not stats.resumed


# ---- stops: Ctrl-C, SIGTERM, SIGKILL, full disk ----

CHILD = textwrap.dedent(
    """
    import sys, time
    from fastllm.tokenfile import tokenize_files

    def slow(done, total, tokens, documents):
        print("progress", done, flush=True)
        time.sleep(0.3)

    stats = tokenize_files(sys.argv[1], sys.argv[2], num_threads=1, progress=slow,
                           checkpoint_interval=0.02)
    print("finished", stats.tokens, flush=True)
    """
)

def test_sigkill_leaves_nothing_that_looks_complete_and_resumes(tmp_path, big_input):
    folder, want = big_input
    out = tmp_path / "o.bin"
    with start(CHILD, folder, out) as child:
        try:
            wait_for_progress(child, out, min_checkpoint=100_000)
        finally:
            child.kill()
            child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert_stopped_cleanly(out)
    stats = tokenize_files(folder, out)
    assert stats.resumed and stats.resumed_bytes > 0
    assert tokens(out).tolist() == want
    assert np.fromfile(index_path(out), dtype="<u8")[-1] == len(want)


def test_python_api_interrupted_by_keyboard_interrupt(tmp_path, big_input):
    folder, want = big_input
    out = tmp_path / "o.bin"

    def stop(done, total, tokens, documents):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokenize_files(folder, out, num_threads=1, progress=stop)
    assert_stopped_cleanly(out)
    assert tokenize_files(folder, out).resumed
    assert tokens(out).tolist() == want


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount); removed afterwards."""
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("needs root and mount to make a small disk")
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_a_clear_error_and_resumes_once_there_is_room(tmp_path, tiny_disk):
    text = corpus.english_prose(3_000_000)
    (tmp_path / "in.txt").write_text(text, newline="")
    out = tiny_disk / "o.bin"
    with pytest.raises(OSError, match="No space left on device") as info:
        tokenize_files(tmp_path / "in.txt", out, checkpoint_interval=0)
    assert "cannot write" in str(info.value) and "rerun the same command to resume" in str(
        info.value
    )
    assert not out.exists() and not sidecar_path(out).exists()
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    stats = tokenize_files(tmp_path / "in.txt", out)
    assert stats.tokens == len(_reference("gpt2", [text])[0])
    assert tokens(out).tolist() == _reference("gpt2", [text])[0]


