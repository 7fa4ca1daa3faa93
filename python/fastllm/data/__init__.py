"""PyTorch datasets and loaders of input/target windows (chapter 2 of the book).

Re-exports only: :mod:`fastllm.data.dataset` holds the window dataset (:class:`WindowDataset`,
:class:`GPTDataset`, :func:`create_dataloader`), :mod:`fastllm.data.tokenfile` the token files
written by ``fastllm tokenize`` (:class:`TokenFileDataset`, :class:`RandomOffsetSampler`).

This package needs torch (``pip install fastllm[torch]``); ``import fastllm`` does not import it.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # exercised by tests/test_inputs_faults.py (torch hidden)
    raise ImportError(
        "fastllm.data needs PyTorch, which is not installed: pip install 'fastllm[torch]' "
        "(or install torch for your platform from https://pytorch.org)"
    ) from _exc

from fastllm.data.dataset import (
    GPTDataset,
    Tokenizer,
    WindowDataset,
    create_dataloader,
    encode_text,
)
from fastllm.data.tokenfile import RandomOffsetSampler, TokenFileDataset

__all__ = [
    "GPTDataset",
    "RandomOffsetSampler",
    "TokenFileDataset",
    "Tokenizer",
    "WindowDataset",
    "create_dataloader",
    "encode_text",
]
