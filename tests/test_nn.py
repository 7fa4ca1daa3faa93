"""Tests for the attention family in ``fastllm.nn`` (chapter 3 of the book).

The book-style reference classes below are written out verbatim from the book so that every
``fastllm.nn`` class can be compared with them: same seed -> same parameters -> same outputs.
"""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from fastllm.nn import (  # noqa: E402
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    simplified_attention,
    simplified_attention_weights,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --------------------------------------------------------------------------------------------
# the book's inputs and reference implementations
# --------------------------------------------------------------------------------------------

from book_torch import (  # noqa: E402  (the book's reference classes)
    BOOK_INPUTS,
    BookCausalAttention,
    BookMultiHeadAttention,
    BookMultiHeadAttentionWrapper,
    BookSelfAttentionV1,
    BookSelfAttentionV2,
)


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.tensor(BOOK_INPUTS)


@pytest.fixture
def batch(inputs: torch.Tensor) -> torch.Tensor:
    return torch.stack((inputs, inputs), dim=0)


def assert_same_state(ours: nn.Module, book: nn.Module) -> None:
    """Same parameter/buffer names, in the same order, with identical values."""
    ours_sd, book_sd = ours.state_dict(), book.state_dict()
    assert list(ours_sd) == list(book_sd)
    for key in ours_sd:
        assert torch.equal(ours_sd[key], book_sd[key]), key


def exact(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=0.0)


# --------------------------------------------------------------------------------------------
# known values from the book
# --------------------------------------------------------------------------------------------


def test_simplified_attention_book_values(inputs: torch.Tensor) -> None:
    context, weights = simplified_attention(inputs, return_weights=True)
    # section 3.3: the weights of query x^2 ("journey") and all context vectors
    torch.testing.assert_close(
        weights[1],
        torch.tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581]),
        rtol=0.0,
        atol=1e-4,
    )
    expected_context = torch.tensor(
        [
            [0.4421, 0.5931, 0.5790],
            [0.4419, 0.6515, 0.5683],
            [0.4431, 0.6496, 0.5671],
            [0.4304, 0.6298, 0.5510],
            [0.4671, 0.5910, 0.5266],
            [0.4177, 0.6503, 0.5645],
        ]
    )
    torch.testing.assert_close(context, expected_context, rtol=0.0, atol=1e-4)
    # the book's own formulation, step by step
    exact(weights, torch.softmax(inputs @ inputs.T, dim=-1))
    exact(context, torch.softmax(inputs @ inputs.T, dim=-1) @ inputs)
    exact(simplified_attention(inputs), context)
    exact(simplified_attention_weights(inputs), weights)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(6))


def test_simplified_attention_batched(inputs: torch.Tensor) -> None:
    other = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    context, weights = simplified_attention(torch.stack((inputs, other)), return_weights=True)
    assert context.shape == (2, 6, 3)
    assert weights.shape == (2, 6, 6)
    torch.testing.assert_close(context[0], simplified_attention(inputs))
    torch.testing.assert_close(context[1], simplified_attention(other))


def test_self_attention_v1_book_value(inputs: torch.Tensor) -> None:
    torch.manual_seed(123)
    sa_v1 = SelfAttentionV1(d_in=3, d_out=2)
    out = sa_v1(inputs)
    assert out.shape == (6, 2)
    torch.testing.assert_close(out[0], torch.tensor([0.2996, 0.8053]), rtol=0.0, atol=1e-4)
    torch.manual_seed(123)
    book = BookSelfAttentionV1(3, 2)
    assert_same_state(sa_v1, book)
    exact(out, book(inputs))


def test_self_attention_v2_book_value(inputs: torch.Tensor) -> None:
    torch.manual_seed(789)
    sa_v2 = SelfAttentionV2(d_in=3, d_out=2)
    out = sa_v2(inputs)
    torch.testing.assert_close(out[0], torch.tensor([-0.0739, 0.0713]), rtol=0.0, atol=1e-4)
    torch.manual_seed(789)
    book = BookSelfAttentionV2(3, 2)
    assert_same_state(sa_v2, book)
    exact(out, book(inputs))


