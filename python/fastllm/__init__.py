"""fastllm: the first stages of building a GPT-style LLM, accelerated in Rust.

>>> import fastllm
>>> enc = fastllm.get_encoding("gpt2")
>>> enc.encode("Hello, world!")
[15496, 11, 995, 0]
"""

from __future__ import annotations

from fastllm._fastllm import __version__
from fastllm.core import Encoding
from fastllm.registry import (
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
)

__all__ = [
    "Encoding",
    "__version__",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
]
