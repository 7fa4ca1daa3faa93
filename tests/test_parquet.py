"""Parquet inputs of ``fastllm.tokenize_files`` / ``count_tokens_in_files`` and the CLI: exact
tokens (tiktoken's ``encode_ordinary`` + EOT per row) for each compression pyarrow writes, several
row groups, nulls and empty strings, string kinds, resume, and every bad input."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastllm.tokenfile as tk
from conftest import reference_encoding
from fastllm import samples
from fastllm.tokenfile import count_tokens_in_files, index_path, tokenize_files

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(autouse=True)
def small_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs of 32 kB, so that a file spans many jobs."""
    monkeypatch.setattr(tk, "_JOB_BYTES", 32 << 10)


def _docs() -> list[str | None]:
    """Paragraphs of prose and code, with nulls, empty strings and non-Latin text among them."""
    return list(_made_docs())


@functools.lru_cache(maxsize=1)
def _made_docs() -> tuple[str | None, ...]:
    # Made once: the samples take seconds on a busy machine.
    paragraphs = [p for p in samples.english_prose(100_000).split("\n\n") if p]
    code = samples.python_source(40_000).split("\n\n")
    foreign = samples.non_latin_text(20_000).split("\n")
    docs: list[str | None] = []
    for i, text in enumerate(paragraphs + code + foreign):
        docs.append(text)
        if i % 37 == 0:
            docs.append(None)
        if i % 41 == 0:
            docs.append("")
    docs += ["<|endoftext|> as text", " leading space", "\ufeffbom", None]
    return tuple(docs)


def _reference(docs: list[str | None]) -> tuple[list[int], list[int]]:
    ref = reference_encoding("gpt2")
    tokens: list[int] = []
    starts = []
    for doc in docs:
        starts.append(len(tokens))
        tokens.extend(ref.encode_ordinary(doc or ""))
        tokens.append(ref.eot_token)
    return tokens, [*starts, len(tokens)]


def _write(
    path: Path,
    docs: list[str | None],
    *,
    compression: str = "snappy",
    row_group_size: int = 150,
    column: str = "text",
    kind: object = None,
) -> Path:
    table = pa.table(
        {
            "id": pa.array(range(len(docs)), pa.int64()),
            column: pa.array(docs, kind or pa.string()),
        }
    )
    pq.write_table(table, path, compression=compression, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_tokens_equal_tiktoken(tmp_path: Path, compression: str) -> None:
    docs = _docs()
    src = _write(tmp_path / "shard.parquet", docs, compression=compression)
    assert pq.ParquetFile(src).num_row_groups >= 3
    out = tmp_path / "out.bin"
    stats = tokenize_files(src, out, num_threads=2)
    want, starts = _reference(docs)
    assert np.fromfile(out, np.uint16).tolist() == want
    assert np.fromfile(index_path(out), np.uint64).tolist() == starts
    assert stats.documents == len(docs)  # nulls are (empty) documents, counted
    assert stats.text_bytes == sum(len((d or "").encode()) for d in docs)
    counted = count_tokens_in_files(src)
    assert (counted.tokens, counted.documents) == (len(want), len(docs))
    assert counted.files[0].format == "parquet"


@pytest.mark.parametrize("kind", ["large_string", "string_view"])
def test_string_kinds(tmp_path: Path, kind: str) -> None:
    docs = _docs()[:400]
    src = _write(tmp_path / "k.parquet", docs, kind=getattr(pa, kind)(), row_group_size=100)
    out = tmp_path / "k.bin"
    tokenize_files(src, out)
    assert np.fromfile(out, np.uint16).tolist() == _reference(docs)[0]


def test_field_picks_the_column_and_mixes_with_text(tmp_path: Path) -> None:
    docs = ["first row", None, "third row"]
    src = _write(tmp_path / "b.parquet", docs, column="content")
    (tmp_path / "a.txt").write_text("a text file")
    out = tmp_path / "mix.bin"
    stats = tokenize_files([tmp_path / "a.txt", src], out, field="content")
    assert np.fromfile(out, np.uint16).tolist() == _reference(["a text file", *docs])[0]
    assert stats.files == 2


def test_resume_inside_a_parquet_file(tmp_path: Path) -> None:
    copies = 40  # ~6 MB: the run is stopped at its first progress call, long before its end
    docs = _docs() * copies
    src = _write(tmp_path / "r.parquet", docs, row_group_size=1000)
    out = tmp_path / "r.bin"
    calls = []

    def stop(done: int, total: int, tokens: int, documents: int) -> None:
        calls.append(done)
        if documents > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokenize_files(src, out, num_threads=1, checkpoint_interval=0.0, progress=stop)
    assert not out.exists()
    journal = json.loads(Path(f"{out}.partial.json").read_text(encoding="utf-8"))
    rows = journal["position"]["offset"]  # Parquet positions count rows
    assert journal["position"]["file"] == 0 and 0 < rows < len(docs)
    stats = tokenize_files(src, out)
    assert stats.resumed
    want = _reference(docs[: len(docs) // copies])[0] * copies
    assert np.fromfile(out, np.uint16).tolist() == want
    # The figures of the resumed part: its text (the rows done), and the file's bytes in
    # proportion to the rows, as the progress bar counts them; not the row count itself.
    done_text = sum(len((d or "").encode()) for d in docs[:rows])
    assert stats.resumed_text_bytes == journal["counts"]["text_bytes"] == done_text
    size = src.stat().st_size
    assert stats.resumed_bytes == size * rows // len(docs) != rows
    assert f"resumed after {tk._size(done_text)} of text done earlier" in stats.summary()


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    src = _write(tmp_path / "c.parquet", ["x"], column="body")
    with pytest.raises(ValueError, match=r"c\.parquet: no column \"text\" .*\"id\", \"body\""):
        count_tokens_in_files(src)


def test_non_string_column(tmp_path: Path) -> None:
    src = _write(tmp_path / "n.parquet", ["x"])
    with pytest.raises(ValueError, match=r"n\.parquet: column \"id\" holds Int64, expected"):
        count_tokens_in_files(src, field="id")


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "garbage"])
def test_damaged_file_names_it_and_leaves_nothing_complete(tmp_path: Path, damage: str) -> None:
    src = _write(tmp_path / "d.parquet", _docs(), compression="zstd")
    data = src.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupt":  # pages scrambled, footer intact
        middle = len(data) // 3
        data = (
            data[:middle]
            + bytes(b ^ 0x5A for b in data[middle : middle + 4096])
            + data[middle + 4096 :]
        )
    else:
        data = b"PAR1" + os.urandom(1000)
    src.write_bytes(data)
    out = tmp_path / "d.bin"
    with pytest.raises((OSError, ValueError), match=r"d\.parquet"):
        tokenize_files(src, out)
    assert not out.exists() and not Path(f"{out}.json").exists()


def test_cli_tokenize_parquet_with_field(tmp_path: Path) -> None:
    docs = ["one", None, "two"]
    src = _write(tmp_path / "cli.parquet", docs, column="content")
    out = tmp_path / "cli.bin"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastllm",
            "tokenize",
            str(src),
            "-o",
            str(out),
            "--field",
            "content",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert np.fromfile(out, np.uint16).tolist() == _reference(docs)[0]
    bad = subprocess.run(
        [sys.executable, "-m", "fastllm", "count", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1 and 'no column "text"' in bad.stderr and '"content"' in bad.stderr