def test_self_attention_v2_with_bias_matches_book(inputs: torch.Tensor) -> None:
    torch.manual_seed(5)
    ours = SelfAttentionV2(3, 4, qkv_bias=True)
    torch.manual_seed(5)
    book = BookSelfAttentionV2(3, 4, qkv_bias=True)
    assert_same_state(ours, book)
    exact(ours(inputs), book(inputs))


def test_v1_weights_transfer_to_v2_gives_same_result(inputs: torch.Tensor) -> None:
    # book exercise 3.1: nn.Linear stores the transposed weight matrix
    torch.manual_seed(123)
    sa_v1 = SelfAttentionV1(3, 2)
    sa_v2 = SelfAttentionV2(3, 2)
    with torch.no_grad():
        sa_v2.W_query.weight.copy_(sa_v1.W_query.T)
        sa_v2.W_key.weight.copy_(sa_v1.W_key.T)
        sa_v2.W_value.weight.copy_(sa_v1.W_value.T)
    torch.testing.assert_close(sa_v2(inputs), sa_v1(inputs))


def test_self_attention_batched_matches_unbatched(inputs: torch.Tensor) -> None:
    torch.manual_seed(1)
    other = torch.rand(6, 3)
    for module in (SelfAttentionV1(3, 4), SelfAttentionV2(3, 4)):
        out = module(torch.stack((inputs, other)))
        assert out.shape == (2, 6, 4)
        torch.testing.assert_close(out[0], module(inputs))
        torch.testing.assert_close(out[1], module(other))


def test_causal_attention_book_value(batch: torch.Tensor) -> None:
    torch.manual_seed(123)
    context_length = batch.shape[1]
    ca = CausalAttention(3, 2, context_length, 0.0)
    out = ca(batch)
    assert out.shape == (2, 6, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([-0.4519, 0.2216]), rtol=0.0, atol=1e-4)
    torch.manual_seed(123)
    book = BookCausalAttention(3, 2, context_length, 0.0)
    assert_same_state(ca, book)
    exact(out, book(batch))


def test_multi_head_attention_wrapper_book_value(batch: torch.Tensor) -> None:
    torch.manual_seed(123)
    context_length = batch.shape[1]
    mha = MultiHeadAttentionWrapper(3, 2, context_length, 0.0, num_heads=2)
    out = mha(batch)
    assert out.shape == (2, 6, 4)  # d_out * num_heads
    torch.testing.assert_close(
        out[0, 0], torch.tensor([-0.4519, 0.2216, 0.4772, 0.1063]), rtol=0.0, atol=1e-4
    )
    torch.manual_seed(123)
    book = BookMultiHeadAttentionWrapper(3, 2, context_length, 0.0, num_heads=2)
    assert_same_state(mha, book)
    exact(out, book(batch))


@pytest.mark.parametrize("fast_path", [True, False])
def test_multi_head_attention_book_value(batch: torch.Tensor, fast_path: bool) -> None:
    torch.manual_seed(123)
    _batch_size, context_length, d_in = batch.shape
    mha = MultiHeadAttention(d_in, 2, context_length, 0.0, num_heads=2, fast_path=fast_path)
    assert mha.uses_fast_path() is fast_path  # training mode, but dropout 0
    out = mha(batch)
    assert out.shape == (2, 6, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.3190, 0.4858]), rtol=0.0, atol=1e-4)
    # further rows printed in the book
    torch.testing.assert_close(out[0, 1], torch.tensor([0.2943, 0.3897]), rtol=0.0, atol=1e-4)
    torch.manual_seed(123)
    book = BookMultiHeadAttention(d_in, 2, context_length, 0.0, num_heads=2)
    assert_same_state(mha, book)
    torch.testing.assert_close(out, book(batch), rtol=0.0, atol=1e-6)


def test_multi_head_attention_with_qkv_bias_matches_book() -> None:
    torch.manual_seed(7)
    ours = MultiHeadAttention(16, 24, 10, 0.0, num_heads=3, qkv_bias=True)
    torch.manual_seed(7)
    book = BookMultiHeadAttention(16, 24, 10, 0.0, num_heads=3, qkv_bias=True)
    assert_same_state(ours, book)
    x = torch.randn(3, 10, 16)
    torch.testing.assert_close(ours(x), book(x), rtol=0.0, atol=1e-5)
    exact(ours(x, return_weights=True)[0], book(x))


