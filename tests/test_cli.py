"""The ``fastllm`` command line: ``encode``, ``tokenize``, ``count`` and ``train-bpe`` (run as
``python -m fastllm``), their shared walker and progress bar, and the old module paths."""

from __future__ import annotations

import importlib
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import fastllm
from fastllm import corpus
from fastllm import train as T
from fastllm.cli._common import ProgressBar, progress_bar, tokens_progress
from fastllm.cli.train_bpe import merges_bar
from fastllm.tokenfile import read_sidecar, tokenize_files
from tokenfile_runs import assert_stopped_cleanly, start, tokens, wait_for_progress


def tokens_of(enc: fastllm.Encoding) -> list[bytes]:
    ranks = enc._mergeable_ranks
    return sorted(ranks, key=ranks.__getitem__)


# ---- fastllm encode ----


@pytest.mark.parametrize(
    "args",
    [["--text", "Hello, world! It's a test."], ["--text", "x", "--encoding", "cl100k_base"]],
)
def test_cli_encode(args):
    out = subprocess.run(
        [sys.executable, "-m", "fastllm", "encode", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "bundled, offline" in out
    assert re.search(r"tokens\s+\d", out)
    assert "MB/s" in out


def test_cli_encode_default_corpus_runs():
    out = subprocess.run(
        [sys.executable, "-m", "fastllm", "encode", "--show", "3"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "standard library" in out
    tokens = int(re.search(r"tokens\s+([\d,]+)", out).group(1).replace(",", ""))
    assert tokens > 100_000


def test_cli_missing_file_is_a_clear_error(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fastllm", "encode", str(tmp_path / "nope.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "cannot read" in run.stderr and "nope.txt" in run.stderr


# ---- fastllm tokenize and fastllm count ----


CLI_CHILD = textwrap.dedent(
    """
    import sys, time
    import fastllm.cli
    from fastllm.cli._common import ProgressBar

    draw = ProgressBar.update

    def slow(self, *args):
        print("progress", args[0], flush=True)
        time.sleep(0.3)
        draw(self, *args)

    ProgressBar.update = slow
    sys.stderr.isatty = lambda: True
    sys.exit(fastllm.cli.main(["tokenize", sys.argv[1], "-o", sys.argv[2], "--threads", "1"]))
    """
)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_stopped_by_a_signal_keeps_resumable_work(tmp_path, big_input, sig, code):
    folder, want = big_input
    out = tmp_path / "o.bin"
    with start(CLI_CHILD, folder, out) as child:
        try:
            wait_for_progress(child, out)
            child.send_signal(sig)
            _, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
    assert child.returncode == code, stderr
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert f"fastllm tokenize: {word};" in stderr and "rerun the same command to resume" in stderr
    assert_stopped_cleanly(out)
    stats = tokenize_files(folder, out)
    assert stats.resumed and stats.resumed_bytes > 0
    assert tokens(out).tolist() == want


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "fastllm", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_cli_tokenize_default_corpus_then_up_to_date(tmp_path):
    run = _cli("tokenize", "-o", "std.bin", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("input      Python's standard library")
    assert lines[-1].startswith("wrote std.bin: ") and "tokens (uint16, gpt2)" in lines[-1]
    assert run.stderr == ""  # no bar: stderr is not a terminal
    meta = read_sidecar(tmp_path / "std.bin")
    assert meta["document_count"] == len(corpus.stdlib_files())
    assert meta["settings"]["errors"] == "replace"
    again = _cli("tokenize", "-o", "std.bin", "-q", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""
    again = _cli("tokenize", "-o", "std.bin", cwd=tmp_path)
    assert "std.bin is up to date" in again.stdout


def test_cli_tokenize_errors(tmp_path):
    run = _cli("tokenize", "missing.txt", "-o", "o.bin", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "fastllm tokenize: error: missing.txt: no such input file or directory"
    )
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    run = _cli("tokenize", "bad.jsonl", "-o", "o.bin", cwd=tmp_path)
    assert run.returncode == 1 and ', line 1: no "text" field' in run.stderr
    run = _cli("tokenize", "bad.jsonl", "-o", "nodir/o.bin", cwd=tmp_path)
    assert run.returncode == 1 and "does not exist; create it first" in run.stderr


def test_cli_count(tmp_path):
    (tmp_path / "a.txt").write_text("Hello, world!")
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    run = _cli("count", ".", "--no-eot", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    assert rows[1] == ["4", "1", "13", "a.txt"]
    assert rows[2] == ["2", "2", "32", "b.jsonl"]
    assert rows[3][:3] == ["6", "3", "45"] and rows[3][3] == "total:"
    total = _cli("count", "--total", cwd=tmp_path)
    assert total.returncode == 0 and len(total.stdout.splitlines()) == 3


def test_progress_bar_draws(capsys):
    bar = ProgressBar(sys.stderr, "tokenize", unit="MB", scale=1e6)
    draw = tokens_progress(bar)
    draw(0, 2_000_000, 0, 0)
    time.sleep(0.01)
    draw(1_000_000, 2_000_000, 250_000, 10)
    bar.close()
    err = capsys.readouterr().err
    assert "tokenize  50% [############------------] 1.0/2.0 MB  250,000 tokens" in err
    assert "MB/s  ETA 0:" in err and err.endswith("\n")


# ---- fastllm train-bpe ----


def run_cli(*args: str, module: str = "fastllm") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


def cli_modules() -> list[str]:
    from fastllm import cli

    parser = cli.build_parser()
    registered = "train-bpe" in parser.format_help()
    assert registered
    return ["fastllm"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "prose.txt").write_text(corpus.english_prose(150_000), encoding="utf-8")
    (folder / "code").mkdir()
    (folder / "code" / "a.py").write_text(corpus.python_source(150_000), encoding="utf-8")
    (folder / ".hidden").write_bytes(b"\xff not text, skipped")
    return folder


@pytest.mark.parametrize("module", cli_modules())
def test_cli_trains_and_writes(corpus_dir, tmp_path, module):
    out = tmp_path / "out" / "tok.tiktoken"
    result = run_cli(
        "train-bpe", str(corpus_dir), "--vocab-size", "1500", "-o", str(out), module=module
    )
    assert result.returncode == 0, result.stderr
    assert "vocabulary 1,500 tokens = 256 bytes + 1,243 learned + 1 special" in result.stdout
    assert f"wrote      {out}" in result.stdout
    assert result.stderr == ""  # not a terminal: no progress bar
    loaded = T.load_encoding(out)
    assert loaded.name == "tok"
    files = [corpus_dir / "code" / "a.py", corpus_dir / "prose.txt"]
    assert tokens_of(loaded) == tokens_of(T.train_bpe(files, 1500))


def test_cli_options(corpus_dir, tmp_path):
    out = tmp_path / "tok.tiktoken"
    result = run_cli(
        "train-bpe",
        str(corpus_dir / "prose.txt"),
        "--vocab-size=800",
        f"--output={out}",
        "--pattern=cl100k",
        "--special=<|a|>",
        "--special=<|b|>",
        "--name=mine",
        "--threads=1",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    loaded = T.load_encoding(out)
    assert loaded.name == "mine"
    assert loaded._pat_str == fastllm._fastllm.CL100K_PATTERN
    assert loaded._special_tokens == {"<|a|>": 798, "<|b|>": 799}
    result = run_cli("train-bpe", "-", "--vocab-size=300", f"-o={out}", "--no-special", "-q")
    assert result.returncode == 1  # empty stdin: empty corpus
    assert "corpus is empty" in result.stderr


def test_cli_errors(tmp_path):
    out = str(tmp_path / "tok.tiktoken")
    result = run_cli("train-bpe", str(tmp_path / "nope"), "--vocab-size", "300", "-o", out)
    assert result.returncode != 0
    # One walker for every command: the message tokenize and count give (was "no such file
    # or directory" from train-bpe's own walker).
    assert "no such input file or directory" in result.stderr
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    result = run_cli("train-bpe", str(tmp_path / "a.txt"), "--vocab-size", "10", "-o", out)
    assert result.returncode == 1
    assert "vocab_size=10" in result.stderr
    result = run_cli("train-bpe", str(tmp_path / "a.txt"), "-o", out)
    assert result.returncode == 2  # argparse: --vocab-size is required
    assert "--vocab-size" in result.stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_cli_progress_bar_on_a_terminal(corpus_dir, tmp_path):
    leader, follower = os.openpty()
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "fastllm", "train-bpe", str(corpus_dir)),
                *("--vocab-size", "3000", "-o", str(tmp_path / "t.tiktoken")),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=300,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    bar = b"".join(chunks).decode()
    assert "merges [" in bar
    assert "2,743/2,743" in bar
    assert "merges/s" in bar


def test_progress_bar_renders():
    stream = io.StringIO()
    bar = merges_bar(stream)
    bar.update(5, 10)
    bar.update(10, 10)
    bar.close()
    text = stream.getvalue()
    assert "[###############---------------] 5/10" in text
    assert "10/10" in text
    assert text.endswith("\n")


# ---- what the commands share ----


def test_train_bpe_walks_a_directory_as_tokenize_does(tmp_path):
    """One walker: __pycache__, hidden and binary files below a directory are skipped by
    ``train-bpe`` as by ``tokenize`` (train-bpe used to stop on a .pyc)."""
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("def hello():\n    return 'hello world'\n" * 50)
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-312.pyc").write_bytes(b"\xff\x00\x13" * 9)
    (tmp_path / "pkg" / "data.bin").write_bytes(b"\x00\xff" * 100)
    (tmp_path / "pkg" / ".hidden").write_bytes(b"\xff")
    out = tmp_path / "tok.tiktoken"
    result = run_cli("train-bpe", str(tmp_path / "pkg"), "--vocab-size", "270", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "input      1 file, " in result.stdout
    counted = run_cli("count", str(tmp_path / "pkg"), "--total")
    assert counted.returncode == 0, counted.stderr
    assert "total: 1 files" in counted.stdout


def test_progress_bar_is_closed_on_any_exit(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(stream, "isatty", lambda: True, raising=False)
    with pytest.raises(KeyboardInterrupt), progress_bar(False, merges_bar) as bar:
        assert bar is not None
        bar.update(1, 2)
        raise KeyboardInterrupt
    assert stream.getvalue().endswith("\n")
    with progress_bar(True, merges_bar) as bar:
        assert bar is None


def test_shared_arguments_are_declared_once():
    parser = fastllm.cli.build_parser()
    for command in ["tokenize", "count"]:
        args = parser.parse_args([command, "--encoding", "cl100k_base", "--threads", "2", "-q"])
        assert (args.encoding, args.threads, args.quiet) == ("cl100k_base", 2, True)
    args = parser.parse_args(["train-bpe", "a", "--vocab-size", "300", "-o", "t", "-q"])
    assert args.threads == 0 and args.quiet
    args = parser.parse_args(["encode", "--encoding", "cl100k_base", "--threads", "3"])
    assert (args.encoding, args.threads) == ("cl100k_base", 3)


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("fastllm.core", "fastllm.encoding", ["Encoding"]),
        ("fastllm.tokenize", "fastllm.tokenfile", ["tokenize_files", "count_tokens_in_files"]),
        ("fastllm.cli_corpus", "fastllm.cli.tokenfile", ["cmd_tokenize"]),
        ("fastllm.cli_train", "fastllm.cli.train_bpe", ["cmd_train_bpe", "special_tokens"]),
        ("fastllm.corpus", "fastllm.samples", ["english_prose", "stdlib_files"]),
    ],
)
def test_old_module_paths_re_export(old, new, names):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name)
    assert fastllm.corpus is fastllm.samples


def test_python_m_fastllm_cli_is_fastllm():
    run = run_cli("--version", module="fastllm.cli")
    assert run.returncode == 0 and run.stdout.startswith("fastllm ")


# ---- --encoding: any vocabulary ----


@pytest.fixture(scope="module")
def saved_vocab(tmp_path_factory) -> Path:
    """A vocabulary trained by ``fastllm train-bpe`` (rank file + sidecar)."""
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "corpus.txt").write_text(Path(os.__file__).read_text(encoding="utf-8"))
    out = folder / "tok.tiktoken"
    status = fastllm.cli.main(
        ["train-bpe", str(folder / "corpus.txt"), "--vocab-size", "400", "-o", str(out), "-q"]
    )
    assert status == 0 and out.exists() and Path(f"{out}.json").exists()
    return out


def _main(capsys, *args: str) -> tuple[int | str, str, str]:
    """Runs ``fastllm ARGS`` in this process: (status or error message, stdout, stderr)."""
    try:
        status: int | str = fastllm.cli.main(list(args))
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, (int, str)) else 1
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_every_command_takes_a_trained_vocabulary(saved_vocab, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("import os\nprint(os.getcwd())\n")
    enc = fastllm.load_encoding(saved_vocab)
    expected = len(enc.encode_ordinary(doc.read_text())) + 1
    status, out, _ = _main(capsys, "count", str(doc), "--encoding", str(saved_vocab))
    assert status == 0 and out.splitlines()[-1].split()[0] == str(expected)
    status, out, _ = _main(
        capsys, "tokenize", str(doc), "-o", str(tmp_path / "t.bin"), "--encoding", str(saved_vocab)
    )
    assert status == 0, out
    assert read_sidecar(tmp_path / "t.bin")["encoding"]["name"] == enc.name
    assert tokens(tmp_path / "t.bin").tolist() == [
        *enc.encode_ordinary(doc.read_text()),
        enc.eot_token,
    ]
    status, out, _ = _main(capsys, "encode", "--text", "import os", "--encoding", str(saved_vocab))
    assert status == 0 and f"from {saved_vocab}" in out


def test_cli_tiktoken_file_with_pattern_and_specials(saved_vocab, tmp_path, capsys):
    bare = tmp_path / "bare.tiktoken"
    bare.write_bytes(saved_vocab.read_bytes())
    doc = tmp_path / "doc.txt"
    doc.write_text("x = 1")
    args = ["count", str(doc), "--encoding", str(bare), "--pattern", "gpt2"]
    status, out, _ = _main(capsys, *args, "--special", "<|endoftext|>=399", "--total")
    assert status == 0, out
    status, _, _ = _main(capsys, *args, "--no-eot", "--total")
    assert status == 0  # no special tokens needed without --eot
    # The errors: each names the file and what to do.
    status, _, _ = _main(capsys, "count", str(doc), "--encoding", str(bare))
    assert "has no sidecar" in str(status) and "--pattern NAME_OR_REGEX" in str(status)
    status, _, _ = _main(capsys, *args, "--special", "<|endoftext|>=65")
    assert "collides with rank 65 of" in str(status) and "bare.tiktoken" in str(status)
    status, _, err = _main(capsys, *args, "--special", "eot")
    assert status == 2 and "expected NAME=ID" in err
    status, _, _ = _main(capsys, "count", str(doc), "--encoding", "o300k")
    assert "Unknown encoding 'o300k'. fastllm bundles: gpt2" in str(status)
    status, _, _ = _main(capsys, "count", str(doc), "--encoding", str(tmp_path / "no.tiktoken"))
    assert "no.tiktoken: no such vocabulary file" in str(status)
    status, _, _ = _main(
        capsys, "encode", "--text", "x", "--encoding", "gpt2", "--pattern", "o200k"
    )
    assert "bundled encoding gpt2 has its own pattern" in str(status)
    status, _, _ = _main(capsys, "count", str(doc), "--encoding", str(doc), "--pattern", "gpt2")
    assert "doc.txt, line 1" in str(status) and "a vocabulary?" in str(status)


@pytest.mark.parametrize("name", ["o200k_base", "o200k_harmony", "p50k_edit"])
def test_cli_new_bundled_encodings(name, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("Hello, world! 日本語")
    status, out, _ = _main(capsys, "count", str(doc), "--encoding", name, "--total", "--no-eot")
    expected = len(fastllm.get_encoding(name).encode_ordinary(doc.read_text()))
    assert status == 0 and out.splitlines()[-1].split()[0] == str(expected)
