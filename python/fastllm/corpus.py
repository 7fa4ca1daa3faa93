"""Deprecated module path, kept for one release: the demo texts live in :mod:`fastllm.samples`
now. ``fastllm.corpus`` and ``import fastllm.corpus`` give that module itself."""

from __future__ import annotations

import sys

from fastllm import samples
from fastllm.samples import english_prose, non_latin_text, python_source, stdlib_dir, stdlib_files

__all__ = ["english_prose", "non_latin_text", "python_source", "stdlib_dir", "stdlib_files"]

sys.modules[__name__] = samples
