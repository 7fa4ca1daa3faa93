"""The attention family of chapter 3 of "Build a Large Language Model (From Scratch)".

The classes follow the book line for line where it matters: parameters are created in the
book's order and with the book's attribute names, so under the same ``torch.manual_seed`` they
hold the same numbers and give the book's outputs, and their ``state_dict`` keys match the
book's. On top of that they validate their input and, for :class:`MultiHeadAttention`, take a
fast path through :func:`torch.nn.functional.scaled_dot_product_attention` whenever it gives the
same result.
"""

from __future__ import annotations

from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_features, check_positive, check_rank, check_seq_len

__all__ = [
    "CausalAttention",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "simplified_attention",
    "simplified_attention_weights",
]

_SEQ_LAYOUT = "(num_tokens, d_in) or (batch, num_tokens, d_in)"


def _causal_mask_buffer(context_length: int) -> torch.Tensor:
    # The book's buffer: a float matrix with ones above the diagonal (1 = "may not attend").
    return torch.triu(torch.ones(context_length, context_length), diagonal=1)


# --------------------------------------------------------------------------------------------
# 3.3 simplified self-attention (no trainable weights)
# --------------------------------------------------------------------------------------------


def simplified_attention_weights(x: torch.Tensor) -> torch.Tensor:
    """Attention weights of the book's simplified self-attention (section 3.3).

    ``softmax(x @ x.T, dim=-1)``: row ``i`` holds how much token ``i`` attends to every token.
    ``x`` is ``(num_tokens, d)`` or batched ``(batch, num_tokens, d)``; the result is
    ``(num_tokens, num_tokens)`` (or ``(batch, num_tokens, num_tokens)``) and every row sums to 1.

    >>> import torch
    >>> x = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64]])
    >>> w = simplified_attention_weights(x)
    >>> w.shape, torch.allclose(w.sum(dim=-1), torch.ones(3))
    (torch.Size([3, 3]), True)
    """
    check_rank("simplified_attention", x, (2, 3), "(num_tokens, d) or (batch, num_tokens, d)")
    attn_scores = x @ x.transpose(-2, -1)
    return torch.softmax(attn_scores, dim=-1)


@overload
def simplified_attention(
    x: torch.Tensor, *, return_weights: Literal[False] = ...
) -> torch.Tensor: ...


@overload
def simplified_attention(
    x: torch.Tensor, *, return_weights: Literal[True]
) -> tuple[torch.Tensor, torch.Tensor]: ...


