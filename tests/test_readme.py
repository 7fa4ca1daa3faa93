"""The README's commands and examples stay true."""

from __future__ import annotations

import re
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


def test_encodings_table_is_true():
    rows = re.findall(r"^\| `(\w+)` \| (.*) \| ([\d,]+) \|$", README, flags=re.M)
    assert [name for name, _, _ in rows] == fastllm.list_encoding_names()
    for name, models, size in rows:
        assert fastllm.get_encoding(name).n_vocab == int(size.replace(",", ""))
        for model in re.findall(r"`([\w.-]+)`", models):
            assert fastllm.encoding_name_for_model(model) == name, model


def test_trained_vocabulary_commands_run(tmp_path, monkeypatch):
    """The README's commands with a trained vocabulary, line by line, on a small corpus."""
    import os
    import shlex
    import shutil

    from fastllm.cli import main

    block = next(
        b
        for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
        if "--encoding my.tiktoken" in b
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for module in ("os", "argparse", "json"):
        source = Path(os.__file__).parent / f"{module}.py" if module == "os" else None
        source = source or Path(__import__(module).__file__)
        shutil.copy(source, corpus / f"{module}.py")
    monkeypatch.chdir(tmp_path)
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[0] == "cp":
            shutil.copy(words[1], words[2])
            continue
        assert words[0] == "fastllm"
        assert main(words[1:]) == 0, line
    assert (tmp_path / "train.bin").exists() and (tmp_path / "my.tiktoken.json").exists()
    from fastllm.tokenfile import check_encoding

    check_encoding("train.bin", "my.tiktoken")
