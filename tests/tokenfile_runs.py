"""Helpers shared by test_tokenize_files.py and test_cli.py: read a token file back, run a
tokenizing child process and stop it once it has made progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastllm.tokenfile import index_path, read_sidecar, sidecar_path


def tokens(path: Path) -> np.ndarray:
    """The tokens of a complete token file, in its dtype."""
    meta = read_sidecar(path)
    return np.fromfile(path, dtype=np.dtype(meta["dtype"]))


def start(script: str, inputs: Path, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sys.path]))
    return subprocess.Popen(
        [sys.executable, "-c", script, str(inputs), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_progress(child: subprocess.Popen[str], out: Path, min_checkpoint: int = 0) -> None:
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    journal = Path(f"{out}.partial.json")
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else "the child stopped"
        if not line.startswith("progress"):
            continue
        if int(line.split()[1]) > 0 and journal.exists():
            tokens = json.loads(journal.read_text())["counts"]["tokens"]
            if tokens >= min_checkpoint:
                return
    raise AssertionError("the child made no progress")


def assert_stopped_cleanly(out: Path) -> None:
    assert not out.exists()
    assert not sidecar_path(out).exists()
    assert not index_path(out).exists()
    assert Path(f"{out}.partial").exists() and Path(f"{out}.partial.json").exists()
    with pytest.raises(FileNotFoundError):
        read_sidecar(out)