def simplified_attention(
    x: torch.Tensor, *, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The book's simplified self-attention without trainable weights (section 3.3).

    Each context vector is the attention-weighted sum of all input vectors, with weights
    ``softmax(x @ x.T)`` (see :func:`simplified_attention_weights`). ``x`` is
    ``(num_tokens, d)`` or ``(batch, num_tokens, d)``; the context vectors have the same shape.
    With ``return_weights=True`` returns ``(context, weights)``.

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> context, weights = simplified_attention(inputs, return_weights=True)
    >>> context[1]  # the context vector of "journey"
    tensor([0.4419, 0.6515, 0.5683])
    """
    weights = simplified_attention_weights(x)
    context = weights @ x
    if return_weights:
        return context, weights
    return context


# --------------------------------------------------------------------------------------------
# 3.4 self-attention with trainable weights
# --------------------------------------------------------------------------------------------


class SelfAttentionV1(nn.Module):
    """The book's ``SelfAttention_v1``: scaled dot-product attention with raw weight matrices.

    The query, key and value weights are ``nn.Parameter(torch.rand(d_in, d_out))`` created in
    that order, so ``torch.manual_seed(123)`` before construction reproduces the book.
    Input ``(num_tokens, d_in)`` as in the book (a batched ``(batch, num_tokens, d_in)`` works
    too); output ``(..., num_tokens, d_out)``. No causal mask.

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> _ = torch.manual_seed(123)
    >>> sa_v1 = SelfAttentionV1(d_in=3, d_out=2)
    >>> sa_v1(inputs)[0].detach()
    tensor([0.2996, 0.8053])
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        d_in = check_positive("d_in", d_in)
        d_out = check_positive("d_out", d_out)
        self.d_in = d_in
        self.d_out = d_out
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context vectors for ``x`` of shape ``(num_tokens, d_in)`` or batched."""
        check_rank(type(self).__name__, x, (2, 3), _SEQ_LAYOUT)
        check_features(type(self).__name__, x, self.d_in)
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.transpose(-2, -1)  # omega
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_out={self.d_out}"


class SelfAttentionV2(nn.Module):
    """The book's ``SelfAttention_v2``: like :class:`SelfAttentionV1` but with ``nn.Linear``.

    ``W_query``, ``W_key`` and ``W_value`` are ``nn.Linear(d_in, d_out, bias=qkv_bias)`` created
    in that order (``torch.manual_seed(789)`` reproduces the book). Input ``(num_tokens, d_in)``
    or ``(batch, num_tokens, d_in)``. No causal mask.

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> _ = torch.manual_seed(789)
    >>> sa_v2 = SelfAttentionV2(d_in=3, d_out=2)
    >>> sa_v2(inputs)[0].detach()
    tensor([-0.0739,  0.0713])
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        d_in = check_positive("d_in", d_in)
        d_out = check_positive("d_out", d_out)
        self.d_in = d_in
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context vectors for ``x`` of shape ``(num_tokens, d_in)`` or batched."""
        check_rank(type(self).__name__, x, (2, 3), _SEQ_LAYOUT)
        check_features(type(self).__name__, x, self.d_in)
        keys: torch.Tensor = self.W_key(x)
        queries: torch.Tensor = self.W_query(x)
        values: torch.Tensor = self.W_value(x)
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


# --------------------------------------------------------------------------------------------
# 3.5 causal attention
# --------------------------------------------------------------------------------------------


class CausalAttention(nn.Module):
    """The book's ``CausalAttention``: self-attention with a causal mask and dropout.

    ``W_query``, ``W_key``, ``W_value`` (``nn.Linear``, in that order), ``dropout`` on the
    attention weights and a ``mask`` buffer (ones above the diagonal, ``context_length`` square)
    that moves with ``.to(device)``. Input ``(batch, num_tokens, d_in)`` as in the book, or
    unbatched ``(num_tokens, d_in)``; ``num_tokens <= context_length``. Dropout is active in
    training mode only (``module.eval()`` turns it off).

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> batch = torch.stack((inputs, inputs))
    >>> _ = torch.manual_seed(123)
    >>> ca = CausalAttention(d_in=3, d_out=2, context_length=batch.shape[1], dropout=0.0)
    >>> ca(batch)[0, 0].detach()
    tensor([-0.4519,  0.2216])
    """

    mask: torch.Tensor

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        d_in = check_positive("d_in", d_in)
        d_out = check_positive("d_out", d_out)
        context_length = check_positive("context_length", context_length)
        self.d_in = d_in
        self.d_out = d_out
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask_buffer(context_length))

    @overload
    def forward(self, x: torch.Tensor, return_weights: Literal[False] = ...) -> torch.Tensor: ...

    @overload
    def forward(
        self, x: torch.Tensor, return_weights: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Context vectors ``(batch, num_tokens, d_out)`` (or unbatched).

        With ``return_weights=True`` also returns the attention weights
        ``(batch, num_tokens, num_tokens)`` as used, i.e. after dropout.
        """
        name = type(self).__name__
        check_rank(name, x, (2, 3), _SEQ_LAYOUT)
        check_features(name, x, self.d_in)
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
        _b, num_tokens, _d_in = x.shape
        check_seq_len(name, num_tokens, self.context_length)

        keys: torch.Tensor = self.W_key(x)
        queries: torch.Tensor = self.W_query(x)
        values: torch.Tensor = self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)
        attn_scores.masked_fill_(self.mask[:num_tokens, :num_tokens].bool(), -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec: torch.Tensor = attn_weights @ values

        if unbatched:
            context_vec = context_vec.squeeze(0)
            attn_weights = attn_weights.squeeze(0)
        if return_weights:
            return context_vec, attn_weights
        return context_vec

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}"


# --------------------------------------------------------------------------------------------
# 3.6 multi-head attention
# --------------------------------------------------------------------------------------------


