"""PyTorch building blocks from "Build a Large Language Model (From Scratch)", chapters 2-5.

Token and positional embeddings and the attention family, exact to the book (same parameter
order and names, so the same ``torch.manual_seed`` gives the book's numbers) and fast by
default (:class:`MultiHeadAttention` uses PyTorch's fused scaled-dot-product attention when
that gives the same result), then the GPT model of chapter 4 (:class:`GPTModel` and its parts,
:data:`GPT_CONFIG_124M`) and text generation (:func:`generate_text_simple`, :func:`generate`).
Pretraining it on token files is :mod:`fastllm.pretrain`.

Needs PyTorch: ``pip install fastllm[torch]``. The heat-map helper :func:`plot_attention`
also needs matplotlib: ``pip install fastllm[plot]``.

>>> import torch
>>> from fastllm.nn import GPTEmbedding, MultiHeadAttention
>>> embed = GPTEmbedding(vocab_size=50257, emb_dim=256, context_length=4)
>>> attn = MultiHeadAttention(256, 256, context_length=4, dropout=0.1, num_heads=4).eval()
>>> attn(embed(torch.randint(0, 50257, (8, 4)))).shape
torch.Size([8, 4, 256])
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "fastllm.nn needs PyTorch, which is not installed: pip install fastllm[torch] "
        "(or install torch for your platform from https://pytorch.org)"
    ) from _exc

from .attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    simplified_attention,
    simplified_attention_weights,
)
from .embedding import GPTEmbedding, SinusoidalPositionalEncoding, sinusoidal_table
from .generate import generate, generate_text_simple, text_to_token_ids, token_ids_to_text
from .gpt import (
    GELU,
    GPT_CONFIG_124M,
    GPT_CONFIGS,
    FeedForward,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    check_config,
    count_parameters,
)
from .plot import plot_attention

__all__ = [
    "GELU",
    "GPT_CONFIGS",
    "GPT_CONFIG_124M",
    "CausalAttention",
    "FeedForward",
    "GPTEmbedding",
    "GPTModel",
    "LayerNorm",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "SinusoidalPositionalEncoding",
    "TransformerBlock",
    "check_config",
    "count_parameters",
    "generate",
    "generate_text_simple",
    "plot_attention",
    "simplified_attention",
    "simplified_attention_weights",
    "sinusoidal_table",
    "text_to_token_ids",
    "token_ids_to_text",
]
