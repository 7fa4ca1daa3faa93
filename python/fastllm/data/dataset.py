"""PyTorch ``Dataset`` and ``DataLoader`` of input/target windows (chapter 2 of the book).

:class:`WindowDataset` is the one window dataset: the windows of :func:`fastllm.sliding_windows`
over one token buffer, gathered per batch and served as ``int64`` tensors. :class:`GPTDataset`
(a text or token ids in memory) and :class:`fastllm.data.TokenFileDataset` (a memory-mapped token
file) are the two ways to fill it.

:class:`GPTDataset` and :func:`create_dataloader` have the signatures and defaults of the book's
``GPTDatasetV1`` and ``create_dataloader_v1`` and yield the same tensors, but keep the token ids
in one buffer with :func:`fastllm.sliding_windows` views on it instead of one tensor per window.
A batch is gathered from the views with one fancy-index per batch and converted to ``int64``
(what ``nn.Embedding`` and ``cross_entropy`` need) only then.

This module needs torch (``pip install fastllm[torch]``); ``import fastllm`` does not import it.

>>> import torch
>>> from fastllm.data import create_dataloader
>>> text = "In the beginning the Universe was created. " * 20
>>> loader = create_dataloader(text, batch_size=2, max_length=4, stride=4, shuffle=False)
>>> inputs, targets = next(iter(loader))
>>> inputs
tensor([[  818,   262,  3726,   262],
        [11950,   373,  2727,    13]])
>>> targets
tensor([[  262,  3726,   262, 11950],
        [  373,  2727,    13,   554]])
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from fastllm.registry import get_encoding
from fastllm.windows import TokenArray, as_token_array, sliding_windows

__all__ = [
    "Batch",
    "GPTDataset",
    "Tokenizer",
    "WindowDataset",
    "check_positive",
    "create_dataloader",
    "encode_text",
]

#: The special token the book allows when it encodes a training text.
_ALLOWED_SPECIAL = frozenset({"<|endoftext|>"})

Batch = tuple[torch.Tensor, torch.Tensor]
if TYPE_CHECKING:
    Index = Union[
        int, np.integer[Any], slice, Sequence[int], npt.NDArray[np.integer[Any]], torch.Tensor
    ]


class Tokenizer(Protocol):
    """Anything with an ``encode(text)`` method: fastllm/tiktoken encodings, SimpleTokenizer."""

    def encode(self, text: str, /, *args: Any, **kwargs: Any) -> Any: ...


def _accepts_allowed_special(method: Any) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "allowed_special" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def encode_text(text: str, tokenizer: Tokenizer | None = None) -> TokenArray:
    """Token ids of ``text`` as a NumPy buffer, encoded as the book's ``GPTDatasetV1`` does.

    ``tokenizer`` defaults to the bundled GPT-2 encoding. When its ``encode`` takes
    ``allowed_special`` (fastllm and tiktoken encodings), ``<|endoftext|>`` is allowed, as in the
    book; ``encode_to_numpy`` is used when the tokenizer has it (no Python list in between).

    >>> encode_text("Hello, world!<|endoftext|>").tolist()
    [15496, 11, 995, 0, 50256]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if tokenizer is None:
        tokenizer = get_encoding("gpt2")
    method = getattr(tokenizer, "encode_to_numpy", None)
    if method is None:
        method = tokenizer.encode
    if _accepts_allowed_special(method):
        ids = method(text, allowed_special=set(_ALLOWED_SPECIAL))
    else:
        ids = method(text)
    return as_token_array(ids)


