"""``fastllm.data``: the book's ``GPTDatasetV1`` / ``create_dataloader_v1``, batch for batch."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")


import fastllm.data.dataset  # noqa: E402
from book_torch import GPTDatasetV1, create_dataloader_v1  # noqa: E402
from conftest import reference_encoding  # noqa: E402
from fastllm import SimpleTokenizer, corpus  # noqa: E402
from fastllm.data import GPTDataset, create_dataloader, encode_text  # noqa: E402


@pytest.fixture(scope="module")
def text() -> str:
    """About 60k GPT-2 tokens of English prose with documents joined by <|endoftext|>."""
    return "<|endoftext|>".join(corpus.english_prose(250_000).split("\n\n"))


def assert_same_batches(ours, book):
    ours, book = list(ours), list(book)
    assert len(ours) == len(book) > 0
    for got, want in zip(ours, book):
        assert isinstance(got, list) and len(got) == 2
        for g, w in zip(got, want):
            assert g.dtype == torch.int64 and g.is_contiguous()
            assert torch.equal(g, w)


# ---- equality with the book ----


@pytest.mark.parametrize(("max_length", "stride"), [(256, 128), (4, 1), (8, 8), (16, 50)])
def test_dataset_equals_the_book(text, max_length, stride):
    ours = GPTDataset(text, None, max_length, stride)
    book = GPTDatasetV1(text, reference_encoding("gpt2"), max_length, stride)
    assert len(ours) == len(book)
    assert torch.equal(torch.from_numpy(ours.inputs.astype(np.int64)), torch.stack(book.input_ids))
    assert torch.equal(
        torch.from_numpy(ours.targets.astype(np.int64)), torch.stack(book.target_ids)
    )
    for i in (0, 1, len(book) // 2, len(book) - 1, -1):
        x, y = ours[i]
        assert x.dtype == y.dtype == torch.int64
        assert torch.equal(x, book[i][0]) and torch.equal(y, book[i][1])
    assert ours.token_ids.dtype == np.uint32
    assert np.shares_memory(ours.inputs, ours.token_ids)
    assert np.shares_memory(ours.targets, ours.token_ids)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_dataloader_equals_the_book_with_the_same_seed(text, shuffle, drop_last):
    kwargs = dict(batch_size=8, max_length=64, stride=32, shuffle=shuffle, drop_last=drop_last)
    torch.manual_seed(123)
    book = list(create_dataloader_v1(text, **kwargs))
    torch.manual_seed(123)
    ours = list(create_dataloader(text, **kwargs))
    assert_same_batches(ours, book)
    if not drop_last:
        assert ours[-1][0].shape[0] < 8 or len(GPTDataset(text, None, 64, 32)) % 8 == 0


def test_the_books_first_batch(text):
    """Section 2.6's example call: batch_size=8, max_length=4, stride=4, shuffle=False."""
    loader = create_dataloader(text, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (8, 4)
    ids = reference_encoding("gpt2").encode(text, allowed_special={"<|endoftext|>"})
    assert inputs.flatten().tolist() == ids[:32]
    assert targets.flatten().tolist() == ids[1:33]
    assert loader.batch_size is None and len(loader) == len(loader.dataset) // 8


def test_generator_gives_a_reproducible_order(text):
    def order(seed):
        g = torch.Generator().manual_seed(seed)
        loader = create_dataloader(text, batch_size=4, max_length=32, stride=32, generator=g)
        return [b[0] for b in loader]

    a, b, c = order(1), order(1), order(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_num_workers_2(text, context):
    expected = list(create_dataloader(text, 16, 128, 64, shuffle=False, drop_last=False))
    loader = create_dataloader(
        text,
        batch_size=16,
        max_length=128,
        stride=64,
        shuffle=False,
        drop_last=False,
        num_workers=2,
        multiprocessing_context=context,
    )
    assert_same_batches(loader, expected)


def test_simple_tokenizer_as_tokenizer(text):
    tokenizer = SimpleTokenizer.from_text(text)
    ours = GPTDataset(text, tokenizer, 32, 16)
    ids = tokenizer.encode(text)
    assert ours.token_ids.tolist() == ids
    book_inputs = [ids[i : i + 32] for i in range(0, len(ids) - 32, 16)]
    assert ours.inputs.tolist() == book_inputs


def test_tiktoken_and_fastllm_tokenizers_agree(text):
    """A tiktoken Encoding works as ``tokenizer`` (its encode_to_numpy, <|endoftext|> allowed)."""
    ours = GPTDataset(text, None, 64, 64)
    with_tiktoken = GPTDataset(text, reference_encoding("gpt2"), 64, 64)
    assert np.array_equal(ours.token_ids, with_tiktoken.token_ids)
    assert (ours.token_ids == 50256).sum() > 10


def test_any_tokenizer_with_encode():
    class Chars:
        def encode(self, text):
            return [ord(c) for c in text]

    dataset = GPTDataset("abcdefgh", Chars(), 3, 2)
    assert dataset[0][0].tolist() == [97, 98, 99]
    assert len(dataset) == 3
    assert encode_text("a<|endoftext|>b").tolist() == [64, 50256, 65]


@pytest.mark.parametrize(
    "ids",
    [
        list(range(100)),
        np.arange(100, dtype=np.uint16),
        np.arange(100, dtype=np.int32),
        torch.arange(100),
    ],
)
def test_token_ids_input(ids):
    loader = create_dataloader(ids, batch_size=2, max_length=10, stride=10, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [list(range(10)), list(range(10, 20))]
    assert targets.tolist() == [list(range(1, 11)), list(range(11, 21))]
    assert inputs.dtype == torch.int64


# ---- batching from the views ----


def test_batch_indexing_gathers_rows():
    dataset = GPTDataset(np.arange(1000, dtype=np.uint32), None, 16, 8)
    rows = [5, 0, 99, 5]
    for index in (rows, np.array(rows), torch.tensor(rows)):
        x, y = dataset[index]
        assert x.shape == (4, 16) and x.dtype == torch.int64 and x.is_contiguous()
        assert torch.equal(x, torch.stack([dataset[i][0] for i in rows]))
        assert torch.equal(y, torch.stack([dataset[i][1] for i in rows]))
    x, _ = dataset[2:5]
    assert x[:, 0].tolist() == [16, 24, 32]
    # batches are fresh memory: editing one leaves the dataset alone
    x[0, 0] = -1
    assert dataset[2][0][0] == 16
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(IndexError, match="indices must be integers"):
        dataset[np.array([0.5])]


def test_pickle_sends_the_buffer_not_the_windows():
    ids = np.arange(100_000, dtype=np.uint32)
    dataset = GPTDataset(ids, None, 256, 16)  # windows overlap 16x
    data = pickle.dumps(dataset)
    assert len(data) < ids.nbytes + 2_000
    assert dataset.inputs.nbytes > 10 * ids.nbytes
    again = pickle.loads(data)
    assert len(again) == len(dataset)
    assert np.array_equal(again.inputs, dataset.inputs)
    assert np.shares_memory(again.inputs, again.token_ids)
    assert not again.inputs.flags.writeable
    assert repr(again) == (
        "GPTDataset(6234 windows, max_length=256, stride=16, 100000 tokens of dtype uint32)"
    )


# ---- errors ----


def test_errors(text):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        create_dataloader(text, batch_size=0)
    with pytest.raises(ValueError, match=r"max_length must be a positive integer .*got 0"):
        create_dataloader(text, max_length=0)
    with pytest.raises(ValueError, match=r"stride must be a positive integer .*got -3"):
        GPTDataset(text, None, 4, -3)
    with pytest.raises(ValueError, match="ids has 4 tokens, too few for max_length=256"):
        create_dataloader("Hello, world!")
    with pytest.raises(ValueError, match=r"ids must be 1-D, got a 2-D array of shape \(2, 50\)"):
        GPTDataset(torch.zeros(2, 50, dtype=torch.long), None, 4, 4)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        encode_text(b"abc")  # type: ignore[arg-type]


def test_docstring_examples():
    result = doctest.testmod(fastllm.data.dataset, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 5
