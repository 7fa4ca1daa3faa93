"""Sharded output (``--shard-tokens``, ``--val-tokens``, ``--layout llmc``), the manifest, the
Python ``ShardWriter``, ``TokenFileDataset`` over shards, and output faults (issues 12 and 14).

The llm.c reader here is written from the format description (``dev/data/data_common.py``): a
header of 256 little-endian int32 (magic, version, token count), then the tokens: uint16 for
magic 20240520 / version 1, uint32 for magic 20240801 / version 7.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastllm
from conftest import reference_encoding
from fastllm.tokenfile import manifest_path, open_shard_writer, tokenize_files

EOT = 50256


def read_llmc(path: Path) -> np.ndarray:
    """An llm.c shard's tokens, checking its header against the format description."""
    data = path.read_bytes()
    magic, version, count = struct.unpack("<3i", data[:12])
    assert struct.unpack("<256i", data[:1024])[3:] == (0,) * 253
    if (magic, version) == (20240520, 1):
        dtype = np.dtype("<u2")
    elif (magic, version) == (20240801, 7):
        dtype = np.dtype("<u4")
    else:
        raise AssertionError(f"{path}: not an llm.c header: {magic}, {version}")
    assert len(data) == 1024 + count * dtype.itemsize
    return np.frombuffer(data[1024:], dtype=dtype)


def documents(folder: Path, n: int = 40) -> list[str]:
    """Texts of varied lengths taken from the standard library sources."""
    sources = sorted(Path(os.__file__).parent.glob("*.py"))[:n]
    texts = []
    for i, path in enumerate(sources):
        text = path.read_text(encoding="utf-8", errors="replace")[: 200 + 97 * i]
        texts.append(text)
        (folder / f"doc{i:03}.txt").write_text(text, encoding="utf-8")
    return texts


def expected(texts: list[str], name: str = "gpt2") -> list[list[int]]:
    enc = reference_encoding(name)
    eot = enc.eot_token
    return [[*enc.encode_ordinary(t), eot] for t in texts]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder, documents(folder)


