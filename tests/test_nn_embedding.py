"""Tests for ``fastllm.nn.GPTEmbedding`` and the sinusoidal positional encoding."""

from __future__ import annotations

import io
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from fastllm.nn import (  # noqa: E402
    GPTEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def exact(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=0.0)


# --------------------------------------------------------------------------------------------
# GPTEmbedding
# --------------------------------------------------------------------------------------------


def test_token_embedding_book_value() -> None:
    # section 2.7: torch.manual_seed(123); nn.Embedding(6, 3).weight
    torch.manual_seed(123)
    embed = GPTEmbedding(vocab_size=6, emb_dim=3, context_length=4)
    expected = torch.tensor(
        [
            [0.3374, -0.1778, -0.1690],
            [0.9178, 1.5810, 1.3010],
            [1.2753, -0.2010, -0.1606],
            [-0.4015, 0.9666, -1.1481],
            [-1.1589, 0.3255, -0.6315],
            [-2.8400, -0.7849, -1.4096],
        ]
    )
    torch.testing.assert_close(embed.tok_emb.weight.detach(), expected, rtol=0.0, atol=1e-4)


def test_matches_book_layers_under_the_same_seed() -> None:
    torch.manual_seed(123)
    embed = GPTEmbedding(vocab_size=50257, emb_dim=256, context_length=4)
    torch.manual_seed(123)
    token_embedding_layer = nn.Embedding(50257, 256)
    pos_embedding_layer = nn.Embedding(4, 256)
    assert list(embed.state_dict()) == ["tok_emb.weight", "pos_emb.weight"]
    exact(embed.tok_emb.weight, token_embedding_layer.weight)
    exact(embed.pos_emb.weight, pos_embedding_layer.weight)

    inputs = torch.tensor([[40, 367, 2885, 1464], [1807, 3619, 402, 271]])
    out = embed(inputs)
    assert out.shape == (2, 4, 256) and out.dtype == torch.float32
    expected = token_embedding_layer(inputs) + pos_embedding_layer(torch.arange(4))
    exact(out, expected)


def test_int32_int64_and_small_int_ids_agree() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(100, 8, 6)
    ids = torch.randint(0, 100, (3, 6))
    out = embed(ids)
    exact(embed(ids.to(torch.int32)), out)
    exact(embed(ids.to(torch.int16)), out)  # other integer dtypes are widened
    exact(embed(ids.to(torch.uint8)), out)


def test_unbatched_and_short_sequences() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(100, 8, 6)
    ids = torch.randint(0, 100, (2, 6))
    batched = embed(ids)
    exact(embed(ids[1]), batched[1])
    short = embed(ids[:, :3])
    assert short.shape == (2, 3, 8)
    exact(short, batched[:, :3])  # positions restart at 0 for every window


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(50, 32, 8, dropout=0.5)
    ids = torch.randint(0, 50, (4, 8))
    expected = embed.tok_emb(ids) + embed.pos_emb(torch.arange(8))
    out = embed.train()(ids)
    assert (out == 0).any()
    kept = out != 0
    torch.testing.assert_close(out[kept], 2.0 * expected[kept])
    embed.eval()
    exact(embed(ids), expected)
    exact(embed(ids), embed(ids))


def test_gradients_flow_and_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(50, 16, 8)
    ids = torch.randint(0, 50, (2, 8))
    embed(ids).pow(2).sum().backward()
    assert embed.tok_emb.weight.grad is not None
    assert embed.tok_emb.weight.grad[ids.unique()].abs().sum() > 0
    assert embed.pos_emb.weight.grad is not None and embed.pos_emb.weight.grad.abs().sum() > 0

    buffer = io.BytesIO()
    torch.save(embed.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    restored = GPTEmbedding(50, 16, 8)
    assert not torch.equal(restored(ids), embed(ids))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    exact(restored(ids), embed(ids))


def test_bfloat16_embedding() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(50, 16, 8)
    ids = torch.randint(0, 50, (2, 8))
    expected = embed(ids)
    out = embed.to(torch.bfloat16)(ids)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.0, atol=3e-2)


def test_error_float_token_ids() -> None:
    embed = GPTEmbedding(50, 4, 8)
    with pytest.raises(ValueError, match=r"integer token ids .* got dtype torch\.float32"):
        embed(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"got dtype torch\.bool"):
        embed(torch.tensor([[True, False]]))


def test_error_token_ids_out_of_range() -> None:
    embed = GPTEmbedding(50, 4, 8)
    with pytest.raises(ValueError, match=r"token id 50 is out of range for vocab_size 50"):
        embed(torch.tensor([[1, 50, 3]]))
    with pytest.raises(ValueError, match=r"token id -1 is out of range for vocab_size 50"):
        embed(torch.tensor([[-1, 2]]))
    unchecked = GPTEmbedding(50, 4, 8, check_token_ids=False)
    assert "check_token_ids=False" in repr(unchecked)
    with pytest.raises(IndexError):  # the check is off: torch's own error
        unchecked(torch.tensor([[1, 50]]))


def test_error_sequence_longer_than_context_length() -> None:
    embed = GPTEmbedding(50, 4, context_length=4)
    with pytest.raises(ValueError, match="sequence length 5 exceeds context_length 4"):
        embed(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence length 6 exceeds context_length 4"):
        embed(torch.zeros(6, dtype=torch.long))


def test_error_wrong_rank() -> None:
    embed = GPTEmbedding(50, 4, 8)
    with pytest.raises(ValueError, match=r"GPTEmbedding expects a 1 or 2-D input.*3-D tensor"):
        embed(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got a 0-D tensor"):
        embed(torch.tensor(3))


def test_error_bad_constructor_values() -> None:
    with pytest.raises(ValueError, match="vocab_size must be a positive integer, got 0"):
        GPTEmbedding(0, 4, 8)
    with pytest.raises(ValueError, match="emb_dim must be a positive integer, got -1"):
        GPTEmbedding(10, -1, 8)
    with pytest.raises(ValueError, match="context_length must be a positive integer, got 0"):
        GPTEmbedding(10, 4, 0)


@needs_cuda
def test_cuda_embedding() -> None:
    torch.manual_seed(0)
    embed = GPTEmbedding(50, 16, 8)
    ids = torch.randint(0, 50, (2, 8))
    expected = embed(ids)
    got = embed.to("cuda")(ids.to("cuda"))
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected)
    with pytest.raises(ValueError, match="token id 50 is out of range"):
        embed(torch.tensor([[1, 50]], device="cuda"))


# --------------------------------------------------------------------------------------------
# sinusoidal positional encoding
# --------------------------------------------------------------------------------------------


def formula(context_length: int, emb_dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    table = [[0.0] * emb_dim for _ in range(context_length)]
    for pos in range(context_length):
        for i in range((emb_dim + 1) // 2):
            angle = pos / 10000 ** (2 * i / emb_dim)
            table[pos][2 * i] = math.sin(angle)
            if 2 * i + 1 < emb_dim:
                table[pos][2 * i + 1] = math.cos(angle)
    return torch.tensor(table, dtype=torch.float32)


@pytest.mark.parametrize(("context_length", "emb_dim"), [(50, 16), (1024, 512), (9, 7), (3, 1)])
def test_sinusoidal_table_matches_the_formula(context_length: int, emb_dim: int) -> None:
    table = sinusoidal_table(context_length, emb_dim)
    assert table.shape == (context_length, emb_dim) and table.dtype == torch.float32
    torch.testing.assert_close(table, formula(context_length, emb_dim), rtol=0.0, atol=1e-6)


def test_sinusoidal_encoding_properties() -> None:
    pe = SinusoidalPositionalEncoding(context_length=64, emb_dim=32)
    exact(pe.encoding(1)[0], torch.tensor([0.0, 1.0] * 16))  # position 0: sin 0, cos 0
    exact(pe.encoding(64), pe.pe)
    assert pe.pe.abs().max() <= 1.0
    assert pe.state_dict() == {}  # fixed, not saved
    assert "pe" in dict(pe.named_buffers()) and list(pe.parameters()) == []
    # every position gets a distinct encoding
    assert torch.cdist(pe.pe, pe.pe).fill_diagonal_(1.0).min() > 0.1


def test_sinusoidal_forward_adds_the_encoding() -> None:
    pe = SinusoidalPositionalEncoding(context_length=16, emb_dim=8)
    x = torch.randn(3, 10, 8)
    out = pe(x)
    exact(out, x + pe.pe[:10])
    torch.testing.assert_close(out - x, formula(16, 8)[:10].expand(3, 10, 8))
    exact(pe(x[0]), out[0])  # unbatched
    out16 = pe(x.to(torch.bfloat16))
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out, rtol=0.0, atol=5e-2)
    pe64 = pe.to(torch.float64)
    assert pe64.pe.dtype == torch.float64


def test_sinusoidal_errors() -> None:
    pe = SinusoidalPositionalEncoding(context_length=4, emb_dim=8)
    with pytest.raises(ValueError, match="sequence length 5 exceeds context_length 4"):
        pe(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="sequence length 5 exceeds context_length 4"):
        pe.encoding(5)
    with pytest.raises(ValueError, match=r"emb_dim=8, but the input's last dimension is 6"):
        pe(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"expects a 2 or 3-D input.*1-D tensor"):
        pe(torch.randn(8))
    with pytest.raises(ValueError, match=r"float embeddings, got dtype torch\.int64"):
        pe(torch.zeros(2, 3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="emb_dim must be a positive integer, got 0"):
        SinusoidalPositionalEncoding(4, 0)
