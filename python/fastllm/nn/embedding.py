"""Token and positional embeddings (chapter 2 of the book, plus the sinusoidal encoding).

:class:`GPTEmbedding` turns the int64 ``(batch, num_tokens)`` windows that ``fastllm`` produces
into ``(batch, num_tokens, emb_dim)`` input embeddings exactly as the book does: a token
embedding plus a learned absolute positional embedding (plus dropout).
:class:`SinusoidalPositionalEncoding` is the fixed encoding of "Attention Is All You Need".
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_features, check_positive, check_rank, check_seq_len, check_token_ids

__all__ = ["GPTEmbedding", "SinusoidalPositionalEncoding"]


class GPTEmbedding(nn.Module):
    """Token embedding + learned absolute positional embedding + dropout, as in the book's GPT.

    ``tok_emb = nn.Embedding(vocab_size, emb_dim)`` and ``pos_emb =
    nn.Embedding(context_length, emb_dim)`` are created in that order (the attribute names are
    the book's ``GPTModel`` ones, so ``state_dict`` keys carry over), followed by ``drop_emb``.
    Takes int64 or int32 token ids of shape ``(batch, num_tokens)`` (or unbatched
    ``(num_tokens,)``) with ``num_tokens <= context_length`` and returns
    ``(batch, num_tokens, emb_dim)`` float embeddings. Dropout is active in training mode only.

    ``check_token_ids=True`` (the default) verifies every id lies in ``[0, vocab_size)`` and
    raises a ``ValueError`` naming the bad id; this reads a value back from the device, so turn
    it off in a CUDA training loop whose data you trust.

    >>> import torch
    >>> embed = GPTEmbedding(vocab_size=50257, emb_dim=256, context_length=4)
    >>> inputs = torch.tensor([[40, 367, 2885, 1464], [1807, 3619, 402, 271]])
    >>> embed(inputs).shape
    torch.Size([2, 4, 256])
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        context_length: int,
        dropout: float = 0.0,
        *,
        check_token_ids: bool = True,
    ) -> None:
        super().__init__()
        vocab_size = check_positive("vocab_size", vocab_size)
        emb_dim = check_positive("emb_dim", emb_dim)
        context_length = check_positive("context_length", context_length)
        self.vocab_size = vocab_size
        self.emb_dim = emb_dim
        self.context_length = context_length
        self.check_token_ids = check_token_ids
        self.tok_emb = nn.Embedding(vocab_size, emb_dim)
        self.pos_emb = nn.Embedding(context_length, emb_dim)
        self.drop_emb = nn.Dropout(dropout)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(batch, num_tokens, emb_dim)`` for token ids ``(batch, num_tokens)``."""
        name = type(self).__name__
        check_rank(name, in_idx, (1, 2), "of token ids (num_tokens,) or (batch, num_tokens)")
        in_idx = check_token_ids(name, in_idx, self.vocab_size, self.check_token_ids)
        seq_len = in_idx.shape[-1]
        check_seq_len(name, seq_len, self.context_length)
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = tok_embeds + pos_embeds
        out: torch.Tensor = self.drop_emb(x)
        return out

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, check_token_ids={self.check_token_ids}"


def sinusoidal_table(context_length: int, emb_dim: int) -> torch.Tensor:
    """The ``(context_length, emb_dim)`` table of "Attention Is All You Need" (section 3.5).

    ``PE[pos, 2i] = sin(pos / 10000**(2i / emb_dim))`` and
    ``PE[pos, 2i + 1] = cos(pos / 10000**(2i / emb_dim))``; an odd ``emb_dim`` ends with a sine
    column. Computed in float64 and returned as float32.

    >>> sinusoidal_table(3, 4)[1]
    tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """
    context_length = check_positive("context_length", context_length)
    emb_dim = check_positive("emb_dim", emb_dim)
    pos = torch.arange(context_length, dtype=torch.float64).unsqueeze(1)  # (context_length, 1)
    cols = torch.arange(emb_dim)
    two_i = (cols - cols % 2).to(torch.float64)  # 0, 0, 2, 2, 4, 4, ...
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_i / emb_dim)
    table = torch.where(cols % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal positional encoding from "Attention Is All You Need".

    Holds the table from :func:`sinusoidal_table` as a non-trainable, non-persistent buffer
    ``pe`` of shape ``(context_length, emb_dim)`` (it moves with ``.to(device)`` and is not
    saved in ``state_dict``). ``forward(x)`` adds the first ``num_tokens`` rows to embeddings
    ``x`` of shape ``(num_tokens, emb_dim)`` or ``(batch, num_tokens, emb_dim)``;
    :meth:`encoding` returns the rows themselves.

    >>> import torch
    >>> pos_enc = SinusoidalPositionalEncoding(context_length=1024, emb_dim=256)
    >>> x = torch.zeros(8, 4, 256)
    >>> out = pos_enc(x)
    >>> out.shape, torch.equal(out[0], pos_enc.encoding(4))
    (torch.Size([8, 4, 256]), True)
    """

    pe: torch.Tensor

    def __init__(self, context_length: int, emb_dim: int) -> None:
        super().__init__()
        self.context_length = context_length
        self.emb_dim = emb_dim
        self.register_buffer("pe", sinusoidal_table(context_length, emb_dim), persistent=False)

    def encoding(self, num_tokens: int) -> torch.Tensor:
        """The ``(num_tokens, emb_dim)`` encodings of positions ``0 .. num_tokens - 1``.

        >>> SinusoidalPositionalEncoding(16, 4).encoding(2)[0]
        tensor([0., 1., 0., 1.])
        """
        check_seq_len(type(self).__name__, num_tokens, self.context_length)
        return self.pe[:num_tokens]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + PE[:num_tokens]`` for embeddings ``x`` of shape ``(..., num_tokens, emb_dim)``."""
        name = type(self).__name__
        check_rank(name, x, (2, 3), "(num_tokens, emb_dim) or (batch, num_tokens, emb_dim)")
        check_features(name, x, self.emb_dim, what="emb_dim")
        if not x.is_floating_point():
            raise ValueError(
                f"{name} adds the encoding to float embeddings, got dtype {x.dtype}; "
                f"embed token ids first (e.g. with nn.Embedding)"
            )
        return x + self.encoding(x.shape[-2]).to(x.dtype)

    def extra_repr(self) -> str:
        return f"context_length={self.context_length}, emb_dim={self.emb_dim}"
