"""Input/target windows over token ids as zero-copy NumPy views (chapter 2 of the book).

The book's ``GPTDatasetV1`` copies every window into its own tensor. :func:`sliding_windows`
returns the same windows as two read-only strided views on one token buffer instead: O(1) time
and memory whatever the corpus size. Batches are converted to ``int64`` (what ``nn.Embedding`` and
``cross_entropy`` need) only when they are gathered, see :mod:`fastllm.data`.

>>> import numpy as np
>>> inputs, targets = sliding_windows(np.arange(10), max_length=4, stride=3)
>>> inputs
array([[0, 1, 2, 3],
       [3, 4, 5, 6]])
>>> targets
array([[1, 2, 3, 4],
       [4, 5, 6, 7]])
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Union

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from fastllm import _fastllm

__all__ = ["TOKEN_DTYPES", "TokenArray", "as_token_array", "sliding_windows"]

#: NumPy dtypes kept as they are (no copy); other integer dtypes are converted losslessly.
TOKEN_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.uint16),
    np.dtype(np.uint32),
    np.dtype(np.int32),
    np.dtype(np.int64),
)

TokenArray = npt.NDArray[Union[np.uint16, np.uint32, np.int32, np.int64]]

_I64_MAX = np.iinfo(np.int64).max


def _describe(ids: object) -> str:
    text = repr(ids)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(ids).__name__})"


def _torch_to_numpy(ids: Any) -> np.ndarray[Any, Any] | None:
    """A CPU NumPy view of a torch tensor (a copy for GPU tensors), or None for non-tensors."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(ids, torch.Tensor):
        return None
    tensor = ids.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(
            f"ids must be integer token ids, got a torch tensor of dtype {tensor.dtype}; "
            "convert it with .long() if the values are whole numbers"
        )
    try:
        array: np.ndarray[Any, Any] = tensor.numpy()
    except (TypeError, RuntimeError) as error:
        raise ValueError(
            f"ids: cannot read a torch tensor of dtype {tensor.dtype} as NumPy ({error}); "
            "convert it with .long() first"
        ) from error
    return array


def as_token_array(ids: Iterable[int] | npt.ArrayLike) -> TokenArray:
    """``ids`` as a 1-D C-contiguous NumPy token buffer, without a copy when possible.

    - A NumPy array (or torch tensor, read through ``.numpy()``) of dtype uint16, uint32, int32
      or int64 is returned as it is when it is contiguous, so views on the result share memory
      with it; other integer dtypes are converted losslessly (uint8 -> uint16, int8/int16 ->
      int32, uint64 -> int64 after checking the values fit). Values are not range-checked
      (that would be O(n)).
    - A list, tuple or other iterable of ints becomes a compact ``uint32`` array; every id is
      checked to be an integer in ``0..2**32``.

    Anything else (floats, booleans, strings, 2-D input) raises ``ValueError`` naming ``ids``.

    >>> as_token_array([40, 367, 2885]).dtype
    dtype('uint32')
    >>> a = np.arange(5, dtype=np.int64)
    >>> as_token_array(a) is a
    True
    """
    array = _torch_to_numpy(ids)
    if array is None:
        if isinstance(ids, np.ndarray):
            array = ids
        elif isinstance(ids, (str, bytes, bytearray)):
            raise ValueError(
                f"ids must be token ids, got text {_describe(ids)}; encode it first, e.g. "
                "fastllm.get_encoding('gpt2').encode(text)"
            )
        else:
            return _fastllm.token_buffer(ids)  # type: ignore[arg-type]
    if array.ndim != 1:
        raise ValueError(
            f"ids must be 1-D, got a {array.ndim}-D array of shape {array.shape}; pass one "
            "sequence of token ids (flatten it, or concatenate the documents)"
        )
    dtype = array.dtype
    if dtype == np.dtype(object):
        if not _objects_made_by_numpy(array):
            raise TypeError(
                "ids: an object-dtype array over memory NumPy did not fill with objects (a "
                "np.memmap or a buffer of file bytes) would read those bytes as object pointers; "
                "only integer dtypes are accepted for such arrays: open the file with an integer "
                "dtype, e.g. np.memmap(path, dtype=np.uint16)"
            )
        return _fastllm.token_buffer(array.tolist())
    if dtype.kind not in "iu":
        raise ValueError(
            f"ids must be integer token ids, got an array of dtype {dtype}; convert it with "
            ".astype(np.int64) if the values are whole numbers"
        )
    if dtype not in TOKEN_DTYPES:
        if dtype.kind == "u" and dtype.itemsize < 2:
            array = array.astype(np.uint16)
        elif dtype.kind == "i" and dtype.itemsize < 4:
            array = array.astype(np.int32)
        elif dtype.kind == "u" and dtype.itemsize == 4:
            array = array.astype(np.uint32)  # non-native byte order
        elif dtype.kind == "u" and dtype.itemsize == 2:
            array = array.astype(np.uint16)
        elif dtype.kind == "i" and dtype.itemsize == 4:
            array = array.astype(np.int32)
        else:
            if dtype.kind == "u" and array.size:
                index = int(np.argmax(array))
                if int(array[index]) > _I64_MAX:
                    raise ValueError(
                        f"ids[{index}] = {int(array[index])} does not fit int64; token ids must "
                        f"be in 0..={_I64_MAX}"
                    )
            array = array.astype(np.int64)
    return np.ascontiguousarray(array)


