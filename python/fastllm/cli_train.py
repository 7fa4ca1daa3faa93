"""Deprecated module path, kept for one release: ``fastllm train-bpe`` lives in
:mod:`fastllm.cli.train_bpe` now."""

from __future__ import annotations

from fastllm.cli.train_bpe import DEFAULT_SPECIAL, cmd_train_bpe, special_tokens
from fastllm.cli.train_bpe import add_parser as add_train_parser

__all__ = ["DEFAULT_SPECIAL", "add_train_parser", "cmd_train_bpe", "special_tokens"]