# --------------------------------------------------------------------------------------------
# fast path vs explicit path
# --------------------------------------------------------------------------------------------

CONFIGS = [
    # batch, num_tokens, d_in, d_out, num_heads, context_length, qkv_bias
    (2, 6, 3, 2, 2, 6, False),
    (4, 17, 32, 48, 6, 32, True),
    (3, 64, 64, 64, 4, 64, False),
    (1, 1, 8, 8, 2, 4, False),
    (2, 128, 96, 96, 12, 256, True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_fast_and_explicit_paths_agree_float32(config: tuple) -> None:
    b, n, d_in, d_out, heads, ctx, bias = config
    torch.manual_seed(0)
    fast = MultiHeadAttention(d_in, d_out, ctx, 0.1, heads, bias).eval()
    explicit = MultiHeadAttention(d_in, d_out, ctx, 0.1, heads, bias, fast_path=False).eval()
    explicit.load_state_dict(fast.state_dict())
    assert fast.uses_fast_path() and not explicit.uses_fast_path()
    x = torch.randn(b, n, d_in)
    with torch.no_grad():
        out_fast = fast(x)
        out_explicit = explicit(x)
        out_weights, weights = fast(x, return_weights=True)
    assert out_fast.shape == (b, n, d_out)
    assert weights.shape == (b, heads, n, n)
    torch.testing.assert_close(out_fast, out_explicit, rtol=0.0, atol=1e-5)
    exact(out_weights, out_explicit)


def test_fast_path_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDPA runs exactly when it gives the book's result."""
    calls: list[bool] = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting_sdpa(*args, **kwargs):
        calls.append(kwargs.get("is_causal", False))
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
    x = torch.randn(2, 5, 8)

    def sdpa_used(module: MultiHeadAttention, **kwargs: bool) -> bool:
        calls.clear()
        module(x, **kwargs)
        return calls == [True]  # called once, causal

    with_dropout = MultiHeadAttention(8, 8, 5, 0.5, num_heads=2)
    assert not sdpa_used(with_dropout.train())
    assert not with_dropout.uses_fast_path()
    assert sdpa_used(with_dropout.eval())
    assert not sdpa_used(with_dropout.eval(), return_weights=True)

    no_dropout = MultiHeadAttention(8, 8, 5, 0.0, num_heads=2)
    assert sdpa_used(no_dropout.train())
    assert sdpa_used(no_dropout.eval())
    assert not sdpa_used(no_dropout, return_weights=True)

    forced = MultiHeadAttention(8, 8, 5, 0.0, num_heads=2, fast_path=False).eval()
    assert not sdpa_used(forced)
    assert "fast_path=False" in repr(forced)


@pytest.mark.parametrize("fast_path", [True, False])
def test_bfloat16_on_cpu(fast_path: bool) -> None:
    torch.manual_seed(0)
    mha32 = MultiHeadAttention(32, 32, 16, 0.0, num_heads=4, fast_path=fast_path).eval()
    mha16 = MultiHeadAttention(32, 32, 16, 0.0, num_heads=4, fast_path=fast_path).eval()
    mha16.load_state_dict(mha32.state_dict())
    mha16.to(torch.bfloat16)
    assert mha16.mask.dtype == torch.bfloat16
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        out16 = mha16(x.to(torch.bfloat16))
        out32 = mha32(x)
        out16_w, w16 = mha16(x.to(torch.bfloat16), return_weights=True)
    assert out16.dtype == torch.bfloat16 and w16.dtype == torch.bfloat16
    assert torch.isfinite(out16.float()).all()
    torch.testing.assert_close(out16.float(), out32, rtol=0.0, atol=5e-2)
    torch.testing.assert_close(out16_w.float(), out16.float(), rtol=0.0, atol=5e-2)
    # the causal mask still holds in bfloat16
    assert (w16[..., torch.triu_indices(16, 16, 1)[0], torch.triu_indices(16, 16, 1)[1]] == 0).all()


def test_bfloat16_causal_attention_and_wrapper() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16)
    for module in (
        CausalAttention(16, 8, 8, 0.0),
        MultiHeadAttentionWrapper(16, 8, 8, 0.0, num_heads=2),
    ):
        with torch.no_grad():
            out32 = module(x)
            out16 = module.to(torch.bfloat16)(x.to(torch.bfloat16))
        assert out16.dtype == torch.bfloat16
        torch.testing.assert_close(out16.float(), out32, rtol=0.0, atol=5e-2)


# --------------------------------------------------------------------------------------------
# causality, dropout, gradients, state_dict, devices, shapes
# --------------------------------------------------------------------------------------------


def _causal_modules() -> list[tuple[str, nn.Module]]:
    torch.manual_seed(3)
    return [
        ("causal", CausalAttention(8, 6, 12, 0.0)),
        ("wrapper", MultiHeadAttentionWrapper(8, 6, 12, 0.0, num_heads=3)),
        ("mha-fast", MultiHeadAttention(8, 12, 12, 0.0, num_heads=3).eval()),
        ("mha-explicit", MultiHeadAttention(8, 12, 12, 0.0, num_heads=3, fast_path=False)),
    ]


@pytest.mark.parametrize("index", range(4), ids=["causal", "wrapper", "mha-fast", "mha-explicit"])
def test_changing_a_later_token_never_moves_earlier_outputs(index: int) -> None:
    _name, module = _causal_modules()[index]
    torch.manual_seed(11)
    x = torch.randn(2, 12, 8)
    with torch.no_grad():
        base = module(x)
        for k in (1, 5, 11):
            changed = x.clone()
            changed[:, k:] = torch.randn(2, 12 - k, 8) * 10.0
            out = module(changed)
            torch.testing.assert_close(out[:, :k], base[:, :k], rtol=0.0, atol=1e-6)
            assert not torch.allclose(out[:, k:], base[:, k:])  # later positions do move


def test_attention_weights_are_causal_and_normalised() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 8, 10, 0.0, num_heads=2)
    ca = CausalAttention(8, 4, 10, 0.0)
    x = torch.randn(3, 7, 8)
    _, w_mha = mha(x, return_weights=True)
    _, w_ca = ca(x, return_weights=True)
    assert w_mha.shape == (3, 2, 7, 7) and w_ca.shape == (3, 7, 7)
    upper = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)
    for w in (w_mha, w_ca):
        assert (w[..., upper] == 0).all()
        assert (w[..., ~upper] > 0).all()
        torch.testing.assert_close(w.sum(dim=-1), torch.ones(w.shape[:-1]))
    # the first token can only attend to itself
    exact(w_mha[..., 0, 0], torch.ones(3, 2))


