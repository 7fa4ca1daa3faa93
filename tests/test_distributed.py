"""fastllm.distributed on a REAL local multi-node Ray cluster (no mock of Ray anywhere).

One module cluster (``ray.cluster_utils.Cluster``: a head and, from the two-node tests on, a
second node on 127.0.0.1, one CPU and a small object store each) runs the pipeline; every
output (shards, their indexes and the manifest) is compared byte for byte with the local
``fastllm.tokenize_files`` of the same inputs and shard size: text, JSONL and Parquet, with one
and two nodes, with a worker killed mid-run and after a driver killed mid-run and started
again. Each test has a time limit (SIGALRM), so a hang fails the test instead of the CI run;
the cluster is shut down at the end (no Ray process is left behind).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastllm
from fastllm import distributed
from fastllm.tokenfile import manifest_path

# No usage report (no network at run time), and Ray's warnings kept off the test output.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
cluster_utils = pytest.importorskip("ray.cluster_utils")

STORE = 100 * 2**20
NODE = {"num_cpus": 1, "object_store_memory": STORE}
#: Tokens per shard: several shards per run (documents move whole to the next shard).
SHARD = 40_000
#: Seconds a test may take (Ray's start-up on a loaded 2-core machine is 10-30 s).
LIMIT = 240


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"test took more than {LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node now; :func:`two_nodes` adds the second one."""
    c = cluster_utils.Cluster(initialize_head=True, head_node_args=dict(NODE))
    try:
        ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _alive() -> int:
    return len([n for n in ray.nodes() if n["Alive"]])


@pytest.fixture
def one_node(cluster: Any) -> Any:
    assert _alive() == 1
    return cluster


@pytest.fixture
def two_nodes(cluster: Any) -> Any:
    if _alive() < 2:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        deadline = time.time() + 60
        while ray.cluster_resources().get("CPU", 0) < 2 and time.time() < deadline:
            time.sleep(0.2)
    assert ray.cluster_resources().get("CPU", 0) >= 2
    return cluster


def _documents(n_bytes: int) -> list[str]:
    """Documents from this Python's standard library sources, 1-8 kB each."""
    text = fastllm.samples.python_source(n_bytes)
    docs, start, size = [], 0, 1000
    while start < len(text):
        docs.append(text[start : start + size])
        start += size
        size = 1000 + (size * 7919) % 7000
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same documents as text files, JSONL files and Parquet files (several row groups)."""
    root = tmp_path_factory.mktemp("corpus")
    docs = _documents(1_500_000)
    text_dir, jsonl_dir, parquet_dir = (root / n for n in ("text", "jsonl", "parquet"))
    for d in (text_dir, jsonl_dir, parquet_dir):
        d.mkdir()
    for i, doc in enumerate(docs[:120]):
        (text_dir / f"{i:04d}.txt").write_text(doc, encoding="utf-8", newline="")
    parts = [docs[i::4] for i in range(4)]
    for i, part in enumerate(parts):
        lines = "".join(json.dumps({"id": j, "text": d}) + "\n" for j, d in enumerate(part))
        (jsonl_dir / f"part-{i}.jsonl").write_text(lines, encoding="utf-8")
        table = pa.table({"id": list(range(len(part))), "text": part})
        pq.write_table(table, parquet_dir / f"part-{i}.parquet", row_group_size=97)
    return {"text": text_dir, "jsonl": jsonl_dir, "parquet": parquet_dir, "root": root}


def _outputs(out: Path) -> dict[str, bytes]:
    """Every file of the sharded output ``out`` (the manifest, the shards and their indexes),
    by name; no partial file may be left."""
    manifest = manifest_path(out)
    meta = json.loads(manifest.read_text())
    files = {manifest.name: manifest.read_bytes()}
    for shard in meta["shards"]:
        for name in (shard["file"], shard["index"]):
            files[name] = (out.parent / name).read_bytes()
    prefix = manifest.name[: -len(".manifest.json")]
    left = sorted(p.name for p in out.parent.glob(f"{prefix}*partial*"))
    assert not left, f"partial files left: {left}"
    # The actors' part files (the scratch directory next to the output) are gone.
    assert not (out.parent / f".{out.name}.parts").exists()
    assert len(meta["shards"]) >= 1
    return files


@pytest.fixture(scope="module")
def reference(corpus: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The local run's output files for each kind of input."""
    refs = {}
    for kind in ("text", "jsonl", "parquet"):
        out = tmp_path_factory.mktemp(f"reference-{kind}") / "tokens.bin"
        fastllm.tokenize_files(corpus[kind], out, shard_tokens=SHARD)
        refs[kind] = _outputs(out)
        assert len(refs[kind]) > 3  # several shards
    return refs


