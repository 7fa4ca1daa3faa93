"""Deprecated module path, kept for one release: corpus tokenization lives in
:mod:`fastllm.tokenfile` now (this name shadowed the standard library's ``tokenize``)."""

from __future__ import annotations

from fastllm.tokenfile import (
    CountStats,
    FileCount,
    Terminated,
    TokenizeStats,
    count_tokens_in_files,
    index_path,
    input_format,
    read_sidecar,
    resolve_inputs,
    sidecar_path,
    tokenize_files,
)

__all__ = [
    "CountStats",
    "FileCount",
    "Terminated",
    "TokenizeStats",
    "count_tokens_in_files",
    "index_path",
    "input_format",
    "read_sidecar",
    "resolve_inputs",
    "sidecar_path",
    "tokenize_files",
]
