"""tiktoken 0.14's own encodings, built offline from fastllm's bundled rank files: the reference
that tests and benchmarks compare with.

tiktoken's constructors (``tiktoken_ext.openai_public``) run as they are, reading their rank
files from a temporary ``TIKTOKEN_CACHE_DIR`` filled with the package's decompressed files under
tiktoken's cache names (sha1 of the URL; tiktoken checks each file's sha256): so the patterns,
special tokens and ``explicit_n_vocab`` are tiktoken's definitions, not copies of fastllm's.
tiktoken builds ``gpt2`` from GPT-2's ``vocab.bpe`` and ``encoder.json``, which are not bundled;
it is ``r50k_base``'s constructor under the name ``gpt2`` (the same ranks).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import tiktoken
import zstandard
from tiktoken_ext import openai_public

from fastllm.registry import BUNDLED

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
#: tiktoken's file name of each bundled rank file.
_TIKTOKEN_FILES = {
    "gpt2.tiktoken.zst": "r50k_base",
    "p50k_base.tiktoken.zst": "p50k_base",
    "cl100k_base.tiktoken.zst": "cl100k_base",
    "o200k_base.tiktoken.zst": "o200k_base",
}

_REFERENCES: dict[str, tiktoken.Encoding] = {}
_CACHE: list[str] = []


def bundled_bytes(name: str) -> bytes:
    """The decompressed rank file of a bundled encoding."""
    return zstandard.ZstdDecompressor().decompress(BUNDLED[name].path.read_bytes())


def _cache_dir() -> str:
    if not _CACHE:
        folder = tempfile.mkdtemp(prefix="fastllm-tiktoken-cache-")
        for file, tiktoken_name in _TIKTOKEN_FILES.items():
            key = hashlib.sha1(_URL.format(tiktoken_name).encode()).hexdigest()
            data = zstandard.ZstdDecompressor().decompress(
                (BUNDLED["gpt2"].path.parent / file).read_bytes()
            )
            with open(os.path.join(folder, key), "wb") as f:
                f.write(data)
        _CACHE.append(folder)
    return _CACHE[0]


@contextlib.contextmanager
def _offline_cache() -> Iterator[None]:
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = _cache_dir()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


def reference_parts(name: str) -> dict[str, Any]:
    """What tiktoken 0.14's constructor of ``name`` returns (``gpt2``: see the module doc)."""
    constructor = openai_public.ENCODING_CONSTRUCTORS["r50k_base" if name == "gpt2" else name]
    with _offline_cache():
        parts = constructor()
    return {**parts, "name": name}


def reference_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's Encoding for a bundled name, from the same rank file fastllm ships."""
    if name not in _REFERENCES:
        _REFERENCES[name] = tiktoken.Encoding(**reference_parts(name))
    return _REFERENCES[name]
