"""Input validation shared by the ``fastllm.nn`` modules.

Every check raises :class:`ValueError` with a message that names the offending values, so a
learner sees *what* was wrong instead of a bare ``assert`` or an index error deep inside torch.
"""

from __future__ import annotations

import operator

import torch

__all__ = [
    "check_features",
    "check_positive",
    "check_rank",
    "check_seq_len",
    "check_token_ids",
]


def check_positive(name: str, value: int) -> int:
    """Return ``value`` as an ``int``; raise ``ValueError`` unless it is a positive integer.

    Integer-like values (``numpy.int64``, a 0-D integer tensor) are accepted via
    ``operator.index``; ``bool`` and floats are not.
    """
    try:
        as_int = operator.index(value)
    except TypeError:
        as_int = None
    if isinstance(value, bool) or as_int is None or as_int <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return as_int


def check_rank(name: str, x: torch.Tensor, allowed: tuple[int, ...], layout: str) -> None:
    """Raise ``ValueError`` unless ``x.dim()`` is one of ``allowed``.

    ``layout`` describes the expected shapes in words, e.g. ``"(batch, num_tokens, d_in)"``.
    """
    if x.dim() not in allowed:
        ranks = " or ".join(str(r) for r in allowed)
        raise ValueError(
            f"{name} expects a {ranks}-D input {layout}, "
            f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
        )


def check_features(name: str, x: torch.Tensor, expected: int, what: str = "d_in") -> None:
    """Raise ``ValueError`` unless the last dimension of ``x`` is ``expected``."""
    if x.shape[-1] != expected:
        raise ValueError(
            f"{name} was built with {what}={expected}, but the input's last dimension is "
            f"{x.shape[-1]} (input shape {tuple(x.shape)})"
        )


def check_seq_len(name: str, num_tokens: int, context_length: int) -> None:
    """Raise ``ValueError`` if a sequence is longer than the module's ``context_length``."""
    if num_tokens > context_length:
        raise ValueError(
            f"{name}: sequence length {num_tokens} exceeds context_length {context_length}; "
            f"truncate the input or build the module with a larger context_length"
        )


def check_token_ids(
    name: str, ids: torch.Tensor, vocab_size: int, check_range: bool = True
) -> torch.Tensor:
    """Validate token ids and return them as an int32/int64 tensor.

    Float, complex and bool tensors are rejected; other integer dtypes are widened to int64.
    With ``check_range`` the ids must lie in ``[0, vocab_size)`` (this reads one value back
    from the device, i.e. it synchronises on CUDA).
    """
    if ids.dtype in (torch.int64, torch.int32):
        out = ids
    elif ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dtype.is_complex:
        raise ValueError(
            f"{name} expects integer token ids (torch.int64 or torch.int32), got dtype {ids.dtype}"
            f"; convert with ids.long() if the values really are token ids"
        )
    else:
        out = ids.long()
    if check_range and out.numel() > 0:
        lo = int(out.min().item())
        hi = int(out.max().item())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name}: token id {bad} is out of range for vocab_size {vocab_size} "
                f"(ids must lie in [0, {vocab_size - 1}]; min id {lo}, max id {hi})"
            )
    return out
