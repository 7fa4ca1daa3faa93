"""Training data from token files written by ``fastllm tokenize``, memory-mapped.

:class:`TokenFileDataset` opens the token file with ``np.memmap`` (nothing is read until a batch
needs it, and DataLoader workers share the page cache) and serves the windows of
:func:`fastllm.sliding_windows` over all its tokens, as ``int64`` tensors.
:meth:`TokenFileDataset.get_batch` and :class:`RandomOffsetSampler` draw windows at random token
offsets instead, like nanoGPT's ``get_batch``.

>>> import pathlib, tempfile
>>> from fastllm.tokenfile import tokenize_files
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "a.txt").write_text("In the beginning the Universe was created. " * 10)
>>> _ = tokenize_files(folder, folder / "train.bin")
>>> dataset = TokenFileDataset(folder / "train.bin", max_length=4, stride=4)
>>> len(dataset), dataset.tokens.dtype
(20, dtype('uint16'))
>>> inputs, targets = dataset[0]
>>> inputs, targets
(tensor([ 818,  262, 3726,  262]), tensor([  262,  3726,   262, 11950]))
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Sampler

from fastllm.data.dataset import Batch, WindowDataset, check_positive
from fastllm.tokenfile import index_path, read_sidecar
from fastllm.windows import TokenArray, sliding_windows

__all__ = ["RandomOffsetSampler", "TokenFileDataset"]

PathLike = Union[str, "os.PathLike[str]"]


class TokenFileDataset(WindowDataset):
    """The windows of :func:`fastllm.sliding_windows` over a token file, memory-mapped.

    ``path`` is a token file written by :func:`fastllm.tokenize_files` (its dtype and
    token count come from the ``.json`` sidecar, which must exist: a stopped run has none) or,
    with ``dtype`` given, any flat little-endian token file (nanoGPT's ``train.bin`` is
    ``dtype=np.uint16``). Window ``i`` is ``tokens[i*stride : i*stride + max_length]`` and its
    target the same window shifted by one, exactly as ``GPTDataset`` over the same tokens.

    ``dataset[i]`` is ``(inputs, targets)``, two ``int64`` tensors of shape ``(max_length,)``;
    ``dataset[rows]`` with a list, array, tensor or slice gathers the whole batch at once (use
    ``DataLoader(dataset, batch_size=None, sampler=BatchSampler(...))`` for that). Only the
    windows touched are read. Pickling (``num_workers > 0`` with ``spawn``) sends the path, and
    each worker maps the file itself.

    ``tokens`` is the memory map, ``documents`` the document start offsets (``.idx``, with the
    token count as last entry) when present, ``meta`` the sidecar.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.bin"
    >>> np.arange(10, dtype=np.uint16).tofile(path)
    >>> dataset = TokenFileDataset(path, max_length=4, stride=2, dtype=np.uint16)
    >>> len(dataset), dataset[1][0].tolist(), dataset[[0, 2]][1].tolist()
    (3, [2, 3, 4, 5], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """

    path: Path
    tokens: TokenArray
    documents: npt.NDArray[np.uint64] | None
    meta: dict[str, Any] | None

    def __init__(
        self,
        path: PathLike,
        max_length: int = 256,
        stride: int = 128,
        *,
        dtype: npt.DTypeLike | None = None,
    ) -> None:
        self._open(Path(os.fspath(path)), max_length, stride, dtype)

    def _open(self, path: Path, max_length: int, stride: int, dtype: npt.DTypeLike | None) -> None:
        self.path = path
        self._dtype = None if dtype is None else _integer_dtype(dtype, f"dtype for {path}")
        if self._dtype is None:
            meta = read_sidecar(path)
            token_dtype = _integer_dtype(meta.get("dtype"), f"the sidecar of {path}: dtype")
            if sys.byteorder != "little":
                token_dtype = token_dtype.newbyteorder("<")
            count = int(meta["token_count"])
            size = path.stat().st_size
            if size != count * token_dtype.itemsize:
                raise ValueError(
                    f"{path} holds {size} bytes but its sidecar says {count} tokens of "
                    f"{token_dtype} ({count * token_dtype.itemsize} bytes): the file was changed "
                    "after fastllm tokenize wrote it"
                )
            self.meta = meta
        else:
            token_dtype = self._dtype
            size = path.stat().st_size
            if size % token_dtype.itemsize:
                raise ValueError(
                    f"{path} holds {size} bytes, not a whole number of {token_dtype} tokens"
                )
            count = size // token_dtype.itemsize
            self.meta = None
        if count:
            self.tokens = np.memmap(path, dtype=token_dtype, mode="r", shape=(count,))
        else:  # mmap refuses empty files
            self.tokens = np.empty(0, dtype=token_dtype)
        index = index_path(path)
        if self.meta is not None and index.exists() and index.stat().st_size:
            self.documents = np.memmap(index, dtype=np.dtype("<u8"), mode="r")
        else:
            self.documents = None
        self._set_windows(self.tokens, max_length, stride)
        self._every_offset: tuple[TokenArray, TokenArray] | None = None

    def get_batch(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> Batch:
        """``batch_size`` windows at random token offsets, like nanoGPT's ``get_batch``.

        Offsets are drawn uniformly from ``0 .. len(tokens) - max_length - 1`` (any token, not
        only multiples of ``stride``) with ``torch.randint(..., generator=generator)``. The
        batch is gathered from the memory map in one go and moved to ``device`` (pinned and
        non-blocking for CUDA, as in nanoGPT).

        >>> import pathlib, tempfile
        >>> import numpy as np, torch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.bin"
        >>> np.arange(100, dtype=np.uint16).tofile(path)
        >>> dataset = TokenFileDataset(path, max_length=8, dtype=np.uint16)
        >>> x, y = dataset.get_batch(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype, bool((y[:, :-1] == x[:, 1:]).all())
        (torch.Size([4, 8]), torch.int64, True)
        """
        batch_size = check_positive("batch_size", batch_size)
        if self._every_offset is None:
            self._every_offset = sliding_windows(self.tokens, self.max_length, 1)
        inputs, targets = self._every_offset
        offsets = torch.randint(len(inputs), (batch_size,), generator=generator).numpy()
        x = torch.from_numpy(np.asarray(inputs[offsets], dtype=np.int64))
        y = torch.from_numpy(np.asarray(targets[offsets], dtype=np.int64))
        if device is not None:
            device = torch.device(device)
            if device.type == "cuda":
                return (
                    x.pin_memory().to(device, non_blocking=True),
                    y.pin_memory().to(device, non_blocking=True),
                )
            return x.to(device), y.to(device)
        return x, y

    def __repr__(self) -> str:
        return (
            f"TokenFileDataset({str(self.path)!r}, {len(self)} windows, "
            f"max_length={self.max_length}, stride={self.stride}, {len(self.tokens)} tokens of "
            f"{self.tokens.dtype})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # The path, not the tokens: each worker maps the file itself.
        return {
            "path": str(self.path),
            "max_length": self.max_length,
            "stride": self.stride,
            "dtype": None if self._dtype is None else self._dtype.str,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._open(Path(state["path"]), state["max_length"], state["stride"], state["dtype"])


class RandomOffsetSampler(Sampler[list[int]]):
    """Batches of random window indices (with replacement), ``num_batches`` of them per epoch.

    Over a dataset with ``stride=1`` every token offset is a window, so this draws batches at
    random token offsets exactly like nanoGPT's ``get_batch``, but through a ``DataLoader``
    (workers, pinning, prefetching). Pass it as ``sampler`` with ``batch_size=None``: the dataset
    gathers each batch with one fancy-index.

    >>> import pathlib, tempfile
    >>> import numpy as np, torch
    >>> from torch.utils.data import DataLoader
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.bin"
    >>> np.arange(1000, dtype=np.uint16).tofile(path)
    >>> dataset = TokenFileDataset(path, max_length=16, stride=1, dtype=np.uint16)
    >>> sampler = RandomOffsetSampler(dataset, batch_size=8, num_batches=3,
    ...                               generator=torch.Generator().manual_seed(0))
    >>> batches = list(DataLoader(dataset, batch_size=None, sampler=sampler))
    >>> len(batches), batches[0][0].shape
    (3, torch.Size([8, 16]))
    """

    def __init__(
        self,
        dataset: Sequence[Any] | int,
        batch_size: int,
        num_batches: int,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.n_windows = dataset if isinstance(dataset, int) else len(dataset)
        if self.n_windows < 1:
            raise ValueError("the dataset has no windows to sample")
        self.batch_size = check_positive("batch_size", batch_size)
        self.num_batches = check_positive("num_batches", num_batches)
        self.generator = generator

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.num_batches):
            rows = torch.randint(self.n_windows, (self.batch_size,), generator=self.generator)
            yield rows.tolist()

    def __len__(self) -> int:
        return self.num_batches


def _integer_dtype(value: object, what: str) -> np.dtype[Any]:
    """``value`` as an integer NumPy dtype, or ``TypeError`` naming ``what``: any other dtype
    would read the file's bytes as something else (``object`` as pointers: a crash)."""
    if value is None:
        raise TypeError(f"{what} is missing")
    try:
        dtype: np.dtype[Any] = np.dtype(value)  # type: ignore[call-overload]
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: {value!r} is not a NumPy dtype ({error})") from None
    if dtype.kind not in "iu":
        raise TypeError(
            f"{what} is {dtype}; token files hold integer token ids, so only integer dtypes "
            "(uint16, uint32, int32, int64, ...) are accepted"
        )
    return dtype