def test_dropout_only_in_training_mode_mha() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 16, 8, 0.5, num_heads=4)
    reference = MultiHeadAttention(16, 16, 8, 0.0, num_heads=4)
    reference.load_state_dict(mha.state_dict())
    x = torch.randn(2, 8, 16)

    mha.train()
    torch.manual_seed(1)
    out_a, w_a = mha(x, return_weights=True)
    torch.manual_seed(2)
    out_b = mha(x)
    assert not torch.allclose(out_a, out_b)  # dropout is random in training
    assert not torch.allclose(out_a, reference(x))
    # the weights show dropout: zeros where the causal weights were positive, the rest * 1/(1-p)
    _, w_ref = reference(x, return_weights=True)
    lower = ~torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
    dropped = (w_a == 0) & lower
    assert dropped.any()
    torch.testing.assert_close(w_a[~dropped & lower], 2.0 * w_ref[~dropped & lower])

    mha.eval()
    exact(mha(x), mha(x))  # deterministic
    torch.testing.assert_close(mha(x), reference(x), rtol=0.0, atol=1e-6)
    exact(mha(x, return_weights=True)[1], w_ref)


def test_dropout_matches_the_book_in_training_mode(batch: torch.Tensor) -> None:
    # training with dropout goes through the book's nn.Dropout, so the same seed gives the same
    # dropped entries as the book's classes
    torch.manual_seed(123)
    ours = MultiHeadAttention(3, 4, 6, 0.5, num_heads=2)
    torch.manual_seed(123)
    book = BookMultiHeadAttention(3, 4, 6, 0.5, num_heads=2)
    torch.manual_seed(99)
    out_ours = ours(batch)
    torch.manual_seed(99)
    exact(out_ours, book(batch))

    torch.manual_seed(123)
    ca = CausalAttention(3, 2, 6, 0.5)
    torch.manual_seed(123)
    book_ca = BookCausalAttention(3, 2, 6, 0.5)
    torch.manual_seed(99)
    out_ca = ca(batch)
    torch.manual_seed(99)
    exact(out_ca, book_ca(batch))
    ca.eval()
    book_ca.eval()
    exact(ca(batch), book_ca(batch))


