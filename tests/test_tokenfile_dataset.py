"""``fastllm.data.TokenFileDataset`` and ``RandomOffsetSampler`` over token files."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import BatchSampler, DataLoader, SequentialSampler  # noqa: E402

import fastllm.data.tokenfile  # noqa: E402
from fastllm import corpus, sliding_windows  # noqa: E402
from fastllm.data import GPTDataset, RandomOffsetSampler, TokenFileDataset  # noqa: E402
from fastllm.tokenize import tokenize_files  # noqa: E402


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokens")
    for i in range(3):
        text = corpus.english_prose(60_000, skip_bytes=i * 60_000)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8", newline="")
    (folder / "r.jsonl").write_text('{"text": "a record"}\n{"text": "another"}\n')
    out = folder / "out" / "train.bin"
    out.parent.mkdir()
    tokenize_files(folder, out)
    return out


@pytest.fixture(scope="module")
def cl100k_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cl100k")
    (folder / "a.txt").write_text(corpus.non_latin_text(30_000), encoding="utf-8")
    out = folder / "a.bin"
    tokenize_files(folder / "a.txt", out, encoding="cl100k_base")
    return out


def _all_tokens(path):
    meta = fastllm.tokenize.read_sidecar(path)
    return np.fromfile(path, dtype=meta["dtype"])


@pytest.mark.parametrize(("max_length", "stride"), [(4, 4), (16, 8), (32, 1), (7, 13)])
def test_same_windows_as_sliding_windows_and_gpt_dataset(token_file, max_length, stride):
    tokens = _all_tokens(token_file)
    dataset = TokenFileDataset(token_file, max_length, stride)
    inputs, targets = sliding_windows(tokens, max_length, stride)
    assert len(dataset) == len(inputs) == len(GPTDataset(tokens, None, max_length, stride))
    assert np.array_equal(dataset.inputs, inputs) and np.array_equal(dataset.targets, targets)
    book = GPTDataset(tokens, None, max_length, stride)
    for i in [0, 1, len(dataset) // 2, len(dataset) - 1]:
        x, y = dataset[i]
        bx, by = book[i]
        assert x.dtype == torch.int64 and torch.equal(x, bx) and torch.equal(y, by)


def test_memory_mapped_not_read(token_file):
    dataset = TokenFileDataset(token_file, 8, 8)
    assert isinstance(dataset.tokens, np.memmap)
    assert dataset.tokens.dtype == np.uint16
    assert dataset.meta is not None and dataset.meta["token_count"] == len(dataset.tokens)
    documents = dataset.documents
    assert documents is not None and documents[-1] == len(dataset.tokens)
    assert len(documents) == dataset.meta["document_count"] + 1
    assert "TokenFileDataset(" in repr(dataset) and "uint16" in repr(dataset)


def test_uint32_token_files(cl100k_file):
    dataset = TokenFileDataset(cl100k_file, 16, 16)
    assert dataset.tokens.dtype == np.uint32
    x, _ = dataset[0]
    assert x.tolist() == _all_tokens(cl100k_file)[:16].tolist()


def test_batch_indexing(token_file):
    dataset = TokenFileDataset(token_file, 16, 8)
    rows = [5, 0, 99, 5]
    for index in (rows, np.array(rows), torch.tensor(rows)):
        x, y = dataset[index]
        assert x.shape == (4, 16) and x.dtype == torch.int64
        assert torch.equal(x[1], dataset[0][0]) and torch.equal(y[2], dataset[99][1])
    x, _ = dataset[2:5]
    assert x.shape == (3, 16)
    with pytest.raises(IndexError, match="must be integers"):
        dataset[np.array([0.5])]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers(token_file, context):
    dataset = TokenFileDataset(token_file, 32, 32)
    plain = list(DataLoader(dataset, batch_size=8, shuffle=False))
    workers = list(
        DataLoader(
            dataset, batch_size=8, shuffle=False, num_workers=2, multiprocessing_context=context
        )
    )
    assert len(plain) == len(workers) > 2
    for (a, b), (c, d) in zip(plain, workers):
        assert torch.equal(a, c) and torch.equal(b, d) and c.dtype == torch.int64
    # Whole batches gathered by the dataset, in workers too.
    batches = BatchSampler(SequentialSampler(dataset), 8, drop_last=True)
    gathered = list(
        DataLoader(
            dataset,
            batch_size=None,
            sampler=batches,
            num_workers=2,
            multiprocessing_context=context,
        )
    )
    assert torch.equal(gathered[0][0], plain[0][0])


def test_pickles_the_path_not_the_tokens(token_file):
    dataset = TokenFileDataset(token_file, 16, 4)
    data = pickle.dumps(dataset)
    assert len(data) < 1000
    again = pickle.loads(data)
    assert len(again) == len(dataset) and torch.equal(again[7][0], dataset[7][0])


def test_get_batch_random_offsets(token_file):
    dataset = TokenFileDataset(token_file, 64, 64)
    tokens = _all_tokens(token_file)
    x, y = dataset.get_batch(32, generator=torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (32, 64) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    again, _ = dataset.get_batch(32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, again)
    # Every row is the tokens at some offset, and offsets are not only multiples of stride.
    starts = []
    for row in x.numpy():
        found = np.flatnonzero(
            (sliding_windows(tokens, 64, 1)[0] == row.astype(tokens.dtype)).all(axis=1)
        )
        assert len(found) >= 1
        starts.append(int(found[0]))
    assert any(s % 64 for s in starts)
    x, _ = dataset.get_batch(2, device="cpu")
    assert x.device.type == "cpu"


def test_random_offset_sampler_with_workers(token_file):
    dataset = TokenFileDataset(token_file, 16, 1)
    sampler = RandomOffsetSampler(dataset, 8, 5, generator=torch.Generator().manual_seed(0))
    assert len(sampler) == 5
    batches = list(DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=2))
    assert len(batches) == 5 and batches[0][0].shape == (8, 16)
    with pytest.raises(ValueError, match="batch_size"):
        RandomOffsetSampler(dataset, 0, 5)


def test_raw_token_files_and_errors(tmp_path, token_file):
    raw = tmp_path / "nanogpt.bin"
    np.arange(100, dtype=np.uint16).tofile(raw)
    dataset = TokenFileDataset(raw, 10, 10, dtype=np.uint16)
    assert len(dataset) == 9 and dataset.meta is None and dataset.documents is None
    with pytest.raises(FileNotFoundError, match="is this a token file written by"):
        TokenFileDataset(raw, 10, 10)
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="not a whole number"):
        TokenFileDataset(tmp_path / "odd.bin", 1, 1, dtype=np.uint16)
    with pytest.raises(ValueError, match="max_length"):
        TokenFileDataset(token_file, 0, 1)
    with pytest.raises(ValueError, match=r"fewer than|tokens"):
        TokenFileDataset(raw, 100, 1, dtype=np.uint16)


def test_a_changed_token_file_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 50)
    out = tmp_path / "a.bin"
    tokenize_files(tmp_path / "a.txt", out)
    with out.open("ab") as f:
        f.write(b"\x00\x00")
    with pytest.raises(ValueError, match="was changed after fastllm tokenize wrote it"):
        TokenFileDataset(out, 4, 4)


def test_a_stopped_run_has_no_dataset(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello \xff")
    with pytest.raises(ValueError):
        tokenize_files(tmp_path / "a.txt", tmp_path / "a.bin")
    with pytest.raises(FileNotFoundError, match="rerun it to resume"):
        TokenFileDataset(tmp_path / "a.bin", 4, 4)


def test_docstring_examples():
    result = doctest.testmod(
        fastllm.data.tokenfile, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0 and result.attempted > 0