def check_positive(name: str, value: object) -> int:
    """``value`` as an int when it is a positive integer; ``ValueError`` naming ``name`` if not."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _int64_tensor(rows: TokenArray) -> torch.Tensor:
    # Fancy indexing has gathered the rows into a new array; astype widens it (one copy each).
    # A row or slice of the read-only views is copied too, so the tensor is writable.
    return torch.from_numpy(rows.astype(np.int64, copy=not rows.flags.writeable))


class WindowDataset(Dataset[Batch]):
    """The windows of :func:`fastllm.sliding_windows` over one token buffer, as int64 tensors.

    ``dataset[i]`` is ``(inputs, targets)``, two ``int64`` tensors of shape ``(max_length,)``;
    ``dataset[rows]`` with a list, array, tensor or slice of indices returns the whole batch
    ``(inputs, targets)`` of shape ``(len(rows), max_length)``, gathered with one fancy-index per
    tensor. ``inputs`` and ``targets`` are the read-only views; subclasses say where the tokens
    come from (:class:`GPTDataset`, :class:`fastllm.data.TokenFileDataset`).

    >>> import numpy as np
    >>> dataset = WindowDataset(np.arange(10, dtype=np.uint16), max_length=4, stride=3)
    >>> len(dataset), dataset[1][0].tolist(), dataset[[0, 1]][1].tolist()
    (2, [3, 4, 5, 6], [[1, 2, 3, 4], [4, 5, 6, 7]])
    """

    inputs: TokenArray
    targets: TokenArray
    max_length: int
    stride: int

    def __init__(self, tokens: TokenArray, max_length: int, stride: int) -> None:
        self._set_windows(tokens, max_length, stride)

    def _set_windows(self, tokens: TokenArray, max_length: int, stride: int) -> None:
        # sliding_windows owns the checks of max_length and stride.
        self.inputs, self.targets = sliding_windows(tokens, max_length, stride)
        self.max_length = int(max_length)
        self.stride = int(stride)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: Index) -> Batch:
        if isinstance(index, (int, np.integer, slice)):
            rows: Any = index
        else:
            if isinstance(index, torch.Tensor):
                index = index.numpy(force=True)
            rows = np.asarray(index)
            if rows.dtype.kind not in "iu":
                raise IndexError(
                    f"{type(self).__name__} indices must be integers, got an index of dtype "
                    f"{rows.dtype}"
                )
        return _int64_tensor(self.inputs[rows]), _int64_tensor(self.targets[rows])


class GPTDataset(WindowDataset):
    """The book's ``GPTDatasetV1`` over one token buffer, with no per-window copies.

    ``txt_or_ids`` is a text (encoded with ``tokenizer``, by default the bundled GPT-2 encoding
    with ``<|endoftext|>`` allowed) or token ids (a list, NumPy array or torch tensor, used as
    :func:`fastllm.sliding_windows` uses them). Window ``i`` is
    ``ids[i*stride : i*stride + max_length]``, its target the same slice shifted by one, and
    there are exactly as many windows as in the book.

    ``dataset[i]`` is ``(input_ids, target_ids)``, two int64 tensors of shape ``(max_length,)``,
    as in the book. ``dataset[rows]`` with a list, array, tensor or slice of indices returns the
    whole batch ``(inputs, targets)`` of shape ``(len(rows), max_length)``, gathered with one
    fancy-index per tensor: that is what :func:`create_dataloader` uses.

    ``token_ids`` is the buffer; ``inputs`` and ``targets`` are the read-only views on it.
    Pickling (``num_workers > 0`` with the ``spawn`` start method) sends the buffer once and
    rebuilds the views, never the ``(n_windows, max_length)`` windows.

    >>> dataset = GPTDataset(list(range(100, 110)), None, max_length=4, stride=4)
    >>> len(dataset)
    2
    >>> dataset[1]
    (tensor([104, 105, 106, 107]), tensor([105, 106, 107, 108]))
    >>> dataset[[1, 0]][0]
    tensor([[104, 105, 106, 107],
            [100, 101, 102, 103]])
    """

    token_ids: TokenArray

    def __init__(
        self,
        txt_or_ids: str | Iterable[int] | npt.ArrayLike,
        tokenizer: Tokenizer | None = None,
        max_length: int = 256,
        stride: int = 128,
    ) -> None:
        if isinstance(txt_or_ids, str):
            ids = encode_text(txt_or_ids, tokenizer)
        else:
            ids = as_token_array(txt_or_ids)
        self._build(ids, max_length, stride)

    def _build(self, ids: TokenArray, max_length: int, stride: int) -> None:
        self._set_windows(ids, max_length, stride)
        self.token_ids = ids

    def __repr__(self) -> str:
        return (
            f"GPTDataset({len(self)} windows, max_length={self.max_length}, "
            f"stride={self.stride}, {len(self.token_ids)} tokens of dtype {self.token_ids.dtype})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"token_ids": self.token_ids, "max_length": self.max_length, "stride": self.stride}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._build(state["token_ids"], state["max_length"], state["stride"])


def _book_batch(batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[inputs, targets]``, the list the book's default-collated batches are."""
    return list(batch)


def create_dataloader(
    txt: str | Iterable[int] | npt.ArrayLike,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    tokenizer: Tokenizer | None = None,
    **loader_kwargs: Any,
) -> DataLoader[Batch]:
    """The book's ``create_dataloader_v1``: batches of ``[inputs, targets]`` int64 tensors.

    Same signature, defaults and batches as the book (with the same ``torch.manual_seed``, the
    same shuffled order): ``txt`` is encoded with ``tokenizer`` (default: the bundled GPT-2
    encoding, ``<|endoftext|>`` allowed) unless it is already token ids, and cut into windows of
    ``max_length`` tokens every ``stride`` tokens. Each batch has shape
    ``(batch_size, max_length)`` and is gathered from the shared token buffer with one
    fancy-index per tensor (the sampler yields whole batches of indices), then widened to
    ``int64``; no window is stored on its own.

    ``num_workers > 0`` works with the ``fork`` and ``spawn`` start methods (workers receive the
    token buffer once). Other keyword arguments go to :class:`torch.utils.data.DataLoader`
    (``pin_memory``, ``persistent_workers``, ``multiprocessing_context``, ``generator``, ...).

    The loader samples batches itself, so ``loader.batch_size`` is ``None``;
    ``len(loader)`` is the number of batches as usual.

    >>> text = "It was a bright cold day in April, and the clocks were striking thirteen. " * 8
    >>> loader = create_dataloader(text, batch_size=8, max_length=16, stride=16)
    >>> inputs, targets = next(iter(loader))
    >>> inputs.shape, inputs.dtype, len(loader)
    (torch.Size([8, 16]), torch.int64, 1)
    """
    batch_size = check_positive("batch_size", batch_size)
    dataset = GPTDataset(txt, tokenizer, max_length, stride)
    generator = loader_kwargs.get("generator")
    sampler: RandomSampler | SequentialSampler
    if shuffle:
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    batches = BatchSampler(sampler, batch_size, drop_last)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=batches,
        num_workers=num_workers,
        collate_fn=_book_batch,
        **loader_kwargs,
    )
