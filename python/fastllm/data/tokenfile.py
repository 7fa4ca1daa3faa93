"""Training data from token files written by ``fastllm tokenize``, memory-mapped.

:class:`TokenFileDataset` opens the token file (or every shard of a sharded set: a manifest, a
glob or a list of llm.c / fastllm shards) with ``np.memmap`` (nothing is read until a batch
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

import glob
import json
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
Source = Union[PathLike, Sequence[PathLike]]

#: llm.c's shard header (``dev/data/data_common.py``): 256 little-endian int32, magic, version,
#: token count; ``uint16`` tokens for version 1, ``uint32`` for version 7.
LLMC_HEADER_INTS = 256
LLMC_FORMATS: dict[tuple[int, int], np.dtype[Any]] = {
    (20240520, 1): np.dtype("<u2"),
    (20240801, 7): np.dtype("<u4"),
}
MANIFEST_KIND = "fastllm-token-shards"


def read_llmc_header(path: Path) -> tuple[np.dtype[Any], int] | None:
    """The token dtype and count of an llm.c shard, or None when ``path`` has no llm.c header.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "shard.bin"
    >>> header = np.zeros(256, dtype="<i4"); header[:3] = (20240520, 1, 3)
    >>> path.write_bytes(header.tobytes() + np.array([1, 2, 3], dtype="<u2").tobytes())
    1030
    >>> read_llmc_header(path)
    (dtype('uint16'), 3)
    """
    with open(path, "rb") as f:
        head = f.read(LLMC_HEADER_INTS * 4)
    if len(head) < LLMC_HEADER_INTS * 4:
        return None
    magic, version, count = (int(v) for v in np.frombuffer(head, dtype="<i4", count=3))
    dtype = LLMC_FORMATS.get((magic, version))
    if dtype is None:
        return None
    size = path.stat().st_size
    expected = LLMC_HEADER_INTS * 4 + count * dtype.itemsize
    if count < 0 or size != expected:
        raise ValueError(
            f"{path}: the llm.c header says {count} tokens of {dtype} ({expected} bytes with "
            f"the header) but the file holds {size} bytes: it is truncated or damaged"
        )
    return dtype, count


def _memmap(path: Path, dtype: np.dtype[Any], count: int, offset: int) -> TokenArray:
    if count == 0:  # mmap refuses empty maps
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,), offset=offset)


def _read_manifest(path: Path, split: str | None) -> tuple[list[Path], dict[str, Any]]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != MANIFEST_KIND:
        raise ValueError(f"{path} is not a fastllm shard manifest (kind {MANIFEST_KIND!r})")
    shards = [s for s in meta.get("shards", []) if split is None or s.get("split") == split]
    return [path.parent / s["file"] for s in shards], meta


def _expand(source: Source, split: str | None) -> tuple[list[Path], dict[str, Any] | None]:
    """The files of ``source`` in order, and the manifest when it is one."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text)
        if text.endswith(".manifest.json"):
            return _read_manifest(path, split)
        if not path.exists() and glob.has_magic(text):
            files = sorted(Path(p) for p in glob.glob(text))
            files = [f for f in files if f.suffix not in (".idx", ".json", ".partial")]
            if not files:
                raise FileNotFoundError(f"no token files match {text!r}")
            return files, None
        return [path], None
    return [Path(os.fspath(p)) for p in source], None


