"""Make ``docs/attention.png``, the attention heat map shown in the README.

The book's six-token example ("Your journey starts with one step", the 3-D embeddings of
chapter 3) through ``MultiHeadAttention(d_in=3, d_out=2, num_heads=2)`` built under
``torch.manual_seed(123)`` - the book's own multi-head example - and head 0's causal attention
weights drawn with :func:`fastllm.nn.plot_attention`.

    python3 benches/plot_attention_example.py [OUTPUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import torch

from fastllm.nn import MultiHeadAttention, plot_attention

matplotlib.use("Agg")

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],  # Your
        [0.55, 0.87, 0.66],  # journey
        [0.57, 0.85, 0.64],  # starts
        [0.22, 0.58, 0.33],  # with
        [0.77, 0.25, 0.10],  # one
        [0.05, 0.80, 0.55],  # step
    ]
)


def main(out: Path) -> None:
    batch = torch.stack((INPUTS, INPUTS))
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 2, context_length=batch.shape[1], dropout=0.0, num_heads=2)
    mha.eval()
    with torch.no_grad():
        _context, weights = mha(batch, return_weights=True)  # (2, 2, 6, 6)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_attention(
        weights,
        out,
        tokens=TOKENS,
        head=0,
        title="Causal multi-head attention, head 0\n(book example, torch.manual_seed(123))",
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "docs" / "attention.png"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