def check_shards(manifest: dict, folder: Path, docs: list[list[int]], reader) -> None:
    flat = [t for d in docs for t in d]
    got: list[int] = []
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        tokens = reader(path)
        assert len(tokens) == shard["tokens"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert path.stat().st_size == shard["bytes"]
        index = np.fromfile(folder / shard["index"], dtype="<u8")
        assert index[-1] == shard["tokens"] and len(index) == shard["documents"] + 1
        got.extend(tokens.tolist())
    assert got == flat
    assert manifest["token_count"] == len(flat)
    assert manifest["document_count"] == len(docs)


@pytest.mark.parametrize("layout", ["flat", "llmc"])
def test_shards_equal_tiktoken_and_keep_documents_whole(corpus, tmp_path, layout):
    folder, texts = corpus
    docs = expected(texts)
    out = tmp_path / "out" / "corpus.bin"
    out.parent.mkdir()
    shard_tokens = 3000
    stats = tokenize_files(folder, out, shard_tokens=shard_tokens, val_tokens=1000, layout=layout)
    assert stats.path == manifest_path(out) == out.parent / "corpus.manifest.json"
    manifest = json.loads(stats.path.read_text())
    assert manifest["kind"] == "fastllm-token-shards" and manifest["layout"] == layout
    assert (
        manifest["encoding"]["name"] == "gpt2" and len(manifest["encoding"]["vocab_sha256"]) == 64
    )
    reader = read_llmc if layout == "llmc" else (lambda p: np.fromfile(p, dtype="<u2"))
    check_shards(manifest, out.parent, docs, reader)
    shards = manifest["shards"]
    assert shards[0]["split"] == "val" and shards[0]["file"] == "corpus_val_000000.bin"
    assert all(s["split"] == "train" for s in shards[1:])
    assert [s["file"] for s in shards[1:3]] == [
        "corpus_train_000001.bin",
        "corpus_train_000002.bin",
    ]
    assert shards[0]["tokens"] <= 1000
    assert all(s["tokens"] <= shard_tokens for s in shards)
    assert stats.shards == tuple(out.parent / s["file"] for s in shards)
    # Documents are whole in their shard unless longer than a shard.
    lengths = iter(len(d) for d in docs)
    for shard in shards:
        index = np.fromfile(out.parent / shard["index"], dtype="<u8")
        for a, b in zip(index[:-1], index[1:]):
            assert b - a == next(lengths)
    assert not list(out.parent.glob("*.partial*"))
    # A rerun is up to date; the dataset reads the set as one.
    assert tokenize_files(
        folder, out, shard_tokens=shard_tokens, val_tokens=1000, layout=layout
    ).up_to_date


def test_long_documents_span_shards(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    texts = ["short one", "word " * 500, "another short"]
    for i, t in enumerate(texts):
        (folder / f"{i}.txt").write_text(t)
    out = tmp_path / "c.bin"
    stats = tokenize_files(folder, out, shard_tokens=100, layout="llmc")
    manifest = json.loads(stats.path.read_text())
    check_shards(manifest, tmp_path, expected(texts), read_llmc)
    assert all(s["tokens"] <= 100 for s in manifest["shards"])


def test_uint32_vocabulary_gets_the_version_7_header(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    texts = documents(folder, 5)
    out = tmp_path / "c.bin"
    stats = tokenize_files(folder, out, encoding="cl100k_base", layout="llmc", shard_tokens=500)
    manifest = json.loads(stats.path.read_text())
    assert manifest["dtype"] == "uint32"
    first = (tmp_path / manifest["shards"][0]["file"]).read_bytes()
    assert struct.unpack("<2i", first[:8]) == (20240801, 7)
    check_shards(manifest, tmp_path, expected(texts, "cl100k_base"), read_llmc)


def test_python_shard_writer_is_byte_identical(corpus, tmp_path):
    folder, texts = corpus
    local = tmp_path / "local" / "c.bin"
    local.parent.mkdir()
    tokenize_files(
        sorted(folder.iterdir()), local, shard_tokens=2500, val_tokens=800, layout="llmc"
    )
    fed = tmp_path / "fed" / "c.bin"
    fed.parent.mkdir()
    enc = fastllm.get_encoding("gpt2")
    writer = open_shard_writer(fed, shard_tokens=2500, val_tokens=800, layout="llmc")
    # Fed in uneven batches of whole documents.
    for start in range(0, len(texts), 7):
        batch = [enc.encode_ordinary(t) for t in texts[start : start + 7]]
        tokens = np.array([t for d in batch for t in d], dtype=np.uint32)
        offsets = np.cumsum([0] + [len(d) for d in batch], dtype=np.int64)
        writer.write(tokens, offsets)
    result = writer.finish()
    assert result.token_count == sum(len(d) for d in expected(texts))
    local_manifest = json.loads(manifest_path(local).read_text())
    assert [s.sha256 for s in result.shards] == [s["sha256"] for s in local_manifest["shards"]]
    for s in result.shards:
        assert Path(s.path).read_bytes() == (local.parent / Path(s.path).name).read_bytes()
    fed_manifest = json.loads(Path(result.path).read_text())
    assert fed_manifest["encoding"] == local_manifest["encoding"]


def test_shard_writer_rejects_bad_documents(tmp_path):
    writer = open_shard_writer(tmp_path / "c.bin", shard_tokens=10)
    with pytest.raises(ValueError, match="doc_offsets"):
        writer.write(np.array([1, 2, 3], dtype=np.uint32), np.array([0, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="token id 70000"):
        writer.write(np.array([70000], dtype=np.uint32), np.array([0, 1], dtype=np.int64))
    writer.abort()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard_tokens": 0}, "shard_tokens must be .* >= 1.*got 0"),
        ({"val_tokens": -5}, "val_tokens must be .* >= 1.*got -5"),
        ({"layout": "llmc", "shard_tokens": 2**31}, "2147483648 does not fit llm.c"),
        ({"layout": "bogus"}, "layout must be one of"),
    ],
)
def test_bad_shard_settings(corpus, tmp_path, kwargs, match):
    folder, _ = corpus
    out = tmp_path / "c.bin"
    with pytest.raises(ValueError, match=match):
        tokenize_files(folder, out, **kwargs)
    assert not [p for p in tmp_path.iterdir() if p.name != "in"]


def _stop_sharded_run(folder, out):
    """A run into 2,000-token shards stopped (Ctrl-C) past 6,000 tokens, checkpointing at every
    job of 2 KB."""

    def stop(done: int, total: int, tokens: int, documents: int) -> None:
        if tokens > 6000:
            raise KeyboardInterrupt

    from fastllm import tokenfile

    old = tokenfile._JOB_BYTES
    tokenfile._JOB_BYTES = 2048
    try:
        with pytest.raises(KeyboardInterrupt):
            tokenize_files(
                folder,
                out,
                shard_tokens=2000,
                num_threads=1,
                progress=stop,
                checkpoint_interval=0.0,
            )
    finally:
        tokenfile._JOB_BYTES = old


def test_resume_per_shard(corpus, tmp_path):
    folder, texts = corpus
    out = tmp_path / "c.bin"
    _stop_sharded_run(folder, out)
    assert not manifest_path(out).exists()
    done = sorted(tmp_path.glob("c_train_*.bin"))
    assert done, "complete shards stay in place"
    stats = tokenize_files(folder, out, shard_tokens=2000)
    assert stats.resumed and stats.resumed_text_bytes > 0
    manifest = json.loads(stats.path.read_text())
    check_shards(manifest, tmp_path, expected(texts), lambda p: np.fromfile(p, dtype="<u2"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    tokenize_files(folder, fresh / "c.bin", shard_tokens=2000)
    for s in manifest["shards"]:
        assert (tmp_path / s["file"]).read_bytes() == (fresh / s["file"]).read_bytes()


def test_sigkill_leaves_nothing_complete_looking(corpus, tmp_path):
    folder, texts = corpus
    out = tmp_path / "c.bin"
    script = textwrap.dedent(
        f"""
        import os, signal
        from fastllm import tokenfile
        tokenfile._JOB_BYTES = 1024
        def kill(done, total, tokens, documents):
            if tokens > 4000:
                os.kill(os.getpid(), signal.SIGKILL)
        tokenfile.tokenize_files({str(folder)!r}, {str(out)!r}, shard_tokens=1500,
                                 layout="llmc", num_threads=1, progress=kill,
                                 checkpoint_interval=0.0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not manifest_path(out).exists()
    for shard in tmp_path.glob("c_*.bin"):  # complete shards are whole, with their index
        read_llmc(shard)
        assert Path(str(shard) + ".idx").exists()
    stats = tokenize_files(folder, out, shard_tokens=1500, layout="llmc")
    check_shards(json.loads(stats.path.read_text()), tmp_path, expected(texts), read_llmc)


def test_dataset_reads_a_sharded_set(corpus, tmp_path):
    torch = pytest.importorskip("torch")
    from fastllm.data import TokenFileDataset

    folder, texts = corpus
    out = tmp_path / "c.bin"
    stats = tokenize_files(folder, out, shard_tokens=3000, val_tokens=1000, layout="llmc")
    manifest = json.loads(stats.path.read_text())
    train = TokenFileDataset(stats.path, max_length=16, stride=16, split="train")
    val = TokenFileDataset(stats.path, max_length=16, stride=16, split="val")
    assert len(val.parts) == 1 and len(train.parts) == len(manifest["shards"]) - 1
    assert all(isinstance(p, np.memmap) for p in train.parts)
    flat = [t for d in expected(texts) for t in d]
    assert val.parts[0].tolist() == flat[: manifest["shards"][0]["tokens"]]
    expect_windows = sum((len(p) - 1) // 16 for p in train.parts)
    assert len(train) == expect_windows
    x, _ = train[len(train) - 1]
    last = train.parts[-1]
    n = (len(last) - 1) // 16 - 1
    assert x.tolist() == last[n * 16 : n * 16 + 16].tolist()
    xs, ys = train[[0, len(train) - 1]]
    assert xs[1].tolist() == x.tolist() and bool((ys[:, :-1] == xs[:, 1:]).all())
    bx, by = train.get_batch(8, generator=torch.Generator().manual_seed(0))
    assert bx.shape == (8, 16) and bool((by[:, :-1] == bx[:, 1:]).all())
    # A glob of llm.c shards and a single llm.c shard read the same tokens.
    globbed = TokenFileDataset(str(tmp_path / "c_train_*.bin"), max_length=16, stride=16)
    assert len(globbed) == len(train)
    one = TokenFileDataset(tmp_path / manifest["shards"][1]["file"], max_length=16, stride=16)
    assert one.tokens.tolist() == train.parts[0].tolist()
    import pickle

    again = pickle.loads(pickle.dumps(train))
    assert len(again) == len(train) and again[3][0].tolist() == train[3][0].tolist()


def test_truncated_llmc_shard_is_refused(tmp_path):
    pytest.importorskip("torch")
    from fastllm.data import TokenFileDataset

    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, 100)
    path = tmp_path / "s.bin"
    path.write_bytes(header.tobytes() + np.zeros(10, dtype="<u2").tobytes())
    with pytest.raises(ValueError, match="truncated or damaged"):
        TokenFileDataset(path, max_length=4)


# ---- output faults (issue 14) ----


@pytest.mark.skipif(os.geteuid() != 0, reason="replacing /dev/null needs root")
def test_device_output_is_refused(corpus):
    folder, _ = corpus
    before = os.stat("/dev/null")
    with pytest.raises(ValueError, match="not a regular file"):
        tokenize_files(folder, "/dev/null")
    after = os.stat("/dev/null")
    assert (after.st_rdev, after.st_ino) == (before.st_rdev, before.st_ino)


def test_output_naming_an_input_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("precious")
    with pytest.raises(ValueError, match="is one of the inputs"):
        tokenize_files(tmp_path / "a.txt", tmp_path / "a.txt")
    with pytest.raises(ValueError, match="is one of the inputs"):
        tokenize_files(tmp_path, tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text() == "precious"


def test_sidecar_write_failure_leaves_no_orphan(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:04}.txt").write_text("x")
    out = tmp_path / "t.bin"
    # Tokens: 600 bytes; the journal ~65 kB (inputs with their identities); the pretty-printed
        # sidecar ~90 kB: a file size
    # limit between the two fails exactly at the sidecar.
    script = textwrap.dedent(
        f"""
        import resource, sys
        from fastllm.tokenfile import tokenize_files
        resource.setrlimit(resource.RLIMIT_FSIZE, (76_000, {resource.RLIM_INFINITY}))
        try:
            tokenize_files({str(folder)!r}, {str(out)!r}, num_threads=1)
        except OSError as e:
            print("OSError", e)
            sys.exit(3)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "t.bin.json" in proc.stdout
    assert not out.exists(), "no token file without its sidecar"
    stats = tokenize_files(folder, out)
    assert stats.tokens == 600 and out.exists() and Path(str(out) + ".json").exists()
    assert not list(tmp_path.glob("t.bin*.partial*")) and not list(tmp_path.glob("*.tmp"))


def test_resume_refuses_a_shard_renamed_after_its_checkpoint(corpus, tmp_path):
    """A run stopped after a shard was renamed into place but before its next checkpoint
    leaves a journal pointing at a partial file that is gone: the rerun starts over (with a
    note) instead of zero-filling the tokens the journal counted."""
    folder, texts = corpus
    out = tmp_path / "c.bin"

    _stop_sharded_run(folder, out)
    partials = [p for p in tmp_path.glob("c_*.partial") if p.stat().st_size > 0]
    assert partials, "the stopped run left the shard it was writing"
    for p in partials:
        p.unlink()
    stats = tokenize_files(folder, out, shard_tokens=2000)
    assert not stats.resumed
    assert stats.note is not None and "fewer than the" in stats.note
    manifest = json.loads(stats.path.read_text())
    check_shards(manifest, tmp_path, expected(texts), lambda p: np.fromfile(p, dtype="<u2"))