@pytest.mark.parametrize("fast_path", [True, False])
def test_gradients_flow(fast_path: bool) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 8, 6, 0.0, num_heads=2, qkv_bias=True, fast_path=fast_path)
    x = torch.randn(2, 6, 8, requires_grad=True)
    mha(x).pow(2).sum().backward()
    for name, param in mha.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_fast_and_explicit_gradients_agree() -> None:
    torch.manual_seed(0)
    fast = MultiHeadAttention(16, 16, 9, 0.0, num_heads=4)
    explicit = MultiHeadAttention(16, 16, 9, 0.0, num_heads=4, fast_path=False)
    explicit.load_state_dict(fast.state_dict())
    x = torch.randn(2, 9, 16)
    fast(x).sum().backward()
    explicit(x).sum().backward()
    for (name, p_fast), p_explicit in zip(fast.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(p_fast.grad, p_explicit.grad, rtol=0.0, atol=1e-5, msg=name)


def test_gradients_flow_through_other_classes(inputs: torch.Tensor) -> None:
    torch.manual_seed(0)
    modules = [
        SelfAttentionV1(3, 2),
        SelfAttentionV2(3, 2, qkv_bias=True),
        CausalAttention(3, 2, 6, 0.0),
        MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2),
    ]
    for module in modules:
        module(inputs).sum().backward()
        grads = [p.grad for p in module.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_state_dict_round_trip() -> None:
    torch.manual_seed(1)
    original = MultiHeadAttention(12, 12, 8, 0.1, num_heads=3, qkv_bias=True).eval()
    assert list(original.state_dict()) == [
        "mask",
        "W_query.weight",
        "W_query.bias",
        "W_key.weight",
        "W_key.bias",
        "W_value.weight",
        "W_value.bias",
        "out_proj.weight",
        "out_proj.bias",
    ]
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(2)
    restored = MultiHeadAttention(12, 12, 8, 0.1, num_heads=3, qkv_bias=True).eval()
    x = torch.randn(2, 8, 12)
    assert not torch.allclose(restored(x), original(x))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    exact(restored(x), original(x))

    for make in (
        lambda: SelfAttentionV1(4, 3),
        lambda: SelfAttentionV2(4, 3),
        lambda: CausalAttention(4, 3, 5, 0.0),
        lambda: MultiHeadAttentionWrapper(4, 3, 5, 0.0, num_heads=2),
    ):
        torch.manual_seed(1)
        a = make()
        torch.manual_seed(2)
        b = make()
        b.load_state_dict(a.state_dict())
        y = torch.randn(5, 4)
        exact(b(y), a(y))


def test_book_state_dict_loads_into_ours() -> None:
    torch.manual_seed(4)
    book = BookMultiHeadAttention(8, 8, 6, 0.0, num_heads=2)
    ours = MultiHeadAttention(8, 8, 6, 0.0, num_heads=2)
    ours.load_state_dict(book.state_dict())  # strict: same keys and shapes
    x = torch.randn(2, 6, 8)
    torch.testing.assert_close(ours(x), book(x), rtol=0.0, atol=1e-6)


def test_mask_is_a_buffer_that_moves_with_the_module() -> None:
    mha = MultiHeadAttention(4, 4, 5, 0.0, num_heads=2)
    assert "mask" in dict(mha.named_buffers())
    assert "mask" not in dict(mha.named_parameters())
    mha.to(torch.float64)
    assert mha.mask.dtype == torch.float64
    out = mha(torch.randn(2, 5, 4, dtype=torch.float64))
    assert out.dtype == torch.float64
    meta = CausalAttention(4, 4, 5, 0.0).to("meta")
    assert meta.mask.device.type == "meta"


def test_unbatched_input_matches_batched() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 7, 8)
    modules = [
        CausalAttention(8, 4, 7, 0.0),
        MultiHeadAttentionWrapper(8, 4, 7, 0.0, num_heads=2),
        MultiHeadAttention(8, 8, 7, 0.0, num_heads=2),
        MultiHeadAttention(8, 8, 7, 0.0, num_heads=2, fast_path=False),
    ]
    for module in modules:
        batched = module(x)
        for i in range(3):
            single = module(x[i])
            assert single.shape == batched.shape[1:]
            torch.testing.assert_close(single, batched[i], rtol=0.0, atol=1e-6)
    _, weights = modules[2](x[0], return_weights=True)
    assert weights.shape == (2, 7, 7)


