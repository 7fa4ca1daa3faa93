"""The GPT model of chapter 4 of "Build a Large Language Model (From Scratch)".

:class:`LayerNorm`, :class:`GELU`, :class:`FeedForward`, :class:`TransformerBlock` and
:class:`GPTModel` create their parameters in the book's order and under the book's names, so
under the same ``torch.manual_seed`` they hold the book's numbers and their ``state_dict`` keys
are the book's (``tok_emb.weight``, ``trf_blocks.0.att.W_query.weight``, ...). They are built
from a configuration dictionary such as :data:`GPT_CONFIG_124M`.

Design notes (measured on CPU, 2 cores, torch 2.x): the fast path computes the same functions
with fused kernels - :func:`torch.nn.functional.layer_norm` (with the book's biased variance and
``eps=1e-5``), :func:`torch.nn.functional.gelu` with ``approximate="tanh"`` and the attention's
:func:`~torch.nn.functional.scaled_dot_product_attention` - and agrees with the book's explicit
code to 1e-5 in float32 (tests/test_nn_gpt.py). ``fast_path=False`` runs the book's code line
for line (and gives its numbers bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_features, check_positive, check_rank, check_seq_len, check_token_ids
from .attention import MultiHeadAttention

__all__ = [
    "GELU",
    "GPT_CONFIGS",
    "GPT_CONFIG_124M",
    "FeedForward",
    "GPTModel",
    "LayerNorm",
    "TransformerBlock",
    "check_config",
    "count_parameters",
]

#: The book's configuration of the smallest GPT-2 (section 4.1).
GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,  # vocabulary size (GPT-2's BPE)
    "context_length": 1024,  # context length
    "emb_dim": 768,  # embedding dimension
    "n_heads": 12,  # number of attention heads
    "n_layers": 12,  # number of layers
    "drop_rate": 0.1,  # dropout rate
    "qkv_bias": False,  # query-key-value bias
}


def _sized(emb_dim: int, n_layers: int, n_heads: int, **extra: Any) -> dict[str, Any]:
    return {
        **GPT_CONFIG_124M,
        "emb_dim": emb_dim,
        "n_layers": n_layers,
        "n_heads": n_heads,
        **extra,
    }


#: Configurations by name: the four GPT-2 sizes of the book (section 5.5) and small ones that
#: train on a CPU in minutes (``tiny``: 2 layers of 128 dims, 128 tokens of context, no dropout;
#: ``small``: 4 layers of 256 dims, 256 tokens).
GPT_CONFIGS: dict[str, dict[str, Any]] = {
    "124M": dict(GPT_CONFIG_124M),
    "355M": _sized(1024, 24, 16),
    "774M": _sized(1280, 36, 20),
    "1558M": _sized(1600, 48, 25),
    "small": _sized(256, 4, 4, context_length=256, drop_rate=0.1),
    "tiny": _sized(128, 2, 4, context_length=128, drop_rate=0.0),
}

_CONFIG_KEYS = (
    "vocab_size",
    "context_length",
    "emb_dim",
    "n_heads",
    "n_layers",
    "drop_rate",
    "qkv_bias",
)


def check_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` checked (every key of :data:`GPT_CONFIG_124M`, sizes positive, ``emb_dim``
    divisible by ``n_heads``, ``drop_rate`` in [0, 1)) and copied; ``ValueError`` says what is
    wrong.

    >>> check_config({**GPT_CONFIG_124M, "n_heads": 7})
    Traceback (most recent call last):
    ...
    ValueError: emb_dim must be divisible by n_heads, got emb_dim=768 and n_heads=7
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"a GPT configuration is a dict like GPT_CONFIG_124M, got {type(cfg)}")
    missing = [key for key in _CONFIG_KEYS if key not in cfg]
    if missing:
        raise ValueError(
            f"the GPT configuration misses {', '.join(map(repr, missing))}; it needs "
            f"{', '.join(_CONFIG_KEYS)} (start from a copy of GPT_CONFIG_124M)"
        )
    out = dict(cfg)
    for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        out[key] = check_positive(key, cfg[key])
    if out["emb_dim"] % out["n_heads"]:
        raise ValueError(
            f"emb_dim must be divisible by n_heads, got emb_dim={out['emb_dim']} and "
            f"n_heads={out['n_heads']}"
        )
    rate = cfg["drop_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"drop_rate must be a number in [0, 1), got {rate!r}")
    out["drop_rate"] = float(rate)
    out["qkv_bias"] = bool(cfg["qkv_bias"])
    return out


def count_parameters(model: nn.Module, *, tied: bool = False) -> int:
    """The number of parameters of ``model`` (buffers such as the causal masks not counted).

    With ``tied=True`` the output head is not counted, as in the book's count of a GPT-2 that
    ties it to the token embedding (section 4.6: 163,009,536 - 38,597,376 = 124,412,160). Works
    on a model built on the ``meta`` device (no memory is used).

    >>> import torch
    >>> with torch.device("meta"):
    ...     model = GPTModel(GPT_CONFIG_124M)
    >>> f"{count_parameters(model):,}", f"{count_parameters(model, tied=True):,}"
    ('163,009,536', '124,412,160')
    """
    total = sum(p.numel() for p in model.parameters())
    if tied:
        head = getattr(model, "out_head", None)
        if not isinstance(head, nn.Linear):
            raise ValueError("tied=True counts a GPTModel: the model has no out_head")
        total -= head.weight.numel()
    return total


class LayerNorm(nn.Module):
    """The book's layer normalization (section 4.2): mean 0 and variance 1 over the last dim,
    then ``scale * x + shift``.

    ``eps = 1e-5``; ``scale`` (ones) and ``shift`` (zeros) are ``nn.Parameter`` of
    ``emb_dim`` values. The variance is the biased one (``unbiased=False``), as GPT-2's.
    The fast path is :func:`torch.nn.functional.layer_norm` (the same function, fused).

    >>> import torch
    >>> _ = torch.manual_seed(123)
    >>> ln = LayerNorm(emb_dim=5)
    >>> out = ln(torch.randn(2, 5))
    >>> out.mean(dim=-1).abs().max() < 1e-6, out.var(dim=-1, unbiased=False)
    (tensor(True), tensor([1.0000, 1.0000], grad_fn=<VarBackward0>))
    """

    def __init__(self, emb_dim: int, *, fast_path: bool = True) -> None:
        super().__init__()
        emb_dim = check_positive("emb_dim", emb_dim)
        self.emb_dim = emb_dim
        self.fast_path = fast_path
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` normalized over its last dimension (of size ``emb_dim``)."""
        check_features(type(self).__name__, x, self.emb_dim, "emb_dim")
        if self.fast_path:
            return F.layer_norm(x, (self.emb_dim,), self.scale, self.shift, self.eps)
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift

    def extra_repr(self) -> str:
        return f"emb_dim={self.emb_dim}, eps={self.eps}, fast_path={self.fast_path}"


