"""fastllm: the first stages of building a GPT-style LLM, accelerated in Rust.

>>> import fastllm
>>> enc = fastllm.get_encoding("gpt2")
>>> enc.encode("Hello, world!")
[15496, 11, 995, 0]

``import fastllm`` loads the tokenizer only; the data path (NumPy), the corpus tools, training
and the demo texts load on first use of their names (a cold ``import fastllm`` then costs about
what ``import tiktoken`` does).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
from typing import TYPE_CHECKING, Any

from fastllm._fastllm import __version__, get_num_threads, set_num_threads
from fastllm.encoding import DecodeStream, Encoding
from fastllm.model import encoding_for_model, encoding_name_for_model
from fastllm.registry import get_encoding, list_encoding_names, load_encoding

if TYPE_CHECKING:
    from fastllm import samples
    from fastllm.simple import SimpleTokenizer
    from fastllm.tokenfile import count_tokens_in_files, tokenize_files
    from fastllm.train import train_bpe
    from fastllm.windows import sliding_windows

    corpus = samples

#: Names loaded on first use: name -> (module, attribute or "" for the module itself).
_LAZY: dict[str, tuple[str, str]] = {
    "samples": ("fastllm.samples", ""),
    #: The demo texts' older name (kept for one release): ``fastllm.corpus`` is
    #: :mod:`fastllm.samples`.
    "corpus": ("fastllm.samples", ""),
    "SimpleTokenizer": ("fastllm.simple", "SimpleTokenizer"),
    "count_tokens_in_files": ("fastllm.tokenfile", "count_tokens_in_files"),
    "tokenize_files": ("fastllm.tokenfile", "tokenize_files"),
    "train_bpe": ("fastllm.train", "train_bpe"),
    "sliding_windows": ("fastllm.windows", "sliding_windows"),
}

__all__ = [
    "DecodeStream",
    "Encoding",
    "SimpleTokenizer",
    "__version__",
    "corpus",
    "count_tokens_in_files",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "get_num_threads",
    "list_encoding_names",
    "load_encoding",
    "samples",
    "set_num_threads",
    "sliding_windows",
    "tokenize_files",
    "train_bpe",
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fastllm' has no attribute {name!r}") from None
    module = _importlib.import_module(module_name)
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if _os.environ.get("FASTLLM_NUM_THREADS", "").isdigit():
    set_num_threads(int(_os.environ["FASTLLM_NUM_THREADS"]))