def test_shorter_sequences_than_context_length() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 8, 32, 0.0, num_heads=2)
    x = torch.randn(2, 5, 8)
    out, weights = mha(x, return_weights=True)
    assert out.shape == (2, 5, 8) and weights.shape == (2, 2, 5, 5)
    torch.testing.assert_close(mha(x), out, rtol=0.0, atol=1e-5)


def test_repr_mentions_configuration() -> None:
    text = repr(MultiHeadAttention(8, 8, 16, 0.0, num_heads=2))
    assert "num_heads=2" in text and "head_dim=4" in text and "context_length=16" in text


@needs_cuda
def test_cuda_matches_cpu() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 32)
    modules = [
        SelfAttentionV2(32, 8),
        CausalAttention(32, 8, 16, 0.0),
        MultiHeadAttentionWrapper(32, 8, 16, 0.0, num_heads=2),
        MultiHeadAttention(32, 32, 16, 0.0, num_heads=4).eval(),
        MultiHeadAttention(32, 32, 16, 0.0, num_heads=4, fast_path=False),
    ]
    for module in modules:
        with torch.no_grad():
            expected = module(x)
            module.to("cuda")
            got = module(x.to("cuda"))
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-3, atol=1e-3)


@needs_cuda
def test_cuda_bfloat16_fast_and_explicit_agree() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(64, 64, 128, 0.0, num_heads=4).eval().to("cuda", torch.bfloat16)
    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        fast = mha(x)
        explicit, _ = mha(x, return_weights=True)
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), explicit.float(), rtol=0.0, atol=5e-2)


# --------------------------------------------------------------------------------------------
# bad input -> ValueError naming the values
# --------------------------------------------------------------------------------------------


def test_error_d_out_not_divisible_by_num_heads() -> None:
    with pytest.raises(ValueError, match=r"d_out must be divisible by num_heads.*d_out=10.*"):
        MultiHeadAttention(4, 10, 8, 0.0, num_heads=3)
    with pytest.raises(ValueError, match=r"num_heads=3 \(d_out % num_heads = 1\)"):
        MultiHeadAttention(4, 10, 8, 0.0, num_heads=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 0}, "num_heads must be a positive integer, got 0"),
        ({"d_out": -2}, "d_out must be a positive integer, got -2"),
        ({"context_length": 0}, "context_length must be a positive integer, got 0"),
        ({"d_in": 2.5}, "d_in must be a positive integer, got 2.5"),
    ],
)
def test_error_bad_sizes(kwargs: dict, message: str) -> None:
    args = {"d_in": 4, "d_out": 4, "context_length": 8, "dropout": 0.0, "num_heads": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        MultiHeadAttention(**args)


def test_error_bad_dropout() -> None:
    with pytest.raises(ValueError, match=r"between 0 and 1, but got 1\.5"):
        MultiHeadAttention(4, 4, 8, 1.5, num_heads=2)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got -0\.1"):
        CausalAttention(4, 4, 8, -0.1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CausalAttention(4, 4, 6, 0.0),
        lambda: MultiHeadAttentionWrapper(4, 4, 6, 0.0, num_heads=2),
        lambda: MultiHeadAttention(4, 4, 6, 0.0, num_heads=2),
        lambda: MultiHeadAttention(4, 4, 6, 0.0, num_heads=2, fast_path=False),
    ],
)
def test_error_sequence_longer_than_context_length(make) -> None:
    module = make()
    with pytest.raises(ValueError, match="sequence length 7 exceeds context_length 6"):
        module(torch.randn(2, 7, 4))
    with pytest.raises(ValueError, match="sequence length 9 exceeds context_length 6"):
        module(torch.randn(9, 4))  # unbatched


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: SelfAttentionV1(4, 4), "SelfAttentionV1"),
        (lambda: SelfAttentionV2(4, 4), "SelfAttentionV2"),
        (lambda: CausalAttention(4, 4, 6, 0.0), "CausalAttention"),
        (lambda: MultiHeadAttention(4, 4, 6, 0.0, num_heads=2), "MultiHeadAttention"),
    ],
)
def test_error_wrong_input_rank(make, name: str) -> None:
    module = make()
    with pytest.raises(ValueError, match=rf"{name} expects a 2 or 3-D input.*got a 1-D tensor"):
        module(torch.randn(4))
    with pytest.raises(ValueError, match=r"got a 4-D tensor of shape \(1, 2, 3, 4\)"):
        module(torch.randn(1, 2, 3, 4))


