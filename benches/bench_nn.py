"""Benchmarks for ``fastllm.nn.MultiHeadAttention`` (pytest-benchmark).

Forward pass on a ``(8, 1024, 768)`` float32 input with 12 heads, eval mode, ``torch.no_grad()``,
one test per contender (all four compute the same function from the same weights, and each
test checks its output against fastllm's):

* ``fastllm``     - ``fastllm.nn.MultiHeadAttention`` (fast path: fused causal SDPA)
* ``book``        - the book's explicit ``MultiHeadAttention`` (masked scores, softmax, dropout)
* ``bare_sdpa``   - the minimal work: the same projections around a bare
  ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``
* ``torch_mha``   - ``torch.nn.MultiheadAttention`` with a causal mask

Targets (issue 5): fastllm >= 1.4x the book's implementation and within 10% of bare SDPA.

    python3 -m pytest benches/bench_nn.py --benchmark-only -p no:cacheprovider
    python3 benches/bench_nn.py          # the same, then prints the ratios

CUDA variants run (group ``mha-forward-cuda``) where a GPU is available.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from book_torch import BookMultiHeadAttention  # noqa: E402  (tests/: the book's code)
from fastllm.nn import MultiHeadAttention  # noqa: E402

BATCH, NUM_TOKENS, D_MODEL, NUM_HEADS = 8, 1024, 768, 12
ROUNDS = {"cpu": 8, "cuda": 20}
WARMUP_ROUNDS = 3
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


def bare_sdpa(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """The minimal work: projections, head split, fused causal SDPA, merge, output projection."""
    b, n, _ = x.shape
    h, hd = mha.num_heads, mha.head_dim
    q = mha.W_query(x).view(b, n, h, hd).transpose(1, 2)
    k = mha.W_key(x).view(b, n, h, hd).transpose(1, 2)
    v = mha.W_value(x).view(b, n, h, hd).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return mha.out_proj(out.transpose(1, 2).reshape(b, n, h * hd))


class Setup:
    """Shared weights and input for one device (built once per module)."""

    def __init__(self, device: str) -> None:
        torch.manual_seed(123)
        self.device = device
        self.x = torch.randn(BATCH, NUM_TOKENS, D_MODEL, device=device)
        self.fastllm = MultiHeadAttention(
            D_MODEL, D_MODEL, NUM_TOKENS, dropout=0.1, num_heads=NUM_HEADS
        )
        self.fastllm.to(device).eval()
        assert self.fastllm.uses_fast_path()

        self.book = BookMultiHeadAttention(D_MODEL, D_MODEL, NUM_TOKENS, 0.1, NUM_HEADS)
        self.book.load_state_dict(self.fastllm.state_dict())
        self.book.to(device).eval()

        self.torch_mha = nn.MultiheadAttention(
            D_MODEL, NUM_HEADS, dropout=0.1, bias=True, batch_first=True
        )
        with torch.no_grad():
            m = self.fastllm
            self.torch_mha.in_proj_weight.copy_(
                torch.cat([m.W_query.weight, m.W_key.weight, m.W_value.weight])
            )
            assert self.torch_mha.in_proj_bias is not None
            self.torch_mha.in_proj_bias.zero_()  # qkv_bias=False
            self.torch_mha.out_proj.weight.copy_(m.out_proj.weight)
            self.torch_mha.out_proj.bias.copy_(m.out_proj.bias)
        self.torch_mha.to(device).eval()
        self.causal_mask = nn.Transformer.generate_square_subsequent_mask(
            NUM_TOKENS, device=torch.device(device)
        )

        with torch.no_grad():
            self.expected = self.fastllm(self.x)

    def contender(self, name: str) -> Callable[[], torch.Tensor]:
        x = self.x
        if name == "fastllm":
            return lambda: self.fastllm(x)
        if name == "book":
            return lambda: self.book(x)
        if name == "bare_sdpa":
            return lambda: bare_sdpa(self.fastllm, x)
        if name == "torch_mha":
            return lambda: self.torch_mha(
                x, x, x, attn_mask=self.causal_mask, is_causal=True, need_weights=False
            )[0]
        raise KeyError(name)


_SETUPS: dict[str, Setup] = {}


def get_setup(device: str) -> Setup:
    if device not in _SETUPS:
        _SETUPS[device] = Setup(device)
    return _SETUPS[device]


def run(benchmark: Any, device: str, name: str) -> None:
    setup = get_setup(device)
    fn = setup.contender(name)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed() -> torch.Tensor:
        with torch.no_grad():
            out = fn()
        sync()
        return out

    benchmark.group = f"mha-forward-{device} (8, 1024, 768) fp32, 12 heads"
    benchmark.extra_info["contender"] = name
    out = benchmark.pedantic(
        timed, rounds=ROUNDS[device], warmup_rounds=WARMUP_ROUNDS, iterations=1
    )
    assert out.shape == (BATCH, NUM_TOKENS, D_MODEL)
    torch.testing.assert_close(out, setup.expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_mha_forward_fastllm(benchmark: Any, device: str) -> None:
    run(benchmark, device, "fastllm")


@pytest.mark.parametrize("device", DEVICES)
def test_mha_forward_bare_sdpa(benchmark: Any, device: str) -> None:
    run(benchmark, device, "bare_sdpa")


@pytest.mark.parametrize("device", DEVICES)
def test_mha_forward_torch_multihead_attention(benchmark: Any, device: str) -> None:
    run(benchmark, device, "torch_mha")


# Last on purpose: the book's path allocates ~1.2 GB of score matrices per call, and on a small
# VM the pages it hands back make the next few calls of whatever runs after it fault memory in
# again (a transient 2x slowdown). Running it last, after warm-up rounds, keeps the others clean.
@pytest.mark.parametrize("device", DEVICES)
def test_mha_forward_book_explicit(benchmark: Any, device: str) -> None:
    run(benchmark, device, "book")


def _print_ratios(report: Path) -> None:
    data = json.loads(report.read_text())
    stats: dict[str, dict[str, dict[str, float]]] = {}
    for bench in data["benchmarks"]:
        device = bench["params"]["device"]
        stats.setdefault(device, {})[bench["extra_info"]["contender"]] = bench["stats"]
    for device, by_name in stats.items():
        print(f"\n[{device}] forward time, ms (mean / median / min)")
        for name, st in sorted(by_name.items(), key=lambda kv: kv[1]["mean"]):
            print(
                f"  {name:10s} {st['mean'] * 1e3:9.1f} {st['median'] * 1e3:9.1f}"
                f" {st['min'] * 1e3:9.1f}"
            )
        for stat in ("mean", "median", "min"):
            m = {name: st[stat] for name, st in by_name.items()}
            if {"fastllm", "book", "bare_sdpa", "torch_mha"} <= m.keys():
                print(
                    f"  by {stat:6s}: fastllm {m['book'] / m['fastllm']:.2f}x the book "
                    f"(target >= 1.4x), {m['fastllm'] / m['bare_sdpa'] - 1.0:+.1%} vs bare SDPA "
                    f"(target within 10%), {m['torch_mha'] / m['fastllm']:.2f}x "
                    f"torch.nn.MultiheadAttention"
                )


if __name__ == "__main__":
    # pytest runs in a child process; this one only reads its JSON report and prints ratios
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "bench.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "--benchmark-only",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={report}",
            *sys.argv[1:],
        ]
        code = subprocess.run(cmd, check=False).returncode
        if report.exists():
            _print_ratios(report)
    sys.exit(code)
