"""Tests for the GPT model of chapter 4 and the generation functions in ``fastllm.nn``.

The references are in ``book_torch.py``, written from the book's formulas: the same seed gives
the same parameters, and the explicit path the same outputs bit for bit; the fast path agrees to
1e-5 in float32. The 124M configuration is only ever built on the meta device (no memory).
"""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")

import fastllm  # noqa: E402
from book_torch import (  # noqa: E402
    BookFeedForward,
    BookGELU,
    BookGPTModel,
    BookLayerNorm,
    BookTransformerBlock,
    book_generate,
    book_generate_text_simple,
)
from fastllm.nn import (  # noqa: E402
    GELU,
    GPT_CONFIG_124M,
    GPT_CONFIGS,
    FeedForward,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    check_config,
    count_parameters,
    generate,
    generate_text_simple,
    text_to_token_ids,
    token_ids_to_text,
)

# a small configuration with every feature of the 124M one (dropout, several heads and layers)
SMALL = {
    **GPT_CONFIG_124M,
    "vocab_size": 300,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared machine: one torch thread is many times faster than two that
    wait for each other (the results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def exact(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=0.0)


def assert_same_state(ours: torch.nn.Module, book: torch.nn.Module) -> None:
    ours_sd, book_sd = ours.state_dict(), book.state_dict()
    assert list(ours_sd) == list(book_sd)
    for key in ours_sd:
        assert torch.equal(ours_sd[key], book_sd[key]), key


@pytest.fixture
def book_batch() -> torch.Tensor:
    # section 4.1: "Every effort moves you" and "Every day holds a"
    enc = fastllm.get_encoding("gpt2")
    batch = torch.tensor([enc.encode("Every effort moves you"), enc.encode("Every day holds a")])
    assert batch.tolist() == [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]
    return batch


# --------------------------------------------------------------------------------------------
# the 124M configuration: the book's parameter counts, on the meta device
# --------------------------------------------------------------------------------------------


def test_gpt_config_124m_is_the_books() -> None:
    assert GPT_CONFIG_124M == {
        "vocab_size": 50257,
        "context_length": 1024,
        "emb_dim": 768,
        "n_heads": 12,
        "n_layers": 12,
        "drop_rate": 0.1,
        "qkv_bias": False,
    }
    assert GPT_CONFIGS["124M"] == GPT_CONFIG_124M


def test_parameter_counts_of_the_124m_model() -> None:
    with torch.device("meta"):
        model = GPTModel(GPT_CONFIG_124M)
    assert count_parameters(model) == 163_009_536
    assert model.tok_emb.weight.shape == (50257, 768)
    assert model.out_head.weight.shape == (50257, 768)
    # the book: minus the output head (tied to the token embedding in GPT-2)
    assert count_parameters(model) - model.out_head.weight.numel() == 124_412_160
    assert count_parameters(model, tied=True) == 124_412_160
    # section 4.6: 4 bytes per float32 parameter, 621.83 MB
    assert round(count_parameters(model) * 4 / 1024**2, 2) == 621.83
    # a block: attention 2,360,064 and feed forward 4,722,432 parameters (+ two norms)
    block = model.trf_blocks[0]
    assert count_parameters(block.att) == 4 * 768 * 768 + 768
    assert count_parameters(block.ff) == 2 * 768 * 3072 + 3072 + 768
    assert len(model.trf_blocks) == 12


@pytest.mark.parametrize(
    ("name", "expected"),
    [("355M", 406_212_608), ("774M", 838_220_800), ("1558M", 1_637_792_000)],
)
def test_larger_gpt2_sizes_on_meta(name: str, expected: int) -> None:
    # the book's GPT-2 medium/large/XL configurations (exercise 4.2), counted on meta
    with torch.device("meta"):
        model = GPTModel(GPT_CONFIGS[name])
    assert count_parameters(model) == expected


# --------------------------------------------------------------------------------------------
# each class against the book's formulas
# --------------------------------------------------------------------------------------------


def test_layer_norm_matches_the_book() -> None:
    torch.manual_seed(123)
    batch_example = torch.randn(2, 5)
    explicit = LayerNorm(emb_dim=5, fast_path=False)
    fast = LayerNorm(emb_dim=5)
    book = BookLayerNorm(5)
    assert_same_state(explicit, book)
    assert explicit.eps == 1e-5
    exact(explicit(batch_example), book(batch_example))
    out = fast(batch_example)
    torch.testing.assert_close(out, book(batch_example), rtol=0.0, atol=1e-6)
    # section 4.2: mean 0 and variance 1 per row
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(2), rtol=0.0, atol=1e-6)
    torch.testing.assert_close(out.var(dim=-1, unbiased=False), torch.ones(2), atol=1e-4, rtol=0.0)
    # scale and shift are trainable and applied after normalizing
    with torch.no_grad():
        explicit.scale.fill_(2.0)
        explicit.shift.fill_(1.0)
        fast.load_state_dict(explicit.state_dict())
    torch.testing.assert_close(fast(batch_example), 2.0 * out + 1.0, rtol=0.0, atol=1e-5)
    torch.testing.assert_close(explicit(batch_example), 2.0 * out + 1.0, rtol=0.0, atol=1e-5)


def test_gelu_matches_the_book_formula() -> None:
    x = torch.linspace(-3, 3, 100)
    exact(GELU(fast_path=False)(x), BookGELU()(x))
    torch.testing.assert_close(GELU()(x), BookGELU()(x), rtol=0.0, atol=1e-6)
    # the tanh approximation is close to the exact GELU, and not equal to ReLU
    torch.testing.assert_close(GELU()(x), torch.nn.functional.gelu(x), rtol=0.0, atol=1e-3)
    assert GELU()(torch.tensor([-1.0])).item() < 0


def test_feed_forward_matches_the_book() -> None:
    torch.manual_seed(123)
    ours = FeedForward(GPT_CONFIG_124M, fast_path=False)
    torch.manual_seed(123)
    book = BookFeedForward(GPT_CONFIG_124M)
    assert_same_state(ours, book)
    assert ours.layers[0].weight.shape == (3072, 768)  # 4x expansion
    x = torch.rand(2, 3, 768)
    out = ours(x)
    assert out.shape == (2, 3, 768)
    exact(out, book(x))


@pytest.mark.parametrize("fast_path", [False, True])
def test_transformer_block_matches_the_book(fast_path: bool) -> None:
    torch.manual_seed(123)
    x = torch.rand(2, 4, 32)
    torch.manual_seed(123)
    ours = TransformerBlock(SMALL, fast_path=fast_path).eval()
    torch.manual_seed(123)
    book = BookTransformerBlock(SMALL).eval()
    assert_same_state(ours, book)
    with torch.no_grad():
        out, expected = ours(x), book(x)
    assert out.shape == x.shape
    if fast_path:
        torch.testing.assert_close(out, expected, rtol=0.0, atol=1e-5)
    else:
        exact(out, expected)


@pytest.mark.parametrize("fast_path", [False, True])
def test_gpt_model_seeded_output_matches_the_book(book_batch, fast_path: bool) -> None:
    cfg = {**SMALL, "vocab_size": 50257, "context_length": 8}
    torch.manual_seed(123)
    model = GPTModel(cfg, fast_path=fast_path).eval()
    torch.manual_seed(123)
    book = BookGPTModel(cfg).eval()
    assert_same_state(model, book)
    assert list(model.state_dict())[:3] == [
        "tok_emb.weight",
        "pos_emb.weight",
        "trf_blocks.0.att.mask",
    ]
    with torch.no_grad():
        logits, expected = model(book_batch), book(book_batch)
    assert logits.shape == (2, 4, 50257)
    if fast_path:
        torch.testing.assert_close(logits, expected, rtol=0.0, atol=1e-5)
    else:
        exact(logits, expected)


def test_training_mode_dropout_matches_the_book(book_batch) -> None:
    # in training mode (dropout 0.1) both draw the same dropout masks from the same seed
    cfg = {**SMALL, "vocab_size": 50257, "context_length": 8}
    torch.manual_seed(123)
    model = GPTModel(cfg, fast_path=False)
    torch.manual_seed(123)
    book = BookGPTModel(cfg)
    torch.manual_seed(7)
    out = model(book_batch)
    torch.manual_seed(7)
    exact(out, book(book_batch))
    torch.manual_seed(7)
    fast = GPTModel(cfg)
    fast.load_state_dict(model.state_dict())
    torch.manual_seed(7)
    torch.testing.assert_close(fast(book_batch), out, rtol=0.0, atol=1e-5)


def test_fast_and_explicit_paths_agree_float32_and_gradients() -> None:
    cfg = {**SMALL, "context_length": 64, "emb_dim": 96, "n_heads": 6, "n_layers": 3}
    torch.manual_seed(0)
    fast = GPTModel(cfg).eval()
    explicit = GPTModel(cfg, fast_path=False).eval()
    explicit.load_state_dict(fast.state_dict())
    x = torch.randint(0, 300, (3, 64))
    out_fast, out_explicit = fast(x), explicit(x)
    torch.testing.assert_close(out_fast, out_explicit, rtol=0.0, atol=1e-5)
    out_fast.square().mean().backward()
    out_explicit.square().mean().backward()
    for (name, p_fast), p_explicit in zip(fast.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(p_fast.grad, p_explicit.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_hidden_is_the_forward_pass_before_the_head() -> None:
    """GPTModel.hidden (what the chunked loss starts from): forward is out_head(hidden(x)),
    bit for bit, with the input checks."""
    torch.manual_seed(123)
    model = GPTModel(SMALL).eval()
    x = torch.randint(0, 300, (2, 16))
    hidden = model.hidden(x)
    assert hidden.shape == (2, 16, SMALL["emb_dim"])
    exact(model(x), model.out_head(hidden))
    with pytest.raises(ValueError, match="exceeds context_length"):
        model.hidden(torch.zeros(1, SMALL["context_length"] + 1, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# gradient checks (float64, tiny sizes)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast_path", [False, True])
def test_gradcheck_layer_norm_gelu_feed_forward(fast_path: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    ln = LayerNorm(4, fast_path=fast_path).double()
    with torch.no_grad():
        ln.scale.uniform_(0.5, 1.5)
        ln.shift.uniform_(-0.5, 0.5)
    assert torch.autograd.gradcheck(ln, (x,))
    assert torch.autograd.gradcheck(GELU(fast_path=fast_path), (x,))
    ff = FeedForward({"emb_dim": 4}, fast_path=fast_path).double()
    assert torch.autograd.gradcheck(ff, (x,))


@pytest.mark.parametrize("fast_path", [False, True])
def test_gradcheck_transformer_block_and_gpt_model(fast_path: bool) -> None:
    cfg = {
        **SMALL,
        "vocab_size": 7,
        "context_length": 3,
        "emb_dim": 4,
        "n_heads": 2,
        "n_layers": 1,
        "drop_rate": 0.0,
    }
    torch.manual_seed(0)
    block = TransformerBlock(cfg, fast_path=fast_path).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))
    # the whole model with respect to its output-head weights and the token embedding
    model = GPTModel(cfg, fast_path=fast_path).double()
    ids = torch.randint(0, 7, (1, 3))
    head = model.out_head.weight.detach().clone().requires_grad_(True)
    emb = model.tok_emb.weight.detach().clone().requires_grad_(True)

    def logits(head_w: torch.Tensor, emb_w: torch.Tensor) -> torch.Tensor:
        params = {"out_head.weight": head_w, "tok_emb.weight": emb_w}
        return torch.func.functional_call(model, params, (ids,))

    assert torch.autograd.gradcheck(logits, (head, emb))


def test_shortcut_connections_keep_gradients_alive() -> None:
    # section 4.4: with shortcuts the first layer still gets a sizable gradient
    torch.manual_seed(123)
    model = GPTModel({**SMALL, "n_layers": 6, "drop_rate": 0.0})
    ids = torch.randint(0, 300, (2, 16))
    torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    first = model.trf_blocks[0].ff.layers[0].weight.grad.abs().mean()
    last = model.trf_blocks[-1].ff.layers[0].weight.grad.abs().mean()
    assert first > 0.1 * last


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------


def test_generate_text_simple_matches_the_book(book_batch) -> None:
    cfg = {**SMALL, "vocab_size": 50257, "context_length": 8}
    torch.manual_seed(123)
    model = GPTModel(cfg, fast_path=False).eval()
    torch.manual_seed(123)
    book = BookGPTModel(cfg).eval()
    enc = fastllm.get_encoding("gpt2")
    encoded = text_to_token_ids("Hello, I am", enc)
    assert encoded.tolist() == [[15496, 11, 314, 716]]  # section 4.7
    out = generate_text_simple(model, encoded, max_new_tokens=6, context_size=8)
    assert out.shape == (1, 10)
    exact(out, book_generate_text_simple(book, encoded, 6, 8))
    # batched, and cropped to the context (10 > 8 tokens once grown)
    batch_out = generate_text_simple(model, book_batch, max_new_tokens=6, context_size=8)
    exact(batch_out, book_generate_text_simple(book, book_batch, 6, 8))
    assert token_ids_to_text(out, enc).startswith("Hello, I am")


def test_generate_matches_the_book_greedy_and_sampled() -> None:
    torch.manual_seed(123)
    model = GPTModel(SMALL).eval()
    idx = torch.tensor([[1, 2, 3]])
    exact(generate(model, idx, 10, 16), book_generate(model, idx, 10, 16))
    exact(generate(model, idx, 10, 16), generate_text_simple(model, idx, 10, 16))
    for temperature, top_k in ((1.0, None), (1.4, 25), (0.5, 3)):
        torch.manual_seed(5)
        ours = generate(model, idx, 12, 16, temperature=temperature, top_k=top_k)
        torch.manual_seed(5)
        exact(ours, book_generate(model, idx, 12, 16, temperature=temperature, top_k=top_k))
    # top_k=1 is greedy
    torch.manual_seed(5)
    exact(generate(model, idx, 8, 16, temperature=2.0, top_k=1), generate(model, idx, 8, 16))


def test_generate_stops_at_eos_like_the_book() -> None:
    torch.manual_seed(123)
    model = GPTModel(SMALL).eval()
    idx = torch.tensor([[1, 2, 3]])
    greedy = generate(model, idx, 10, 16)
    eos = int(greedy[0, 5])  # the third generated id
    first = int((greedy[0, 3:] == eos).nonzero()[0]) + 3
    stopped = generate(model, idx, 10, 16, eos_id=eos)
    exact(stopped, greedy[:, :first])
    exact(stopped, book_generate(model, idx, 10, 16, eos_id=eos))
    # a batch: a finished sequence is padded with eos until all are done
    batch = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = generate(model, batch, 10, 16, eos_id=eos)
    for row in range(2):
        seq = out[row, 3:].tolist()
        if eos in seq:
            assert all(t == eos for t in seq[seq.index(eos) :])


def test_generate_streams_text_through_decode_stream() -> None:
    enc = fastllm.get_encoding("gpt2")
    torch.manual_seed(123)
    model = GPTModel({**SMALL, "vocab_size": 50257}).eval()
    out = io.StringIO()
    idx = text_to_token_ids("Every effort moves you", enc)
    torch.manual_seed(1)
    ids = generate(model, idx, 12, 16, temperature=1.0, top_k=50, stream=enc, file=out)
    assert out.getvalue() == enc.decode(ids[0, idx.shape[1] :].tolist())
    assert len(out.getvalue()) > 0


def test_generation_errors() -> None:
    model = GPTModel(SMALL).eval()
    with pytest.raises(ValueError, match=r"idx of shape \(batch, num_tokens\), got \(3,\)"):
        generate_text_simple(model, torch.tensor([1, 2, 3]), 2, 16)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, torch.tensor([[1]]), 2, 16, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        generate(model, torch.tensor([[1]]), 2, 16, top_k=0)
    with pytest.raises(ValueError, match="stream prints one sequence"):
        generate(model, torch.tensor([[1], [2]]), 2, 16, stream=fastllm.get_encoding("gpt2"))


# --------------------------------------------------------------------------------------------
# configuration and input errors
# --------------------------------------------------------------------------------------------


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"misses 'n_layers'.*start from a copy of GPT_CONF"):
        GPTModel({k: v for k, v in GPT_CONFIG_124M.items() if k != "n_layers"})
    with pytest.raises(ValueError, match="emb_dim must be divisible by n_heads"):
        check_config({**SMALL, "n_heads": 5})
    with pytest.raises(ValueError, match=r"drop_rate must be a number in \[0, 1\), got 1.5"):
        check_config({**SMALL, "drop_rate": 1.5})
    with pytest.raises(ValueError, match="vocab_size must be a positive integer, got 0"):
        check_config({**SMALL, "vocab_size": 0})
    with pytest.raises(TypeError, match="a GPT configuration is a dict"):
        check_config([1, 2])  # type: ignore[arg-type]


def test_model_input_errors() -> None:
    model = GPTModel(SMALL)
    with pytest.raises(ValueError, match="sequence length 17 exceeds context_length 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="token id 300 is out of range for vocab_size 300"):
        model(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match="expects integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"expects a 2-D input of token ids"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="built with emb_dim=32"):
        LayerNorm(32)(torch.zeros(2, 8))


def test_state_dict_round_trip_and_repr() -> None:
    torch.manual_seed(1)
    a = GPTModel(SMALL).eval()
    torch.manual_seed(2)
    b = GPTModel(SMALL, fast_path=False).eval()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randint(0, 300, (2, 16))
    torch.testing.assert_close(a(x), b(x), rtol=0.0, atol=1e-5)
    assert "fast_path=True" in repr(a.final_norm) and "eps=1e-05" in repr(a.final_norm)
    assert a.context_length == 16