def test_error_wrong_input_width() -> None:
    mha = MultiHeadAttention(4, 4, 6, 0.0, num_heads=2)
    with pytest.raises(ValueError, match=r"built with d_in=4, but the input's last dimension is 5"):
        mha(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"d_in=3, but the input's last dimension is 4"):
        SelfAttentionV1(3, 2)(torch.randn(6, 4))


def test_error_simplified_attention_rank() -> None:
    with pytest.raises(ValueError, match=r"simplified_attention expects a 2 or 3-D input"):
        simplified_attention(torch.randn(3))
    with pytest.raises(ValueError, match=r"got a 4-D tensor"):
        simplified_attention_weights(torch.randn(1, 1, 3, 3))


# --------------------------------------------------------------------------------------------
# the README example: a batch of token windows through GPTEmbedding and MultiHeadAttention
# --------------------------------------------------------------------------------------------


def _embed_and_attend(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from fastllm.nn import GPTEmbedding

    torch.manual_seed(123)
    embed = GPTEmbedding(vocab_size=50257, emb_dim=256, context_length=4)
    attn = MultiHeadAttention(256, 256, context_length=4, dropout=0.1, num_heads=4).eval()
    x = embed(inputs)
    context = attn(x)
    context_w, weights = attn(x, return_weights=True)
    torch.testing.assert_close(context, context_w, rtol=0.0, atol=1e-5)
    return context, weights


def test_readme_example_with_stand_in_batch() -> None:
    inputs = torch.randint(0, 50257, (8, 4), generator=torch.Generator().manual_seed(0))
    assert inputs.dtype == torch.int64
    context, weights = _embed_and_attend(inputs)
    assert context.shape == (8, 4, 256)
    assert weights.shape == (8, 4, 4, 4)


def test_readme_example_with_create_dataloader() -> None:
    data = pytest.importorskip("fastllm.data")
    if not hasattr(data, "create_dataloader"):
        pytest.skip("fastllm.data.create_dataloader is not available yet")
    text = "Your journey starts with one step, and every effort moves you forward. " * 20
    loader = data.create_dataloader(text, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, _targets = next(iter(loader))
    assert inputs.dtype == torch.int64 and inputs.shape == (8, 4)
    context, weights = _embed_and_attend(inputs)
    assert context.shape == (8, 4, 256)
    assert weights.shape == (8, 4, 4, 4)


def test_integer_like_sizes_are_accepted() -> None:
    np = pytest.importorskip("numpy")
    x = torch.randn(2, 6, 4)
    mha = MultiHeadAttention(np.int64(4), np.int64(4), np.int64(6), 0.0, num_heads=np.int32(2))
    assert type(mha.context_length) is int and type(mha.head_dim) is int
    assert mha(x).shape == (2, 6, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got True"):
        MultiHeadAttention(4, 4, 6, 0.0, num_heads=True)
