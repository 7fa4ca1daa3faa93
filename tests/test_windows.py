"""``fastllm.sliding_windows``: the book's windows, as read-only zero-copy views."""

from __future__ import annotations

import doctest
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastllm
import fastllm.windows
from fastllm import sliding_windows


def book_windows(token_ids, max_length, stride):
    """The loop of the book's ``GPTDatasetV1.__init__``, on plain lists."""
    input_ids, target_ids = [], []
    for i in range(0, len(token_ids) - max_length, stride):
        input_ids.append(list(token_ids[i : i + max_length]))
        target_ids.append(list(token_ids[i + 1 : i + max_length + 1]))
    return input_ids, target_ids


def test_all_small_shapes_equal_the_book():
    """Every max_length/stride combination, including stride 1 and stride > max_length."""
    for n in range(2, 40):
        ids = list(range(1000, 1000 + n))
        for max_length in range(1, n):
            for stride in range(1, n + 3):
                inputs, targets = sliding_windows(ids, max_length, stride)
                ref_inputs, ref_targets = book_windows(ids, max_length, stride)
                assert inputs.tolist() == ref_inputs, (n, max_length, stride)
                assert targets.tolist() == ref_targets, (n, max_length, stride)
                assert inputs.shape == (len(ref_inputs), max_length)


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.integers(0, 2**31 - 1), min_size=2, max_size=300),
    max_length=st.integers(1, 64),
    stride=st.integers(1, 400),
    dtype=st.sampled_from([np.uint32, np.int32, np.int64]),
)
def test_random_equal_the_book(ids, max_length, stride, dtype):
    max_length = min(max_length, len(ids) - 1)
    inputs, targets = sliding_windows(np.array(ids, dtype=dtype), max_length, stride)
    assert (inputs.tolist(), targets.tolist()) == book_windows(ids, max_length, stride)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64])
def test_numpy_input_is_viewed_in_place(dtype):
    ids = np.arange(1, 1001, dtype=dtype)
    inputs, targets = sliding_windows(ids, 256, 128)
    assert inputs.dtype == targets.dtype == dtype
    assert np.shares_memory(inputs, ids) and np.shares_memory(targets, ids)
    assert np.shares_memory(inputs, targets)
    assert inputs.strides == (128 * ids.itemsize, ids.itemsize)
    assert inputs.shape == targets.shape == (6, 256)
    assert inputs[5, 0] == ids[5 * 128] and targets[5, -1] == ids[5 * 128 + 256]
    # read-only views; the caller's array is untouched and still writeable
    assert not inputs.flags.writeable and not targets.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        inputs[0, 0] = 7
    assert ids.flags.writeable


def test_list_becomes_one_uint32_buffer():
    ids = list(range(50_000, 50_300))
    inputs, targets = sliding_windows(ids, 8, 4)
    assert inputs.dtype == np.uint32
    assert np.shares_memory(inputs, targets)
    assert inputs.base is not None
    assert sliding_windows(tuple(ids), 8, 4)[0].tolist() == inputs.tolist()
    assert sliding_windows(range(50_000, 50_300), 8, 4)[0].tolist() == inputs.tolist()
    assert sliding_windows([0, 2**32 - 1, 5], 2, 1)[0].tolist() == [[0, 2**32 - 1]]
    assert sliding_windows([np.int64(3), True, 5], 2, 1)[0].tolist() == [[3, 1]]


def test_torch_tensor_is_viewed_in_place():
    torch = pytest.importorskip("torch")
    ids = torch.arange(100, 200)
    inputs, _ = sliding_windows(ids, 10, 5)
    assert inputs.dtype == np.int64
    assert np.shares_memory(inputs, ids.numpy())
    assert inputs.tolist() == book_windows(ids.tolist(), 10, 5)[0]
    small = sliding_windows(torch.arange(20, dtype=torch.int32), 4, 4)[0]
    assert small.dtype == np.int32
    converted = sliding_windows(torch.arange(20, dtype=torch.uint8), 4, 4)[0]
    assert converted.dtype == np.uint16 and converted.tolist()[1] == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, np.uint16),
        (np.int8, np.int32),
        (np.int16, np.int32),
        (np.uint64, np.int64),
        (np.dtype(">i8"), np.int64),
        (np.dtype(">u4"), np.uint32),
        (object, np.uint32),
    ],
)
def test_other_integer_dtypes_are_converted_losslessly(dtype, expected):
    ids = np.arange(0, 100).astype(dtype)
    inputs, _ = sliding_windows(ids, 5, 7)
    assert inputs.dtype == expected
    assert inputs.tolist() == book_windows(list(range(100)), 5, 7)[0]


def test_non_contiguous_input_is_copied_once():
    ids = np.arange(200, dtype=np.int64)[::2]
    inputs, targets = sliding_windows(ids, 4, 2)
    assert not np.shares_memory(inputs, ids)
    assert np.shares_memory(inputs, targets)
    assert inputs.tolist() == book_windows(ids.tolist(), 4, 2)[0]