#: The book's ``torch.sqrt(torch.tensor(2.0 / torch.pi))``, a float32 value.
_SQRT_2_OVER_PI = float(torch.sqrt(torch.tensor(2.0 / math.pi)))


class GELU(nn.Module):
    """The GELU activation in the tanh approximation GPT-2 uses (section 4.3):
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``.

    The fast path is ``F.gelu(x, approximate="tanh")`` (the same formula, fused).

    >>> import torch
    >>> GELU()(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    tensor([-0.1588,  0.0000,  0.8412,  1.9546])
    """

    def __init__(self, *, fast_path: bool = True) -> None:
        super().__init__()
        self.fast_path = fast_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """GELU of ``x``, elementwise."""
        if self.fast_path:
            return F.gelu(x, approximate="tanh")
        return 0.5 * x * (1 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3))))

    def extra_repr(self) -> str:
        return f"fast_path={self.fast_path}"


class FeedForward(nn.Module):
    """The book's feed forward module (section 4.3): ``Linear(emb_dim, 4 * emb_dim)``, GELU,
    ``Linear(4 * emb_dim, emb_dim)`` in ``layers`` (an ``nn.Sequential``).

    >>> import torch
    >>> ffn = FeedForward({**GPT_CONFIG_124M, "emb_dim": 8, "n_heads": 2})
    >>> ffn(torch.rand(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, cfg: Mapping[str, Any], *, fast_path: bool = True) -> None:
        super().__init__()
        emb_dim = check_positive("emb_dim", cfg["emb_dim"])
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            GELU(fast_path=fast_path),
            nn.Linear(4 * emb_dim, emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., emb_dim)`` to ``(..., emb_dim)``."""
        out: torch.Tensor = self.layers(x)
        return out


