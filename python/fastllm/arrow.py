"""Arrow string columns in, tokens out: no Python ``str`` per row, all cores, GIL released.

:meth:`fastllm.Encoding.encode_ordinary_arrow` reads an Arrow string column where it lies
(pyarrow ``StringArray``, ``LargeStringArray``, ``StringViewArray``, ``ChunkedArray``, a polars
``Series``, a DuckDB result, or anything else with ``__arrow_c_array__`` / ``__arrow_c_stream__``)
and returns the tokens of every row as one flat NumPy ``uint32`` array with ``int64`` offsets:
the tokens of row ``i`` are ``tokens[offsets[i]:offsets[i + 1]]``, as
``encode_ordinary(column[i])`` would give them. A null row is an empty document (counted in
``null_count``). :meth:`EncodedColumn.to_arrow` makes an Arrow list column of the same tokens,
without copying them, to put back into a table.

>>> import pyarrow as pa
>>> import fastllm
>>> enc = fastllm.get_encoding("gpt2")
>>> column = pa.chunked_array([["hello world", None], ["", "goodbye"]])
>>> tokens, offsets, null_count = enc.encode_ordinary_arrow(column)
>>> tokens.tolist(), offsets.tolist(), null_count
([31373, 995, 11274, 16390], [0, 2, 2, 2, 4], 1)

With ``eot=True`` each document ends with ``<|endoftext|>`` (null and empty ones too), the
layout a training corpus wants:

>>> enc.encode_ordinary_arrow(pa.array(["hi", "a b"]), eot=True).tokens.tolist()
[5303, 50256, 64, 275, 50256]

For HF ``datasets``, :func:`tokenize_dataset` (or :func:`dataset_mapper` with your own
``Dataset.map`` arguments) adds an ``ids`` column equal to tiktoken's ``encode_ordinary`` of each
row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from fastllm import _fastllm

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt



class Encoding(Protocol):
    """What this module needs of a :class:`fastllm.Encoding` (typed structurally, so that
    ``fastllm.encoding`` can delegate here without an import circle)."""

    @property
    def eot_token(self) -> int: ...

    @property
    def _core_bpe(self) -> Any: ...


__all__ = ["EncodedColumn", "dataset_mapper", "encode_ordinary_arrow", "tokenize_dataset"]


def _pyarrow() -> Any:
    """pyarrow, imported on first use (fastllm does not need it otherwise)."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError as e:  # pragma: no cover - exercised only without pyarrow
        raise ImportError(
            "this needs pyarrow: pip install 'fastllm[arrow]' (or pip install pyarrow)"
        ) from e


class EncodedColumn(NamedTuple):
    """The tokens of an Arrow string column: unpack it as ``tokens, offsets, null_count``.

    ``tokens`` (``uint32``) and ``offsets`` (``int64``, one more than the rows) are NumPy arrays
    that own their memory (made in Rust, handed over without a copy).
    """

    tokens: npt.NDArray[np.uint32]
    offsets: npt.NDArray[np.int64]
    null_count: int

    @property
    def num_rows(self) -> int:
        """The number of rows (documents) encoded.

        >>> import pyarrow as pa, fastllm
        >>> fastllm.get_encoding("gpt2").encode_ordinary_arrow(pa.array(["a", None])).num_rows
        2
        """
        return len(self.offsets) - 1

    def to_arrow(self, *, large: bool = True) -> Any:
        """The tokens as an Arrow list column: ``large_list<uint32>`` (or ``list<uint32>``).

        The tokens are not copied: the Arrow array's values buffer is ``tokens``' memory (and
        keeps it alive). With ``large=False`` the offsets are narrowed to ``int32`` (a copy of
        8 bytes per row), which holds up to 2**31 - 1 tokens. Null rows become empty lists.

        >>> import pyarrow as pa, fastllm
        >>> enc = fastllm.get_encoding("gpt2")
        >>> table = pa.table({"text": ["hello world", "hi"]})
        >>> ids = enc.encode_ordinary_arrow(table["text"]).to_arrow()
        >>> table.append_column("ids", ids).to_pylist()
        [{'text': 'hello world', 'ids': [31373, 995]}, {'text': 'hi', 'ids': [5303]}]
        >>> ids.type
        LargeListType(large_list<item: uint32>)
        """
        pa = _pyarrow()
        values = pa.array(self.tokens, type=pa.uint32())
        if large:
            return pa.LargeListArray.from_arrays(pa.array(self.offsets, type=pa.int64()), values)
        if len(self.tokens) > 2**31 - 1:
            raise ValueError(
                f"{len(self.tokens)} tokens do not fit a list<uint32> column (int32 offsets, "
                f"at most 2**31 - 1 tokens); use to_arrow(large=True)"
            )
        offsets = pa.array(self.offsets.astype("int32"), type=pa.int32())
        return pa.ListArray.from_arrays(offsets, values)


