"""Deprecated module path, kept for one release: ``fastllm tokenize`` and ``fastllm count`` live
in :mod:`fastllm.cli.tokenfile` and :mod:`fastllm.cli.count` now."""

from __future__ import annotations

from fastllm.cli._common import ProgressBar
from fastllm.cli.count import cmd_count
from fastllm.cli.tokenfile import DEFAULT_OUTPUT, cmd_tokenize

__all__ = ["DEFAULT_OUTPUT", "ProgressBar", "cmd_count", "cmd_tokenize"]
