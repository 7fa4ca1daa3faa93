"""Tests for the attention heat map helper ``fastllm.nn.plot_attention``."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")

from fastllm.nn import MultiHeadAttention, plot_attention  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOKENS = ["Your", "journey", "starts", "with", "one", "step"]


@pytest.fixture
def weights() -> torch.Tensor:
    torch.manual_seed(123)
    x = torch.rand(2, 6, 8)
    mha = MultiHeadAttention(8, 8, context_length=6, dropout=0.0, num_heads=2).eval()
    _, w = mha(x, return_weights=True)
    return w  # (2, 2, 6, 6), requires grad


def test_saves_a_png_with_token_labels(weights: torch.Tensor, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "attention.png"
    fig = plot_attention(weights, path, tokens=TOKENS, head=1, title="head 1")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS
    assert [t.get_text() for t in ax.get_yticklabels()] == TOKENS
    assert ax.get_title() == "head 1"
    # the picture is the selected head: the image holds weights[0, 1]
    image = ax.get_images()[0].get_array()
    torch.testing.assert_close(torch.as_tensor(image.data), weights[0, 1].detach())
    # small matrices are annotated with their values, one text per cell
    assert len(ax.texts) == 36
    assert ax.texts[0].get_text() == "1.00"  # the first token attends only to itself


@pytest.mark.parametrize("shape", ["2d", "3d", "4d"])
def test_accepts_all_weight_layouts(weights: torch.Tensor, shape: str) -> None:
    pytest.importorskip("matplotlib")
    selected = {"2d": weights[1, 0], "3d": weights[1], "4d": weights}[shape]
    fig = plot_attention(selected, batch=1, head=0, annotate=False)
    image = fig.axes[0].get_images()[0].get_array()
    torch.testing.assert_close(torch.as_tensor(image.data), weights[1, 0].detach())
    assert len(fig.axes[0].texts) == 0
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] != TOKENS


def test_bfloat16_weights_and_path_as_string(weights: torch.Tensor, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "bf16.png")
    plot_attention(weights.to(torch.bfloat16), path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_errors(weights: torch.Tensor) -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"got a 1-D tensor of shape \(6,\)"):
        plot_attention(weights[0, 0, 0])
    with pytest.raises(ValueError, match=r"head=2 is out of range for 2 head\(s\)"):
        plot_attention(weights, head=2)
    with pytest.raises(ValueError, match=r"batch=5 is out of range for 2 batch element"):
        plot_attention(weights, batch=5)
    with pytest.raises(ValueError, match=r"got 3 token labels for a 6x6 weight matrix"):
        plot_attention(weights, tokens=["a", "b", "c"])


def test_missing_matplotlib_gives_a_clear_import_error(
    weights: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plot_attention(weights)
