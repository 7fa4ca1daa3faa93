"""fastllm: the first stages of building a GPT-style LLM, accelerated in Rust.

>>> import fastllm
>>> enc = fastllm.get_encoding("gpt2")
>>> enc.encode("Hello, world!")
[15496, 11, 995, 0]
"""

from __future__ import annotations

import os as _os

from fastllm import samples
from fastllm._fastllm import __version__, get_num_threads, set_num_threads
from fastllm.encoding import Encoding
from fastllm.registry import (
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
)
from fastllm.simple import SimpleTokenizer
from fastllm.tokenfile import count_tokens_in_files, tokenize_files
from fastllm.train import train_bpe
from fastllm.windows import sliding_windows

#: The demo texts' older name (kept for one release): ``fastllm.corpus`` is :mod:`fastllm.samples`.
corpus = samples

__all__ = [
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
    "samples",
    "set_num_threads",
    "sliding_windows",
    "tokenize_files",
    "train_bpe",
]

if _os.environ.get("FASTLLM_NUM_THREADS", "").isdigit():
    set_num_threads(int(_os.environ["FASTLLM_NUM_THREADS"]))
