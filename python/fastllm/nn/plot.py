"""A heat map of attention weights (matplotlib is an optional dependency)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_attention"]


def _select_head(weights: torch.Tensor, batch: int, head: int) -> torch.Tensor:
    """Reduce ``(n, n)``, ``(heads, n, n)`` or ``(batch, heads, n, n)`` weights to ``(n, n)``."""
    if weights.dim() not in (2, 3, 4):
        raise ValueError(
            "plot_attention expects weights of shape (num_tokens, num_tokens), "
            "(num_heads, num_tokens, num_tokens) or (batch, num_heads, num_tokens, num_tokens), "
            f"got a {weights.dim()}-D tensor of shape {tuple(weights.shape)}"
        )
    if weights.dim() == 4:
        if not -weights.shape[0] <= batch < weights.shape[0]:
            raise ValueError(
                f"plot_attention: batch={batch} is out of range for {weights.shape[0]} "
                f"batch element(s)"
            )
        weights = weights[batch]
    if weights.dim() == 3:
        if not -weights.shape[0] <= head < weights.shape[0]:
            raise ValueError(
                f"plot_attention: head={head} is out of range for {weights.shape[0]} head(s)"
            )
        weights = weights[head]
    return weights


def plot_attention(
    weights: torch.Tensor,
    path: str | os.PathLike[str] | None = None,
    *,
    tokens: Sequence[str] | None = None,
    head: int = 0,
    batch: int = 0,
    title: str | None = None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    dpi: int = 150,
) -> Figure:
    """Plot one head's attention weights as a heat map and (optionally) save it as a PNG.

    ``weights`` is ``(num_tokens, num_tokens)``, ``(num_heads, num_tokens, num_tokens)`` or
    ``(batch, num_heads, num_tokens, num_tokens)`` (what ``MultiHeadAttention(...,
    return_weights=True)`` returns); ``batch`` and ``head`` pick the matrix to draw. Rows are
    queries (the attending token), columns are keys (the token attended to). ``tokens`` labels
    both axes; ``annotate`` writes each weight in its cell (default: when there are at most 16
    tokens). With ``path`` the figure is saved there (PNG by default). Returns the matplotlib
    ``Figure``; no pyplot state is touched, so it works headless (Agg).

    Needs matplotlib: ``pip install matplotlib`` (or ``pip install fastllm[plot]``).

    >>> import torch
    >>> from fastllm.nn import MultiHeadAttention
    >>> x = torch.rand(1, 6, 3)
    >>> mha = MultiHeadAttention(3, 2, context_length=6, dropout=0.0, num_heads=2).eval()
    >>> _, w = mha(x, return_weights=True)
    >>> tokens = ["Your", "journey", "starts", "with", "one", "step"]
    >>> fig = plot_attention(w, "attention.png", tokens=tokens, head=0)  # doctest: +SKIP
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_attention needs matplotlib, which is not installed: "
            "pip install matplotlib (or pip install fastllm[plot])"
        ) from exc

    matrix = _select_head(weights, batch, head).detach().to("cpu", torch.float32)
    n_rows, n_cols = matrix.shape
    if tokens is not None:
        labels = [str(t) for t in tokens]
        if len(labels) != n_rows or n_rows != n_cols:
            raise ValueError(
                f"plot_attention: got {len(labels)} token labels for a "
                f"{n_rows}x{n_cols} weight matrix"
            )
    if annotate is None:
        annotate = max(n_rows, n_cols) <= 16

    size = min(12.0, max(4.0, 0.6 * max(n_rows, n_cols) + 2.0))
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    values = matrix.numpy()
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=max(float(values.max()), 1e-12))
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_xlabel("key (attended-to token)")
    ax.set_ylabel("query (attending token)")
    if tokens is not None:
        ax.set_xticks(range(n_cols), labels=labels, rotation=45, ha="right")
        ax.set_yticks(range(n_rows), labels=labels)
    if annotate:
        threshold = 0.6 * float(values.max())
        for i in range(n_rows):
            for j in range(n_cols):
                ax.text(
                    j,
                    i,
                    f"{values[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if values[i, j] > threshold else "white",
                )
    ax.set_title(title if title is not None else f"attention weights, head {head}")
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi)
    return fig