class TransformerBlock(nn.Module):
    """The book's transformer block (section 4.5): pre-LayerNorm multi-head attention and feed
    forward, each followed by dropout and added to its input (shortcut connections).

    Attributes in the book's order: ``att`` (:class:`fastllm.nn.MultiHeadAttention` with
    ``emb_dim`` in and out, ``n_heads``, ``drop_rate``, ``qkv_bias``), ``ff``, ``norm1``,
    ``norm2``, ``drop_shortcut``. Input and output ``(batch, num_tokens, emb_dim)``.

    >>> import torch
    >>> _ = torch.manual_seed(123)
    >>> block = TransformerBlock({**GPT_CONFIG_124M, "emb_dim": 64, "n_heads": 4})
    >>> block(torch.rand(2, 4, 64)).shape
    torch.Size([2, 4, 64])
    """

    def __init__(self, cfg: Mapping[str, Any], *, fast_path: bool = True) -> None:
        super().__init__()
        cfg = check_config(cfg)
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
            fast_path=fast_path,
        )
        self.ff = FeedForward(cfg, fast_path=fast_path)
        self.norm1 = LayerNorm(cfg["emb_dim"], fast_path=fast_path)
        self.norm2 = LayerNorm(cfg["emb_dim"], fast_path=fast_path)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, num_tokens, emb_dim)`` to the same shape."""
        # shortcut connection for the attention block
        shortcut = x
        x = self.norm1(x)
        x = self.att(x)
        x = self.drop_shortcut(x)
        x = x + shortcut
        # shortcut connection for the feed forward block
        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)
        x = self.drop_shortcut(x)
        return x + shortcut


class GPTModel(nn.Module):
    """The book's GPT model (section 4.6): token + position embeddings, dropout, ``n_layers``
    :class:`TransformerBlock`, a final :class:`LayerNorm` and a linear output head without
    bias, giving ``(batch, num_tokens, vocab_size)`` logits for ``(batch, num_tokens)`` ids.

    Attributes in the book's order: ``tok_emb``, ``pos_emb``, ``drop_emb``, ``trf_blocks`` (an
    ``nn.Sequential``), ``final_norm``, ``out_head``. ``cfg`` is a dictionary like
    :data:`GPT_CONFIG_124M` (checked by :func:`check_config`; kept as ``model.cfg``).
    ``fast_path=False`` runs the book's explicit code everywhere. ``check_token_ids`` checks
    that every id is in ``[0, vocab_size)`` (it reads a value back from the device: turn it off
    in a CUDA loop whose data is trusted).

    >>> import torch
    >>> _ = torch.manual_seed(123)
    >>> model = GPTModel({**GPT_CONFIG_124M, "emb_dim": 64, "n_layers": 2, "n_heads": 4})
    >>> model(torch.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])).shape
    torch.Size([2, 4, 50257])
    """

    def __init__(
        self, cfg: Mapping[str, Any], *, fast_path: bool = True, check_token_ids: bool = True
    ) -> None:
        super().__init__()
        cfg = check_config(cfg)
        self.cfg = cfg
        self.check_token_ids = check_token_ids
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(cfg, fast_path=fast_path) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(cfg["emb_dim"], fast_path=fast_path)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_tokens, vocab_size)`` for token ids ``(batch, num_tokens)``."""
        logits: torch.Tensor = self.out_head(self.hidden(in_idx))
        return logits

    def hidden(self, in_idx: torch.Tensor) -> torch.Tensor:
        """The book's forward pass up to the output head: the final-normed hidden states
        ``(batch, num_tokens, emb_dim)``; ``forward`` is ``out_head(hidden(in_idx))``.

        :func:`fastllm.pretrain.calc_loss_batch` applies the head and the cross entropy
        together in chunks of tokens, so that the ``num_tokens x vocab_size`` logits are never
        all in memory at once."""
        name = type(self).__name__
        check_rank(name, in_idx, (2,), "of token ids (batch, num_tokens)")
        in_idx = check_token_ids(name, in_idx, self.cfg["vocab_size"], self.check_token_ids)
        _batch_size, seq_len = in_idx.shape
        check_seq_len(name, seq_len, self.cfg["context_length"])
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = tok_embeds + pos_embeds  # (batch, num_tokens, emb_dim)
        x = self.drop_emb(x)
        x = self.trf_blocks(x)
        out: torch.Tensor = self.final_norm(x)
        return out

    @property
    def context_length(self) -> int:
        """The longest input the model takes (its positional embedding's size)."""
        return int(self.cfg["context_length"])
