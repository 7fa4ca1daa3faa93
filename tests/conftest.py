"""Shared fixtures: tiktoken built from fastllm's own bundled vocabulary files (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

import fastllm

tiktoken = pytest.importorskip("tiktoken")
from reference import reference_encoding  # noqa: E402
from tokenfile_runs import tokens  # noqa: E402

ENCODING_NAMES = fastllm.list_encoding_names()


@pytest.fixture(params=ENCODING_NAMES)
def pair(request: pytest.FixtureRequest) -> tuple[fastllm.Encoding, tiktoken.Encoding]:
    """(fastllm encoding, tiktoken reference) for each bundled encoding."""
    return fastllm.get_encoding(request.param), reference_encoding(request.param)


@pytest.fixture(scope="session")
def big_input(tmp_path_factory) -> tuple[Path, list[int]]:
    """~30 MB of Python source in 15 files, and its tokens from an uninterrupted run."""
    folder = tmp_path_factory.mktemp("big")
    data = fastllm.samples.python_source(30_000_000).encode("utf-8")
    step = len(data) // 15 + 1
    for i in range(15):
        part = data[i * step : (i + 1) * step].decode("utf-8", errors="ignore")
        (folder / f"{i:02d}.py").write_text(part, encoding="utf-8", newline="")
    reference = tmp_path_factory.mktemp("big-reference") / "whole.bin"
    fastllm.tokenize_files(folder, reference)
    return folder, tokens(reference).tolist()