class MultiHeadAttentionWrapper(nn.Module):
    """The book's ``MultiHeadAttentionWrapper``: ``num_heads`` stacked :class:`CausalAttention`.

    The heads run one after the other and their outputs are concatenated, so the output width is
    ``d_out * num_heads``. Input ``(batch, num_tokens, d_in)`` or unbatched.

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> batch = torch.stack((inputs, inputs))
    >>> _ = torch.manual_seed(123)
    >>> mha = MultiHeadAttentionWrapper(3, 2, batch.shape[1], 0.0, num_heads=2)
    >>> mha(batch)[0, 0].detach()
    tensor([-0.4519,  0.2216,  0.4772,  0.1063])
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        num_heads = check_positive("num_heads", num_heads)
        self.heads = nn.ModuleList(
            [
                CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                for _ in range(num_heads)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated head outputs, ``(..., num_tokens, d_out * num_heads)``."""
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    """The book's efficient ``MultiHeadAttention``, with a fast path.

    ``W_query``, ``W_key``, ``W_value`` (``nn.Linear(d_in, d_out, bias=qkv_bias)``, in that
    order), ``out_proj`` (``nn.Linear(d_out, d_out)``, with bias), ``dropout`` and the ``mask``
    buffer, exactly as in the book; the heads are split by ``view``/``transpose`` into
    ``num_heads`` heads of ``head_dim = d_out // num_heads``.

    Two ways to compute the same thing:

    * **fast path** - :func:`torch.nn.functional.scaled_dot_product_attention` with
      ``is_causal=True`` (on CPU and on recent GPUs a fused kernel that never materialises the
      square matrix of scores). Taken when it gives the book's result: in eval mode or with
      dropout 0, and when no attention weights are requested.
    * **explicit path** - the book's code: masked scores, scaled softmax, dropout on the weights.
      Taken in training mode with dropout > 0 (so dropout matches the book's ``nn.Dropout``),
      with ``return_weights=True``, or always if built with ``fast_path=False``.

    Input ``(batch, num_tokens, d_in)`` as in the book, or unbatched ``(num_tokens, d_in)``,
    with ``num_tokens <= context_length``; output ``(..., num_tokens, d_out)``.

    >>> import torch
    >>> inputs = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
    ...                        [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
    >>> batch = torch.stack((inputs, inputs))
    >>> _ = torch.manual_seed(123)
    >>> mha = MultiHeadAttention(3, 2, batch.shape[1], 0.0, num_heads=2)
    >>> mha(batch)[0, 0].detach()
    tensor([0.3190, 0.4858])
    >>> context, weights = mha(batch, return_weights=True)
    >>> weights.shape  # (batch, num_heads, num_tokens, num_tokens)
    torch.Size([2, 2, 6, 6])
    """

    mask: torch.Tensor

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
        *,
        fast_path: bool = True,
    ) -> None:
        super().__init__()
        d_in = check_positive("d_in", d_in)
        d_out = check_positive("d_out", d_out)
        context_length = check_positive("context_length", context_length)
        num_heads = check_positive("num_heads", num_heads)
        if d_out % num_heads != 0:
            raise ValueError(
                f"d_out must be divisible by num_heads, got d_out={d_out} and "
                f"num_heads={num_heads} (d_out % num_heads = {d_out % num_heads})"
            )
        self.d_in = d_in
        self.d_out = d_out
        self.context_length = context_length
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.fast_path = fast_path
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # combines the head outputs
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask_buffer(context_length))

    def uses_fast_path(self, return_weights: bool = False) -> bool:
        """Whether a forward call in the current mode takes the fused SDPA path.

        >>> mha = MultiHeadAttention(8, 8, context_length=4, dropout=0.1, num_heads=2)
        >>> mha.uses_fast_path(), mha.eval().uses_fast_path()
        (False, True)
        """
        if return_weights or not self.fast_path:
            return False
        return not self.training or self.dropout.p == 0.0

    @overload
    def forward(self, x: torch.Tensor, return_weights: Literal[False] = ...) -> torch.Tensor: ...

    @overload
    def forward(
        self, x: torch.Tensor, return_weights: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Context vectors ``(batch, num_tokens, d_out)`` (or unbatched).

        With ``return_weights=True`` (explicit path) also returns the attention weights
        ``(batch, num_heads, num_tokens, num_tokens)`` as used, i.e. after dropout.
        """
        name = type(self).__name__
        check_rank(name, x, (2, 3), _SEQ_LAYOUT)
        check_features(name, x, self.d_in)
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
        b, num_tokens, _d_in = x.shape
        check_seq_len(name, num_tokens, self.context_length)

        keys: torch.Tensor = self.W_key(x)  # (b, num_tokens, d_out)
        queries: torch.Tensor = self.W_query(x)
        values: torch.Tensor = self.W_value(x)
        # split d_out into heads: (b, num_tokens, num_heads, head_dim) -> (b, heads, tokens, hd)
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_weights: torch.Tensor | None = None
        if self.uses_fast_path(return_weights):
            context_vec = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
        else:
            attn_scores = queries @ keys.transpose(2, 3)  # dot product for each head
            mask_bool = self.mask[:num_tokens, :num_tokens].bool()
            attn_scores.masked_fill_(mask_bool, -torch.inf)
            attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
            attn_weights = self.dropout(attn_weights)
            context_vec = attn_weights @ values

        # (b, heads, tokens, hd) -> (b, tokens, heads, hd) -> (b, tokens, d_out)
        context_vec = context_vec.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        out: torch.Tensor = self.out_proj(context_vec)

        if unbatched:
            out = out.squeeze(0)
        if return_weights and attn_weights is not None:  # return_weights forces the explicit path
            return out, attn_weights.squeeze(0) if unbatched else attn_weights
        return out

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"context_length={self.context_length}, fast_path={self.fast_path}"
        )