def _ray_run(inputs: Any, tmp_path: Path, **kwargs: Any) -> tuple[Path, Any]:
    out = tmp_path / "tokens.bin"
    stats = distributed.tokenize(inputs, out, shard_tokens=SHARD, **kwargs)
    return out, stats


# ---- one node ----


@pytest.mark.parametrize("kind", ["text", "jsonl", "parquet"])
def test_one_node_is_the_local_run(one_node: Any, corpus: dict[str, Any],
                                   reference: dict[str, Any], tmp_path: Path,
                                   kind: str) -> None:
    out, stats = _ray_run(corpus[kind], tmp_path, actors=1, batch_rows=64)
    assert _outputs(out) == reference[kind]
    assert stats.nodes == 1 and stats.actors == 1 and not stats.resumed
    assert stats.path == manifest_path(out) and len(stats.shards) == len(reference[kind]) // 2
    again = distributed.tokenize(corpus[kind], out, shard_tokens=SHARD, actors=1)
    assert again.up_to_date and again.tokens == stats.tokens


def test_the_command_line(one_node: Any, corpus: dict[str, Any], reference: dict[str, Any],
                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastllm.cli import main

    out = tmp_path / "tokens.bin"
    argv = ["tokenize", str(corpus["jsonl"]), "-o", str(out), "--ray", one_node.address,
            "--actors", "1", "--shard-tokens", str(SHARD)]
    assert main(argv) == 0
    assert _outputs(out) == reference["jsonl"]
    said = capsys.readouterr().out
    assert "1 actors on 1 nodes" in said and "tokens.manifest.json" in said


def test_bad_text_names_the_file_and_leaves_nothing_complete(one_node: Any,
                                                             tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("fine")
    (tmp_path / "in" / "b.txt").write_bytes(b"caf\xe9 au lait")
    out = tmp_path / "out.bin"
    local = _local_error(tmp_path / "in", tmp_path / "local.bin")
    assert "b.txt: invalid UTF-8 at byte offset 3" in local
    with pytest.raises(ValueError) as raised:
        distributed.tokenize(tmp_path / "in", out)
    assert str(raised.value) == local  # the local run's own text (the same Rust code)
    assert not manifest_path(out).exists()


def _local_error(inputs: Path, out: Path) -> str:
    """The text of the ValueError the local run raises for ``inputs``."""
    with pytest.raises(ValueError) as raised:
        fastllm.tokenize_files(inputs, out, shard_tokens=SHARD)
    return str(raised.value)


def test_missing_field_names_the_file_and_line(one_node: Any, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n\n{"body": "b"}\n')
    local = _local_error(path, tmp_path / "local.bin")
    assert 'a.jsonl, line 3: no "text" field' in local
    with pytest.raises(ValueError) as raised:
        distributed.tokenize(path, tmp_path / "out.bin")
    assert str(raised.value) == local
    assert not manifest_path(tmp_path / "out.bin").exists()


@pytest.mark.parametrize("body", ["missing", "numbers", "not-parquet"])
def test_bad_parquet_is_the_local_error(one_node: Any, tmp_path: Path, body: str) -> None:
    # The actor opens the Parquet file itself; a file it refuses gets the local run's error,
    # from the local run's own reader.
    path = tmp_path / "a.parquet"
    if body == "not-parquet":
        path.write_bytes(b"PAR1 but not really")
    else:
        text = ["x", "y"] if body == "missing" else [1, 2]
        pq.write_table(pa.table({"id": [1, 2], "body" if body == "missing" else "text": text}),
                       path)
    kind = OSError if body == "not-parquet" else ValueError
    with pytest.raises(kind) as local:
        fastllm.tokenize_files(path, tmp_path / "local.bin", shard_tokens=SHARD)
    assert "a.parquet" in str(local.value)
    with pytest.raises(kind) as raised:
        distributed.tokenize(path, tmp_path / "out.bin")
    assert type(raised.value) is type(local.value)
    assert str(raised.value) == str(local.value)
    assert not manifest_path(tmp_path / "out.bin").exists()


def test_work_units_cover_every_row_group_once(corpus: dict[str, Any]) -> None:
    # The driver's plan (no cluster): Parquet units are runs of consecutive row groups of one
    # file, in order, each under the unit size unless one row group is larger; text/JSONL
    # units are runs of consecutive whole files.
    files = sorted(str(p) for p in corpus["parquet"].iterdir())
    files += sorted(str(p) for p in corpus["text"].iterdir())[:7]
    formats = ["parquet"] * 4 + ["text"] * 7
    described = [{"bytes": os.path.getsize(f)} for f in files]
    units, rows = distributed._plan(files, formats, described, 1, 2, "text")
    parquet_units = [u for u in units if u["kind"] == "parquet"]
    for i, path in enumerate(files[1:4], start=1):
        meta = pq.read_metadata(path)
        assert rows[i] == meta.num_rows
        spans = [u["groups"] for u in parquet_units if u["path"] == path]
        assert spans[0][0] == 0 and spans[-1][1] == meta.num_row_groups
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert [u["path"] for u in parquet_units] == sorted(u["path"] for u in parquet_units)
    assert [p for u in units if u["kind"] == "files" for p in u["paths"]] == files[4:]
    small, _ = distributed._plan(files, formats, described, 0, 2, "text", unit_bytes=1)
    assert len([u for u in small if u["kind"] == "parquet"]) == sum(
        pq.read_metadata(f).num_row_groups for f in files[:4]
    )


def test_inputs_a_node_cannot_read(one_node: Any, tmp_path: Path) -> None:
    # Every node of the cluster is asked (a task pinned to each node) before the run.
    missing = str(tmp_path / "only-on-the-driver.txt")
    with pytest.raises(FileNotFoundError, match=r"node \S+ cannot read .*every node of the "
                       "cluster can read") as e:
        distributed._check_nodes(ray, [missing], tmp_path / "scratch")
    assert e.value.filename == missing


def test_an_input_only_the_driver_can_read(one_node: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # ``/proc/self/cwd/...`` names a file in the driver's working directory; on the cluster's
    # nodes it names one in their own (another directory): the run stops before any work,
    # naming the node and the file, and writes nothing.
    (tmp_path / "only-here.txt").write_text("on the driver only")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.bin"
    with pytest.raises(FileNotFoundError, match=r"node \S+ cannot read .*only-here"):
        distributed.tokenize("/proc/self/cwd/only-here.txt", out)
    assert not manifest_path(out).exists()
    assert not list(tmp_path.glob("out*"))


def test_an_output_only_the_driver_can_reach(one_node: Any, corpus: dict[str, Any],
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The actors write their part files next to the output: a node that cannot write there
    # (``/proc/self/cwd`` is another directory on the nodes) stops the run before any work.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match=r"node \S+ cannot write to .*every node of the "
                       "cluster can reach"):
        distributed.tokenize(corpus["text"], "/proc/self/cwd/out.bin")
    assert not list(tmp_path.iterdir())


def test_output_directory_must_exist(one_node: Any, corpus: dict[str, Any],
                                     tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        distributed.tokenize(corpus["text"], tmp_path / "no" / "such" / "out.bin")
    with pytest.raises(IsADirectoryError, match="the output is a directory"):
        distributed.tokenize(corpus["text"], tmp_path)


def test_output_directory_not_writable(corpus: dict[str, Any]) -> None:
    # A read-only file system (root may write anywhere else); checked before any work.
    target = Path("/proc/sys/out.bin")
    if os.access(target.parent, os.W_OK):
        pytest.skip("no read-only directory to write to on this machine")
    with pytest.raises(PermissionError, match="is not writable"):
        distributed.tokenize(corpus["text"], target)


# ---- two nodes ----


@pytest.mark.parametrize("kind", ["parquet", "text", "jsonl"])
def test_two_nodes_are_the_local_run(two_nodes: Any, corpus: dict[str, Any],
                                     reference: dict[str, Any], tmp_path: Path,
                                     kind: str) -> None:
    out, stats = _ray_run(corpus[kind], tmp_path, actors=2, batch_rows=64)
    assert _outputs(out) == reference[kind]
    # A pool of two actors, one per node (one CPU each); on a loaded machine the second may
    # start after the first has encoded this small corpus, so not both need to have worked.
    assert 1 <= stats.actors <= 2 and 1 <= stats.nodes <= 2


def test_row_group_units_are_the_local_run(two_nodes: Any, corpus: dict[str, Any],
                                          reference: dict[str, Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny units (a row group each, as a file of large row groups gives): many units per
    # file, read by both actors, written in order.
    monkeypatch.setattr(distributed, "_UNIT_TEXT_BYTES", 1)
    out, _ = _ray_run(corpus["parquet"], tmp_path, actors=2, batch_rows=40)
    assert _outputs(out) == reference["parquet"]


def _encoder_pids() -> list[int]:
    """The processes of the encoder actors (Ray names them ``ray::MapWorker(..._Encoder)``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"MapWorker" in cmdline and b"_Encoder" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_a_killed_worker_changes_nothing(two_nodes: Any, corpus: dict[str, Any],
                                         reference: dict[str, Any], tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_one(p: distributed.RayProgress) -> None:
        if not killed and p.files_done >= 10:
            pids = _encoder_pids()
            assert pids, "no encoder actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    out, _ = _ray_run(corpus["text"], tmp_path, actors=2, progress=kill_one)
    assert killed and killed[0] not in _encoder_pids()
    assert _outputs(out) == reference["text"]


_DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from fastllm import distributed

    journal = Path(sys.argv[2]).with_name("tokens.manifest.partial.json")
    out_dir = Path(sys.argv[2]).parent

    def hang(p):
        # Stop for good once 40 files are done, at a point the journal covers entirely (no
        # shard completed since the last checkpoint): SIGKILLed here.
        if p.files_done < 40:
            return
        try:
            state = json.loads(journal.read_text())
        except (OSError, ValueError):
            return
        complete = len(list(out_dir.glob("tokens_train_*.bin")))
        if state["files_done"] == p.files_done and len(state["writer"]["done"]) == complete:
            print("stopped", flush=True)
            time.sleep(600)

    distributed.tokenize(sys.argv[1], sys.argv[2], address=sys.argv[3], actors=2,
                         shard_tokens=int(sys.argv[4]), checkpoint_interval=0, progress=hang)
    """
)


def test_a_killed_driver_resumes(two_nodes: Any, corpus: dict[str, Any],
                                 reference: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run" / "tokens.bin"
    out.parent.mkdir()
    journal = manifest_path(out).with_name("tokens.manifest.partial.json")
    log = tmp_path / "driver.log"
    with open(log, "wb") as output:
        driver = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, str(corpus["text"]), str(out), two_nodes.address,
             str(SHARD)],
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 150
        while time.time() < deadline and driver.poll() is None:
            if b"stopped" in log.read_bytes():
                break
            time.sleep(0.2)
        assert driver.poll() is None, log.read_text()
        assert b"stopped" in log.read_bytes(), log.read_text()
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not manifest_path(out).exists() and journal.exists()
    # The killed driver's scratch directory stays until the next run, which never reuses it.
    scratch = out.parent / ".tokens.bin.parts"
    assert scratch.is_dir()
    (scratch / "000000-000000.part").write_bytes(b"stale")
    state = json.loads(journal.read_text())
    assert state["files_done"] >= 40 and state["writer"]["done"], state["files_done"]
    # A copy in which a complete shard no longer matches its sha256.
    corrupt = tmp_path / "corrupt" / "tokens.bin"
    shutil.copytree(out.parent, corrupt.parent)
    first = corrupt.parent / state["writer"]["done"][0]["file"]
    data = bytearray(first.read_bytes())
    data[5] ^= 0xFF
    first.write_bytes(bytes(data))
    # Garbage after the last checkpoint in the partial shard (a write the killed driver did
    # not checkpoint): cut off on resume.
    for partial in out.parent.glob("tokens_train_*.bin.partial"):
        with open(partial, "ab") as f:
            f.write(b"\x01\x02\x03")
    stats = distributed.tokenize(corpus["text"], out, shard_tokens=SHARD, actors=2)
    assert stats.resumed and stats.resumed_bytes > 0 and stats.note is None
    assert _outputs(out) == reference["text"]
    stats = distributed.tokenize(corpus["text"], corrupt, shard_tokens=SHARD, actors=2)
    assert not stats.resumed
    assert stats.note is not None and "failed its checksum" in stats.note
    assert _outputs(corrupt) == reference["text"]


# ---- no cluster, no Ray ----


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_no_cluster_at_the_address(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    result = _python(
        "from fastllm import distributed\n"
        f"distributed.tokenize({str(tmp_path / 'a.txt')!r}, {str(tmp_path / 'o.bin')!r}, "
        "address='127.0.0.1:9')"
    )
    assert "ConnectionError: no Ray cluster at 127.0.0.1:9" in result.stderr
    assert not manifest_path(tmp_path / "o.bin").exists()


def test_without_ray_the_error_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    result = _python(
        "import sys; sys.modules['ray'] = None\n"
        "from fastllm import distributed\n"
        f"distributed.tokenize({str(tmp_path / 'a.txt')!r}, {str(tmp_path / 'o.bin')!r})"
    )
    assert "ImportError: fastllm.distributed needs Ray Data: pip install 'fastllm[ray]'" in (
        result.stderr
    )


# ---- the actors' Rust binding, without a cluster ----


def _compressed_inputs(root: Path) -> Path:
    """Text and JSONL files, plain, gzip and zstd, one with invalid UTF-8 and a BOM."""
    import gzip

    zstandard = pytest.importorskip("zstandard")
    folder = root / "mixed"
    folder.mkdir()
    docs = _documents(150_000)
    jsonl = "".join(json.dumps({"text": d}) + "\n\n" for d in docs[:20]).encode()
    (folder / "a.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + jsonl))
    (folder / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    (folder / "c.txt").write_bytes(docs[21].encode() + b"\xff\xfe caf\xe9" + docs[22].encode())
    (folder / "d.txt.gz").write_bytes(gzip.compress(b""))
    (folder / "e.txt").write_bytes(b"")
    return folder


def test_encode_file_bytes_is_the_local_run(tmp_path: Path) -> None:
    """What an actor makes of each file's bytes, concatenated, is the local run's token file."""
    import numpy as np

    from fastllm import _fastllm
    from fastllm._inputs import input_format
    from fastllm.tokenfile import _corpus_encoder

    folder = _compressed_inputs(tmp_path)
    stats = fastllm.tokenize_files(folder, tmp_path / "local.bin", errors="replace")
    expected = np.fromfile(tmp_path / "local.bin", np.uint16)[-stats.tokens :]
    core = _corpus_encoder("gpt2")
    tokens, documents, replaced, text_bytes = [], 0, 0, 0
    for path in sorted(folder.iterdir()):
        raw = np.frombuffer(path.read_bytes(), np.uint8)
        data, starts, nbytes, bad = _fastllm.encode_file_bytes(
            core, raw, str(path), input_format(str(path), "auto"), "text", True, "replace"
        )
        assert starts.dtype == np.uint64 and (starts[:1] == 0).all()
        tokens.append(data.view(np.uint16))
        documents += len(starts)
        replaced += bad
        text_bytes += nbytes
    assert np.array_equal(np.concatenate(tokens), expected)
    assert (documents, replaced, text_bytes) == (stats.documents, stats.replaced,
                                                 stats.text_bytes)
    assert replaced == 3  # \xff, \xfe, \xe9
    # Strict: the local run's error text.
    local = _local_error(folder / "c.txt", tmp_path / "strict.bin")
    with pytest.raises(ValueError) as raised:
        _fastllm.encode_file_bytes(core, np.frombuffer((folder / "c.txt").read_bytes(), np.uint8),
                                   str(folder / "c.txt"), "text", "text", True, "strict")
    assert str(raised.value) == local


def test_compressed_inputs_are_the_local_run(two_nodes: Any, tmp_path: Path) -> None:
    folder = _compressed_inputs(tmp_path)
    (tmp_path / "local").mkdir()
    fastllm.tokenize_files(folder, tmp_path / "local" / "tokens.bin", shard_tokens=SHARD,
                           errors="replace")
    expected = _outputs(tmp_path / "local" / "tokens.bin")
    (tmp_path / "ray").mkdir()
    out, stats = _ray_run(folder, tmp_path / "ray", errors="replace")
    assert _outputs(out) == expected
    assert stats.replaced == 3