class TokenFileDataset(WindowDataset):
    """The windows of :func:`fastllm.sliding_windows` over a token file or a sharded set.

    ``path`` may also be a shard manifest (``NAME.manifest.json``, see
    :func:`fastllm.tokenfile.open_shard_writer`; ``split="train"`` or ``"val"`` picks its shards),
    a glob pattern or a list of files, among them llm.c shards (recognized by their header,
    which is checked against the file size): the shards are one dataset, windows do not cross
    shard boundaries, and :attr:`parts` holds one memory map per shard.

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
    parts: list[TokenArray]
    documents: npt.NDArray[np.uint64] | None
    meta: dict[str, Any] | None

    def __init__(
        self,
        path: Source,
        max_length: int = 256,
        stride: int = 128,
        *,
        dtype: npt.DTypeLike | None = None,
        split: str | None = None,
    ) -> None:
        self._open(path, max_length, stride, dtype, split)

    @property
    def tokens(self) -> TokenArray:
        """The memory map of the tokens (of a single file; a sharded set has :attr:`parts`)."""
        if len(self.parts) != 1:
            raise ValueError(
                f"this dataset reads {len(self.parts)} shards: their tokens are .parts"
            )
        return self.parts[0]

    def _open_one(self, path: Path, dtype: np.dtype[Any] | None) -> TokenArray:
        if dtype is not None:
            size = path.stat().st_size
            if size % dtype.itemsize:
                raise ValueError(f"{path} holds {size} bytes, not a whole number of {dtype} tokens")
            return _memmap(path, dtype, size // dtype.itemsize, 0)
        llmc = read_llmc_header(path) if path.is_file() else None
        if llmc is not None:
            return _memmap(path, llmc[0], llmc[1], LLMC_HEADER_INTS * 4)
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
        return _memmap(path, token_dtype, count, 0)

    def _open(
        self,
        source: Source,
        max_length: int,
        stride: int,
        dtype: npt.DTypeLike | None,
        split: str | None = None,
    ) -> None:
        self._source = source
        self._split = split
        self._dtype = None if dtype is None else _integer_dtype(dtype, f"dtype for {source}")
        files, manifest = _expand(source, split)
        self.path = Path(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else files[0]
        self.meta = manifest
        self.documents = None
        if manifest is not None and self._dtype is None:
            token_dtype = _integer_dtype(
                manifest.get("dtype"), f"the manifest of {source}: dtype"
            ).newbyteorder("<")
            header = int(manifest.get("header_bytes", 0))
            listed = {s["file"]: s for s in manifest["shards"]}
            self.parts = []
            for f in files:
                count = int(listed[f.name]["tokens"])
                size = f.stat().st_size
                if size != header + count * token_dtype.itemsize:
                    raise ValueError(
                        f"{f} holds {size} bytes but the manifest {self.path} says {count} "
                        f"tokens of {token_dtype} after a {header}-byte header: the shard was "
                        "changed after it was written"
                    )
                if header:
                    llmc = read_llmc_header(f)
                    if llmc is None or llmc[1] != count:
                        raise ValueError(f"{f}: its llm.c header does not match the manifest")
                self.parts.append(_memmap(f, token_dtype, count, header))
        else:
            self.parts = [self._open_one(f, self._dtype) for f in files]
            if len(files) != 1:
                self.meta = None
        if len(self.parts) == 1 and self.meta is not None and manifest is None:
            index = index_path(files[0])
            if index.exists() and index.stat().st_size:
                self.documents = np.memmap(index, dtype=np.dtype("<u8"), mode="r")
        if not self.parts:
            raise ValueError(f"{os.fspath(self.path)}: no shards (split={split!r})")
        # sliding_windows owns the checks of max_length and stride.
        self._views = [sliding_windows(p, max_length, stride) for p in self.parts]
        self._set_windows(self.parts[0], max_length, stride)
        counts = [len(v[0]) for v in self._views]
        self._window_starts = np.cumsum([0, *counts], dtype=np.int64)
        self._every_offset: list[tuple[TokenArray, TokenArray]] | None = None

    def __len__(self) -> int:
        return int(self._window_starts[-1])

    def __getitem__(self, index: Any) -> Batch:
        if len(self.parts) == 1:
            return super().__getitem__(index)
        n = len(self)
        if isinstance(index, (int, np.integer)):
            i = int(index) + n if index < 0 else int(index)
            if not 0 <= i < n:
                raise IndexError(f"window {index} out of range ({n} windows)")
            part = int(np.searchsorted(self._window_starts, i, side="right")) - 1
            local = i - int(self._window_starts[part])
            x, y = self._views[part]
            return (
                torch.from_numpy(np.asarray(x[local], dtype=np.int64)),
                torch.from_numpy(np.asarray(y[local], dtype=np.int64)),
            )
        if isinstance(index, slice):
            rows = np.arange(n)[index]
        else:
            if isinstance(index, torch.Tensor):
                index = index.numpy(force=True)
            rows = np.asarray(index)
            if rows.dtype.kind not in "iu":
                raise IndexError(f"TokenFileDataset indices must be integers, got {rows.dtype}")
            rows = np.where(rows < 0, rows + n, rows)
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise IndexError(f"window index out of range ({n} windows)")
        return self._gather(self._views, self._window_starts, rows)

    def _gather(
        self,
        views: list[tuple[TokenArray, TokenArray]],
        starts: npt.NDArray[np.int64],
        rows: npt.NDArray[Any],
    ) -> Batch:
        x = np.empty((len(rows), self.max_length), dtype=np.int64)
        y = np.empty_like(x)
        parts = np.searchsorted(starts, rows, side="right") - 1
        for part in np.unique(parts):
            mask = parts == part
            local = rows[mask] - starts[part]
            x[mask] = views[part][0][local]
            y[mask] = views[part][1][local]
        return torch.from_numpy(x), torch.from_numpy(y)

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
            self._every_offset = [sliding_windows(p, self.max_length, 1) for p in self.parts]
            counts = [len(v[0]) for v in self._every_offset]
            self._offset_starts = np.cumsum([0, *counts], dtype=np.int64)
        total = int(self._offset_starts[-1])
        if total < 1:
            raise ValueError(f"no window of {self.max_length} + 1 tokens in {self.path}")
        offsets = torch.randint(total, (batch_size,), generator=generator).numpy()
        x, y = self._gather(self._every_offset, self._offset_starts, offsets)
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
        shards = f"{len(self.parts)} shards, " if len(self.parts) > 1 else ""
        return (
            f"TokenFileDataset({str(self.path)!r}, {shards}{len(self)} windows, "
            f"max_length={self.max_length}, stride={self.stride}, "
            f"{sum(len(p) for p in self.parts)} tokens of {self.parts[0].dtype})"
        )

    def __getstate__(self) -> dict[str, Any]:
        # The paths, not the tokens: each worker maps the files itself.
        source = self._source
        return {
            "path": os.fspath(source)
            if isinstance(source, (str, os.PathLike))
            else [os.fspath(p) for p in source],
            "max_length": self.max_length,
            "stride": self.stride,
            "dtype": None if self._dtype is None else self._dtype.str,
            "split": self._split,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._open(
            state["path"], state["max_length"], state["stride"], state["dtype"], state.get("split")
        )


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