def test_constant_memory_at_1e8_tokens():
    """10**8 tokens: views only, so nothing grows with the corpus (structure, not a clock)."""
    big = np.empty(100_000_001, dtype=np.uint16)  # untouched pages: no real memory needed
    small = np.zeros(1_001, dtype=np.uint16)

    def traced_peak(ids):
        tracemalloc.start()
        try:
            windows = sliding_windows(ids, 256, 128)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return windows, peak

    sliding_windows(small, 256, 128)  # warm-up (first-call allocations)
    (inputs, targets), peak = traced_peak(big)
    _, small_peak = traced_peak(small)
    assert peak < 100_000, f"peak traced allocation {peak} bytes"
    assert peak < small_peak + 10_000  # the same work however many tokens there are
    assert inputs.shape == targets.shape == ((100_000_001 - 256 + 127) // 128, 256)
    # Two strided views on the caller's buffer: no token is copied.
    assert inputs.base is not None and targets.base is not None
    assert np.shares_memory(inputs, big) and np.shares_memory(targets, big)
    assert inputs.strides == targets.strides == (128 * big.itemsize, big.itemsize)
    assert inputs.__array_interface__["data"][0] == big.__array_interface__["data"][0]
    assert targets.__array_interface__["data"][0] == big.__array_interface__["data"][0] + 2
    assert not inputs.flags.writeable and not inputs.flags.owndata


# ---- errors: ValueError naming the argument and the value ----


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2, 3], 0, 1), r"max_length must be a positive integer .*got 0"),
        (([1, 2, 3], -4, 1), r"max_length must be a positive integer .*got -4"),
        (([1, 2, 3], 1, 0), r"stride must be a positive integer .*got 0"),
        (([1, 2, 3], 1, -1), r"stride must be a positive integer .*got -1"),
        (([1, 2, 3], 2.0, 1), r"max_length must be a positive integer, got 2.0 \(float\)"),
        (([1, 2, 3], True, 1), r"max_length must be a positive integer, got True \(bool\)"),
        (([1, 2, 3], 1, "2"), r"stride must be a positive integer, got '2' \(str\)"),
        (
            ([1, 2, 3], 3, 1),
            r"ids has 3 tokens, too few for max_length=3: one window and its shifted target "
            r"need max_length \+ 1 = 4 tokens",
        ),
        (([], 1, 1), r"ids has 0 tokens, too few for max_length=1"),
        ((np.arange(10), 11, 1), r"ids has 10 tokens, too few for max_length=11"),
        (
            (np.arange(10), 2**70, 1),
            r"max_length must be a positive integer below 2\*\*63, got 1180591620717411303424",
        ),
        ((np.arange(10), 2, -(2**64)), r"stride must be .* got -18446744073709551616"),
        ((np.arange(10), np.int32(0), 1), r"max_length must be a positive integer .*got 0"),
        ((np.zeros((4, 5), dtype=np.int64), 2, 1), r"ids must be 1-D, got a 2-D array of shape"),
        ((np.array(7), 2, 1), r"ids must be 1-D, got a 0-D array"),
        ((np.int64(7), 2, 1), r"ids must be a sequence of .*, got .*7\)? \(int64\)"),
        (([[1, 2], [3, 4]], 1, 1), r"ids\[0\] is a list \(\[1, 2\]\); flatten it"),
        (
            (np.arange(10, dtype=np.float32), 2, 1),
            r"ids must be integer token ids, got an array of dtype float32",
        ),
        ((np.ones(10, dtype=bool), 2, 1), r"ids must be integer token ids, .*dtype bool"),
        (([1, 2, 2.5, 4], 2, 1), r"ids\[2\] is 2.5 \(float\); token ids must be integers"),
        ((["a", "b", "c"], 1, 1), r"ids\[0\] is 'a' \(str\); token ids must be integers"),
        (("some text", 2, 1), r"ids must be token ids, got text 'some text' \(str\); encode"),
        ((5, 2, 1), r"ids must be a sequence of integer token ids, got 5 \(int\)"),
        (([1, -2, 3], 1, 1), r"ids\[1\] = -2 is negative; token ids must be in 0..=4294967295"),
        (([1, 2**32, 3], 1, 1), r"ids\[1\] = 4294967296 does not fit uint32"),
        (([1, 2, 2**80], 1, 1), r"ids\[2\] = 1208925819614629174706176 does not fit uint32"),
        (([-(2**80)], 1, 1), r"ids\[0\] = -1208925819614629174706176 is negative"),
        (
            (np.array([1, 2**63 + 5], dtype=np.uint64), 1, 1),
            r"ids\[1\] = 9223372036854775813 does not fit int64",
        ),
    ],
)
def test_errors_name_the_argument_and_value(args, message):
    with pytest.raises(ValueError, match=message):
        sliding_windows(*args)


def test_torch_errors():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"torch tensor of dtype torch\.float32; convert"):
        sliding_windows(torch.ones(10), 2, 1)
    with pytest.raises(ValueError, match=r"torch tensor of dtype torch\.bool"):
        sliding_windows(torch.ones(10, dtype=torch.bool), 2, 1)
    with pytest.raises(ValueError, match=r"ids must be 1-D, got a 2-D array of shape \(2, 5\)"):
        sliding_windows(torch.ones(2, 5, dtype=torch.long), 2, 1)


def test_works_without_torch():
    """``import fastllm`` and ``sliding_windows`` never import torch (nor fastllm.data)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import fastllm\n"
        "inputs, targets = fastllm.sliding_windows([1, 2, 3, 4, 5], 2, 2)\n"
        "assert inputs.tolist() == [[1, 2], [3, 4]], inputs\n"
        "tok = fastllm.SimpleTokenizer.from_text('a b')\n"
        "assert 'fastllm.data' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "ok"


def test_docstring_examples():
    result = doctest.testmod(fastllm.windows, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 5
    assert fastllm.sliding_windows is sliding_windows