def _objects_made_by_numpy(array: np.ndarray[Any, Any]) -> bool:
    """Whether an object array's memory holds real object pointers: it (or the array it is a view
    of) owns its memory and is not a memory map. Reading any other memory as objects crashes."""
    base: object = array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            return False
        if base.base is None:
            return bool(base.flags.owndata)
        base = base.base
    return False


def _int_arg(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {_describe(value)}")
    number = int(value)
    if not -_I64_MAX <= number <= _I64_MAX:
        raise ValueError(f"{name} must be a positive integer below 2**63, got {number}")
    return number


def sliding_windows(
    ids: Iterable[int] | npt.ArrayLike, max_length: int, stride: int
) -> tuple[TokenArray, TokenArray]:
    """The book's input/target windows over ``ids`` as two read-only views on one buffer.

    Returns ``(inputs, targets)``, each of shape ``(n_windows, max_length)``: row ``i`` of
    ``inputs`` is ``ids[i*stride : i*stride + max_length]`` and row ``i`` of ``targets`` is the
    same slice shifted by one token. ``n_windows = len(range(0, len(ids) - max_length, stride))``
    exactly as in the book's ``GPTDatasetV1`` (any ``stride``, also 1 or more than
    ``max_length``), so every window is full length.

    No token is copied: both arrays are strided views on the token buffer (see
    :func:`as_token_array`: a NumPy int64/int32/uint32/uint16 array or CPU torch tensor is used
    in place, a list becomes a ``uint32`` buffer), made in O(1) time and memory however many
    tokens there are. They keep the buffer's dtype; convert per batch (``np.take`` +
    ``.astype(np.int64)``, as :mod:`fastllm.data` does).

    The views are **read-only**, because windows overlap (whenever ``stride < max_length``, and
    ``targets`` always overlaps ``inputs``): one element of the buffer appears in several rows, so
    an in-place write to one window would silently change other windows and targets too. NumPy
    refuses such writes, but ``torch.from_numpy(inputs)`` only warns and returns a tensor whose
    in-place operations (``x[0] = ...``, ``x.add_(...)``) would corrupt the data: take a copy
    (``inputs[rows].astype(np.int64)``, or the batches of :mod:`fastllm.data`) before modifying.
    Writing to your own array passed as ``ids`` changes the windows for the same reason.

    ``ValueError`` (naming the argument and the value) when ``max_length < 1``, ``stride < 1``,
    there are fewer than ``max_length + 1`` tokens, ``ids`` is 2-D or not integers, or a listed
    id does not fit ``uint32``.

    >>> inputs, targets = sliding_windows([40, 367, 2885, 1464, 1807, 3619], 4, 1)
    >>> inputs
    array([[  40,  367, 2885, 1464],
           [ 367, 2885, 1464, 1807]], dtype=uint32)
    >>> targets[0].tolist()
    [367, 2885, 1464, 1807]
    >>> np.shares_memory(inputs, targets)
    True
    """
    buffer = as_token_array(ids)
    max_len = _int_arg("max_length", max_length)
    step = _int_arg("stride", stride)
    n_windows = _fastllm.window_count(len(buffer), max_len, step)
    item = buffer.itemsize
    # With one window the row stride is never used; keep it small so it cannot overflow.
    row_stride = min(step, len(buffer)) * item
    shape = (n_windows, max_len)
    inputs: TokenArray = as_strided(
        buffer, shape=shape, strides=(row_stride, item), writeable=False
    )
    targets: TokenArray = as_strided(
        buffer[1:], shape=shape, strides=(row_stride, item), writeable=False
    )
    return inputs, targets
