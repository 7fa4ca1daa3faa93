"""Deprecated module path, kept for one release: :class:`Encoding` lives in
:mod:`fastllm.encoding` now (``fastllm.Encoding`` is unchanged)."""

from __future__ import annotations

from fastllm._pretok import resolve_pattern
from fastllm.encoding import Encoding, raise_disallowed_special_token

__all__ = ["Encoding", "raise_disallowed_special_token", "resolve_pattern"]
