"""The README's commands and examples stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastllm

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    test_command = next(
        line for block in blocks for line in block.splitlines() if "'.[test]'" in line
    )
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_tiktoken_example_values():
    enc = fastllm.get_encoding("gpt2")
    assert "[15496, 11, 995, 0]" in README
    assert enc.encode("Hello, world!") == [15496, 11, 995, 0]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert fastllm.encoding_for_model("gpt-4").name == "cl100k_base"


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


def _runnable_blocks() -> list[str]:
    """The README's python blocks whose printed values are written as ``# expected`` comments."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    return [b for b in blocks if "print(" in b and "from_tiktoken_file" not in b]


@pytest.mark.parametrize("index", range(len(_runnable_blocks())))
def test_readme_python_blocks_print_what_they_say(index, capsys):
    block = _runnable_blocks()[index]
    if "torch" in block:
        pytest.importorskip("torch")
    exec(compile(block, f"README block {index}", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = [
        line.split("# ", 1)[1].strip()
        for line in block.splitlines()
        if line.startswith("print(") and "# " in line
    ]
    assert printed == expected


def test_readme_embed_and_attend_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "plot_attention" in b
    )
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(block, "README embed-and-attend", "exec"), scope)
    assert tuple(scope["context"].shape) == (8, 4, 256)
    assert tuple(scope["weights"].shape) == (8, 4, 4, 4)
    assert (tmp_path / "attention.png").stat().st_size > 1000
