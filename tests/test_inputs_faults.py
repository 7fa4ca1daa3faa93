"""Hostile inputs of the corpus runs (issue 14) and the walker's rough edges (issue 12): inputs
are regular files (a FIFO never hangs, ``/dev/zero`` never grows), a file changed during a run or
between a stop and its resume is an error or a fresh start, symlinks and loops are followed once,
binary files are skipped with a count, the output is never an input, a decompression bomb gives a
clear result under a memory cap, and a missing optional dependency names its extra.

Where a crash or a hang is what is tested, the run is a subprocess with a timeout (and a memory
cap via ``resource.setrlimit``)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastllm.tokenfile as tk
from conftest import reference_encoding
from fastllm import samples
from fastllm._inputs import resolve_report
from fastllm.tokenfile import count_tokens_in_files, resolve_inputs, tokenize_files

unix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def _python(
    code: str, *, timeout: float = 60, memory_mb: int | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    prelude = ""
    if memory_mb is not None:
        prelude = (
            "import resource\n"
            f"resource.setrlimit(resource.RLIMIT_AS, ({memory_mb << 20}, {memory_mb << 20}))\n"
        )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


# ---- inputs are regular files ----


@unix_only
def test_a_named_fifo_is_rejected_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    run = _python(
        f"""
        import fastllm
        try:
            fastllm.count_tokens_in_files({str(fifo)!r})
        except ValueError as e:
            print("ERR", e)
        """,
        timeout=60,
    )
    assert "ERR" in run.stdout and "FIFO" in run.stdout and "regular files" in run.stdout


@unix_only
def test_a_fifo_inside_a_directory_is_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    os.mkfifo(tmp_path / "b.txt")
    run = _python(
        f"""
        from fastllm._inputs import resolve_report
        found = resolve_report({str(tmp_path)!r})
        print(len(found.files), found.special, found.skipped())
        """,
        timeout=60,
    )
    assert run.stdout.split()[:2] == ["1", "1"], run.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "fastllm", "count", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "skipped 1 FIFO/device/socket" in cli.stdout


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_rejected(tmp_path: Path) -> None:
    run = _python(
        """
        import fastllm
        try:
            fastllm.count_tokens_in_files("/dev/zero")
        except ValueError as e:
            print("ERR", e)
        """,
        timeout=60,
        memory_mb=2048,
    )
    assert "ERR /dev/zero: it is a character device" in run.stdout, run.stderr


# ---- identity: a file changed during a run, or between a stop and its resume ----


def _big_text(path: Path, mb: int = 12) -> None:
    text = samples.english_prose(2_000_000)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(mb // 2):
            f.write(text)


@pytest.mark.parametrize("change", ["append", "truncate"])
def test_a_file_changed_while_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(tk, "_JOB_BYTES", 64 << 10)
    src = tmp_path / "growing.txt"
    _big_text(src)
    size = src.stat().st_size

    def meddle(done: int, total: int, tokens: int, documents: int) -> None:
        if src.stat().st_size == size:
            if change == "append":
                with src.open("a") as f:
                    f.write("more text appended during the run\n")
            else:
                os.truncate(src, size // 2)

    out = tmp_path / "g.bin"
    with pytest.raises(OSError, match=r"growing\.txt.*the file changed"):
        tokenize_files(src, out, num_threads=1, progress=meddle)
    assert not out.exists()


def test_a_same_size_same_mtime_edit_before_resume_is_seen(tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    _big_text(src, mb=8)
    out = tmp_path / "b.bin"

    def stop(done: int, total: int, tokens: int, documents: int) -> None:
        if tokens:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokenize_files(src, out, num_threads=1, checkpoint_interval=0.0, progress=stop)
    assert Path(f"{out}.partial.json").exists()
    st = src.stat()
    with src.open("r+b") as f:  # same size, same mtime, other text at the head
        head = f.read(5)
        f.seek(0)
        f.write(bytes(reversed(head)))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert src.stat().st_mtime_ns == st.st_mtime_ns
    stats = tokenize_files(src, out)
    assert not stats.resumed and stats.note and "not the same file" in stats.note
    ref = reference_encoding("gpt2")
    text = src.read_text(encoding="utf-8")
    assert np.fromfile(out, np.uint16).tolist() == [*ref.encode_ordinary(text), ref.eot_token]


# ---- symlinks, loops, duplicates ----


@unix_only
def test_symlink_loops_are_followed_once(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("alpha")
    (root / "sub" / "loop").symlink_to(root)
    (root / "b.txt").write_text("beta")
    names = sorted(p.name for p in resolve_inputs(root))
    assert names == ["a.txt", "b.txt"]
    run = _python(
        f"""
        from fastllm._inputs import resolve
        print(len(resolve({str(root / "**" / "*.txt")!r})))
        """,
        timeout=60,
    )
    assert run.stdout.strip() == "2", run.stderr


@unix_only
def test_a_file_reached_by_two_paths_counts_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Hello, world!")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    found = resolve_report([tmp_path / "a.txt", tmp_path / "link.txt", tmp_path])
    assert [Path(f).name for f in found.files] == ["a.txt"]
    stats = count_tokens_in_files([tmp_path, tmp_path / "link.txt"], eot=False)
    assert stats.tokens == 4 and len(stats.files) == 1


# ---- binary files ----


def test_binary_files_are_skipped_with_a_count_even_with_errors_replace(tmp_path: Path) -> None:
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "a.txt").write_text("some text")
    (tree / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(500))
    (tree / "data.bin").write_bytes(b"\x00" * 100)
    for command in (
        ["count"],
        ["count", "--errors", "replace"],
        ["tokenize", "-o", str(tmp_path / "t.bin")],
        ["train-bpe", "--vocab-size", "260", "-o", str(tmp_path / "bpe.tiktoken")],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "fastllm", *command, str(tree)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert "skipped 2 binary files" in run.stdout, run.stdout


# ---- the output is never an input ----


def test_output_named_as_input_says_so(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("text")
    said = r"a\.txt('? is this run's output|'? is one of the inputs)"
    with pytest.raises(ValueError, match=said):
        tokenize_files(src, src)
    assert src.read_text() == "text"
    run = subprocess.run(
        [sys.executable, "-m", "fastllm", "tokenize", "a.txt", "-o", "a.txt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1 and "this run's output" in run.stderr
    assert "no input files found" not in run.stderr


# ---- a decompression bomb under a memory cap ----


def test_gzip_of_128_mib_of_nul_bytes_does_not_abort(tmp_path: Path) -> None:
    bomb = tmp_path / "zeros.txt.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        block = b"\0" * (1 << 20)
        for _ in range(128):
            f.write(block)
    run = _python(
        f"""
        import fastllm
        try:
            stats = fastllm.count_tokens_in_files({str(bomb)!r}, num_threads=1)
            print("OK", stats.tokens)
        except MemoryError as e:
            print("MEMORY", e)
        """,
        timeout=300,
        memory_mb=3072,
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.startswith(("OK", "MEMORY")), run.stdout


# ---- optional dependencies ----


def test_missing_torch_names_the_extra() -> None:
    run = _python(
        """
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        try:
            import fastllm.data
        except ImportError as e:
            print("ERR", e)
        """
    )
    assert "pip install 'fastllm[torch]'" in run.stdout, run.stderr