def encode_ordinary_arrow(
    encoding: Encoding, column: Any, *, eot: bool = False, num_threads: int | None = None
) -> EncodedColumn:
    """Encodes every row of an Arrow string column; see :meth:`Encoding.encode_ordinary_arrow`.

    >>> import pyarrow as pa, fastllm
    >>> from fastllm.arrow import encode_ordinary_arrow
    >>> enc = fastllm.get_encoding("gpt2")
    >>> encode_ordinary_arrow(enc, pa.array(["hello"], pa.large_string())).tokens.tolist()
    [31373]
    """
    eot_id = encoding.eot_token if eot else None
    threads = 0 if num_threads is None else int(num_threads)
    if threads < 0:
        raise ValueError(f"num_threads must be None or >= 0, got {num_threads}")
    tokens, offsets, null_count = _fastllm.encode_ordinary_arrow(
        encoding._core_bpe, column, eot_id, threads
    )
    return EncodedColumn(tokens, offsets, null_count)


def dataset_mapper(
    encoding: Encoding,
    column: str = "text",
    *,
    output_column: str = "ids",
    keep_columns: bool = True,
    eot: bool = False,
    num_threads: int | None = None,
) -> Callable[[Any], Any]:
    """A function for ``Dataset.map(..., batched=True)`` on an Arrow-formatted dataset.

    It encodes ``column`` of each batch (a ``pyarrow.Table``) through
    :meth:`Encoding.encode_ordinary_arrow` and returns the batch with a ``list<uint32>`` column
    ``output_column`` added (or replaced), or that column alone with ``keep_columns=False``
    (``datasets`` does not apply ``remove_columns`` to a returned table). Run it in the main
    process (no ``num_proc``): each batch already uses every core.

    >>> import datasets, fastllm
    >>> from fastllm.arrow import dataset_mapper
    >>> enc = fastllm.get_encoding("gpt2")
    >>> ds = datasets.Dataset.from_dict({"text": ["hello world", "hi"]})
    >>> ds = ds.with_format("arrow").map(dataset_mapper(enc), batched=True)
    >>> ds.column_names, ds.with_format(None)[:]["ids"]
    (['text', 'ids'], [[31373, 995], [5303]])
    """
    pa = _pyarrow()

    def encode_batch(batch: Any) -> Any:
        if not isinstance(batch, pa.Table):
            raise TypeError(
                f"dataset_mapper expects Arrow batches (a pyarrow.Table), got "
                f"{type(batch).__name__}; call it as "
                f"ds.with_format('arrow').map(mapper, batched=True)"
            )
        if column not in batch.column_names:
            raise KeyError(f"no column {column!r} in the dataset; it has {batch.column_names}")
        encoded = encode_ordinary_arrow(
            encoding, batch.column(column), eot=eot, num_threads=num_threads
        )
        ids = encoded.to_arrow(large=False)
        if not keep_columns:
            return pa.table({output_column: ids})
        if output_column in batch.column_names:
            return batch.set_column(batch.column_names.index(output_column), output_column, ids)
        return batch.append_column(output_column, ids)

    return encode_batch


def tokenize_dataset(
    dataset: Any,
    encoding: Encoding,
    column: str = "text",
    *,
    output_column: str = "ids",
    eot: bool = False,
    remove_columns: bool = False,
    batch_size: int = 10_000,
    num_threads: int | None = None,
    **map_kwargs: Any,
) -> Any:
    """Adds ``output_column`` (token ids of ``column``, as tiktoken's ``encode_ordinary``).

    ``dataset`` is a ``datasets.Dataset``; its format is kept. ``remove_columns=True`` keeps
    only the ids. Other keyword arguments go to ``Dataset.map`` (``desc``, ``cache_file_name``,
    ...).

    >>> import datasets, fastllm
    >>> from fastllm.arrow import tokenize_dataset
    >>> enc = fastllm.get_encoding("gpt2")
    >>> ds = datasets.Dataset.from_dict({"text": ["hello world", None, "hi"]})
    >>> tokenize_dataset(ds, enc, eot=True, remove_columns=True)[:]
    {'ids': [[31373, 995, 50256], [50256], [5303, 50256]]}
    """
    if column not in dataset.column_names:
        raise KeyError(f"no column {column!r} in the dataset; it has {dataset.column_names}")
    mapper = dataset_mapper(
        encoding,
        column,
        output_column=output_column,
        keep_columns=not remove_columns,
        eot=eot,
        num_threads=num_threads,
    )
    out = dataset.with_format("arrow").map(
        mapper, batched=True, batch_size=batch_size, **map_kwargs
    )
    return out.with_format(dataset.format["type"], **dataset.format["format_kwargs"])
