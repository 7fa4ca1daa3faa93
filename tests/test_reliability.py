"""Hostile input, faults and limits (issue 14): no crash, no abort, bounded time and memory.

Where a crash, an abort or a hang is what is tested, the code runs in a subprocess with a timeout
(generous: a hang or a quadratic blow-up exceeds it by orders of magnitude, so it is not a timing
assertion) and, where memory is what is tested, a cap via ``resource.setrlimit(RLIMIT_AS)``.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import tiktoken.load

import fastllm
from fastllm import Encoding, SimpleTokenizer
from fastllm.data import TokenFileDataset
from reference import reference_encoding

PRELUDE = """
import resource, sys
def cap(extra_mb):
    '''Caps the address space at what the process uses now plus extra_mb.'''
    with open("/proc/self/status") as f:
        vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
    limit = vm + (extra_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def run_isolated(code: str, timeout: float = 120) -> str:
    """Runs ``code`` in a fresh interpreter; fails on a crash (signal), an abort or a hang."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def byte_ranks() -> dict[bytes, int]:
    return {bytes([b]): b for b in range(256)}


# ---- 1. object dtypes -------------------------------------------------------------------------


def test_object_dtype_memmap_is_refused(tmp_path):
    path = tmp_path / "tokens.bin"
    np.arange(64, dtype=np.uint16).tofile(path)
    run_isolated(
        f"""
        import numpy as np, pytest
        from fastllm.windows import sliding_windows
        from fastllm.data import TokenFileDataset
        ids = np.memmap({str(path)!r}, dtype=object, mode="r")
        with pytest.raises(TypeError, match="only integer dtypes"):
            sliding_windows(ids, 2, 1)
        with pytest.raises(TypeError, match="only integer dtypes"):
            sliding_windows(ids[2:], 2, 1)
        with pytest.raises(TypeError, match="only integer dtypes"):
            TokenFileDataset({str(path)!r}, max_length=2, dtype=object)
        print("ok")
        """
    )


def test_object_arrays_of_python_ints_still_work():
    inputs, _ = fastllm.windows.sliding_windows(np.array([1, 2, 3, 4], dtype=object), 2, 1)
    assert inputs.tolist() == [[1, 2], [2, 3]]


def test_sidecar_with_object_dtype_is_refused(tmp_path):
    source = tmp_path / "a.txt"
    source.write_text("hello world " * 20)
    out = tmp_path / "t.bin"
    fastllm.tokenize_files(str(source), out)
    sidecar = Path(str(out) + ".json")
    meta = json.loads(sidecar.read_text())
    for bad in ("object", "float32", None, "no-such-dtype"):
        meta["dtype"] = bad
        sidecar.write_text(json.dumps(meta))
        with pytest.raises(TypeError, match=str(out).replace("\\", "\\\\")):
            TokenFileDataset(out, max_length=4)


# ---- 2, 3. linear-time construction -----------------------------------------------------------


def test_megabyte_tokens_load_in_linear_time(tmp_path):
    """A 4 MB token (quadratic: 77 s for 1 MB, ~20 min for 4 MB) in a file, in the constructor,
    through pickling; and a long repetitive special-token name."""
    path = tmp_path / "long.tiktoken"
    long_token = b"a" * (4 << 20)
    lines = [base64.b64encode(t) + b" " + str(r).encode() for t, r in byte_ranks().items()]
    lines.append(base64.b64encode(b"aa") + b" 256")
    lines.append(base64.b64encode(long_token) + b" 257")
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = run_isolated(
        f"""
        import pickle
        from fastllm import Encoding
        enc = Encoding.from_tiktoken_file({str(path)!r}, pat_str=r"\\S+|\\s+",
                                          special_tokens={{"<" * (1 << 20): 300}})
        assert enc.encode("a" * (4 << 20)) == [257]
        again = pickle.loads(pickle.dumps(enc))
        assert again.encode("aaa") == [256, 97]
        ranks = {{bytes([b]): b for b in range(256)}} | {{b"b" * (1 << 20): 256}}
        enc = Encoding("x", pat_str=r"\\S+|\\s+", mergeable_ranks=ranks, special_tokens={{}})
        print(enc.encode("b" * (1 << 20)))
        """,
        timeout=180,
    )
    assert out.strip() == "[256]"


def test_many_special_tokens_encode_in_linear_time():
    """200 k specials: each ``encode`` with the default ``disallowed_special="all"`` was
    quadratic in their number (40 k: 0.97 s a call)."""
    run_isolated(
        """
        from fastllm import Encoding
        ranks = {bytes([b]): b for b in range(256)}
        specials = {f"<|s{i}|>": 256 + i for i in range(200_000)}
        enc = Encoding("many", pat_str="r50k", mergeable_ranks=ranks, special_tokens=specials)
        for _ in range(20):
            assert enc.encode("hi") == [104, 105]
        assert enc.encode("<|s7|>", allowed_special="all") == [263]
        """,
        timeout=120,
    )


def test_train_on_one_long_repetitive_piece_is_linear():
    """``"a" * 1_000_000`` took 105 s (the vocabulary's longest tokens made it quadratic)."""
    out = run_isolated(
        """
        import fastllm.train as T
        enc = T.train_bpe(["a" * 2_000_000], 300, special_tokens=())
        print(len(enc.decode_single_token_bytes(enc.n_vocab - 1)))
        """,
        timeout=180,
    )
    assert int(out) >= 1 << 19


# ---- 4, 5. memory -----------------------------------------------------------------------------


def test_long_piece_of_bytes_that_never_merge_costs_only_its_tokens():
    """64 MiB of NUL bytes: 1.39 GB before (21 bytes per input byte); now the cuts where no
    token can cross leave only the tokens (4 bytes each) and the text."""
    out = run_isolated(
        """
        import fastllm
        enc = fastllm.get_encoding("gpt2")
        enc.encode("hi")
        text = "\\0" * (64 << 20)
        base = peak_mb()
        tokens = enc.encode_to_numpy(text)
        assert len(tokens) == len(text) and int(tokens.max()) == 188
        print(peak_mb() - base)
        """
    )
    grown_mb = float(out)
    assert grown_mb <= 4.5 * 64 + 16, grown_mb


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("gpt2", '"a" * (16 << 20)'),
        ("cl100k_base", '"hello" * (3 << 20)'),
        ("cl100k_base", '" " * (16 << 20)'),
    ],
)
def test_long_piece_whose_bytes_all_merge_costs_only_its_tokens(name, text):
    """One long piece whose bytes all merge (no cut where nothing merges): 16.5-17.6 bytes per
    input byte before (a merge state per byte); now 4 bytes per token plus a few MB
    (``crate::bpe::backtrack``), inside the stated bound."""
    out = run_isolated(
        f"""
        import fastllm
        enc = fastllm.get_encoding({name!r})
        enc.encode("hi")
        text = {text}
        base = peak_mb()
        tokens = enc.encode_to_numpy(text)
        grown = peak_mb() - base
        assert enc.decode_bytes(tokens.tolist()) == text.encode()
        print(grown, len(tokens))
        """
    )
    grown_mb, count = out.split()
    assert float(grown_mb) <= 4.5 * int(count) / 2**20 + 16, (grown_mb, count)


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_long_pieces_that_all_merge_match_tiktoken(name):
    """Pieces past the long-piece threshold (256 KiB), encoded by the search of
    ``crate::bpe::backtrack``: the same tokens as tiktoken."""
    ours, theirs = fastllm.get_encoding(name), reference_encoding(name)
    rng = random.Random(14)
    texts = [unit * (300_000 // len(unit)) for unit in ["a", " ", "hello", "ab", "\0", "的", "=-"]]
    for alpha in ["ab", "ehlo", "aa b"]:
        texts.append("".join(rng.choice(alpha) for _ in range(300_000)))
    for text in texts:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), text[:20]


HOSTILE_PIECE = '''
import random
def hostile_piece(enc, size):
    """One piece of about ``size`` bytes holding nearly every byte pair of the vocabulary's
    lower-case letter tokens: those tokens chained so that each junction is a pair some token
    holds (no cut where nothing merges), so the whole piece goes to the long-piece search."""
    tokens, pairs = [], set()
    for i in range(enc.n_vocab):
        try:
            b = enc.decode_single_token_bytes(i)
        except KeyError:
            continue
        pairs.update(b[k:k + 2] for k in range(len(b) - 1))
        t = b.decode("utf-8", "replace")
        if t.isalpha() and not any(c.isupper() or c.istitle() for c in t):
            tokens.append(b)
    random.Random(14).shuffle(tokens)
    parts, n, last = [], 0, None
    while n < size:
        before = n
        for b in tokens:
            if last is None or bytes([last, b[0]]) in pairs:
                parts.append(b)
                n, last = n + len(b), b[-1]
        if n == before:
            last = None  # a dead end: one cut
    return b"".join(parts).decode("utf-8")
'''


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_long_piece_with_every_byte_pair_stays_in_the_memory_bound(name):
    """A 1 MiB piece chaining every lower-case letter token of the vocabulary: the long-piece
    search built an automaton per chunk over the tokens whose byte pairs occur in it, here
    nearly all of them (tens of MB for one call). It now walks one trie of every token, built
    once per encoding (0.9-3.8 MB, a fixed table like the merge table, built here before
    measuring): the call stays within 4.5 bytes per token + 16 MB."""
    out = run_isolated(
        HOSTILE_PIECE
        + f"""
import fastllm
enc = fastllm.get_encoding({name!r})
enc.encode_ordinary("a" * 300_000)
text = hostile_piece(enc, 1 << 20)
base = peak_mb()
tokens = enc.encode_to_numpy(text)
grown = peak_mb() - base
assert enc.decode(tokens.tolist()) == text
print(grown, len(tokens))
""",
        timeout=300,
    )
    grown_mb, count = out.split()
    assert float(grown_mb) <= 4.5 * int(count) / 2**20 + 16, (grown_mb, count)


def test_vocabulary_lacking_single_bytes_is_linear_and_matches_tiktoken():
    """A vocabulary without the byte ``b`` (only ``"ab"`` and longer tokens hold it) merged by
    byte slices in a quadratic loop: a 1 MB piece never finished. Its missing bytes now have
    stand-in ids in the merge table, so such vocabularies take the linear paths: the tokens are
    tiktoken's (built from the same ranks), and a ``b`` no merge takes is still an error."""
    out = run_isolated(
        """
        import random, tiktoken, fastllm, pytest
        ranks = {bytes([b]): b for b in range(256) if b != ord("b")}
        ranks[b"ab"] = 256
        rng = random.Random(15)
        tokens = [b"a", b"ab", b"c"]
        while len(ranks) < 400:
            t = rng.choice(tokens) + rng.choice(tokens)
            if t not in ranks:
                ranks[t] = len(ranks) + 1
                tokens.append(t)
        args = dict(pat_str=r"[abc]+|[^abc]+", mergeable_ranks=ranks, special_tokens={})
        ours = fastllm.Encoding("nob", **args)
        theirs = tiktoken.Encoding("nob", **args)
        for size in (300, 5_000, 300_000, 1_000_000):
            text = "".join(rng.choice(["a", "ab", "c", "aab", "cab"]) for _ in range(size // 2))
            assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), size
        with pytest.raises(ValueError, match="byte 0x62 has no token"):
            ours.encode_ordinary("c" * 300_000 + "b")
        print("ok")
        """,
        timeout=120,
    )
    assert out.strip() == "ok"


def test_growth_past_the_first_reservation_is_a_memory_error():
    """``encode`` reserves a token per 4 bytes and grows from there: 64 MiB of NUL bytes (a
    token per byte) must grow to 256 MB, which the cap forbids. That growth is fallible now
    (it aborted the process); so is the flat batch path's."""
    out = run_isolated(
        """
        import fastllm
        enc = fastllm.get_encoding("gpt2")
        enc.encode("hi")
        text = "\\0" * (64 << 20)
        cap(200)
        for call in (
            lambda: enc.encode(text),
            lambda: enc.encode_ordinary_batch_to_numpy([text, "hi"]),
        ):
            try:
                call()
                print("encoded")
            except MemoryError:
                print("MemoryError")
        print(enc.encode("still works"))
        """,
        timeout=300,
    )
    lines = out.split("\n")
    assert lines[:2] == ["MemoryError", "MemoryError"], out
    assert lines[2] == str(fastllm.get_encoding("gpt2").encode("still works"))


def test_encode_to_numpy_under_a_memory_cap_does_not_abort():
    """The one-token-per-byte reservation fails under a cap; that falls back to a growing
    buffer (``encode`` succeeded where ``encode_to_numpy`` aborted)."""
    out = run_isolated(
        """
        import fastllm
        enc = fastllm.get_encoding("gpt2")
        enc.encode("hi")
        text = "hello world " * 8_000_000
        cap(250)  # 96 MB of text: one token per byte (384 MB) cannot be reserved
        print(len(enc.encode_to_numpy(text)))
        try:
            print(len(enc.encode(text * 2)))
        except MemoryError:
            print("MemoryError")
        """,
        timeout=300,
    )
    assert out.split() == ["16000001", "MemoryError"]


def test_huge_special_id_under_a_memory_cap_gives_memory_error_or_works():
    out = run_isolated(
        """
        from fastllm import Encoding
        ranks = {bytes([b]): b for b in range(256)}
        cap(200)
        try:
            enc = Encoding("big", pat_str="r50k", mergeable_ranks=ranks,
                           special_tokens={"<|x|>": 60_000_000})
        except MemoryError as e:
            print("MemoryError", e)
        else:
            for _ in range(3):
                print(enc.encode("hi"), enc.encode("<|x|>", allowed_special="all"))
        """
    )
    assert "PyObject pointer is null" not in out
    assert out.startswith("MemoryError out of memory") or out.startswith("[104, 105]")


# ---- 6. threads -------------------------------------------------------------------------------


def test_thread_counts_are_validated():
    enc = fastllm.get_encoding("gpt2")
    before = fastllm.get_num_threads()
    with pytest.raises(ValueError, match=r"between 0 \(all cores\) and 1024, got 5000"):
        fastllm.set_num_threads(5000)
    assert fastllm.get_num_threads() == before
    with pytest.raises(ValueError, match=r"num_threads must be between 0 .* got -1"):
        enc.encode_batch(["a", "b"], num_threads=-1)
    with pytest.raises(ValueError, match="num_threads"):
        enc.decode_batch([[1], [2]], num_threads=10_000)
    assert enc.encode_batch(["a b"] * 50, num_threads=1024) == [[64, 275]] * 50


# ---- 7. patterns that do not cover the text ---------------------------------------------------


@pytest.mark.parametrize(("pat_str", "text", "at"), [("", "hi", 0), (r"\w+", "hi there", 2)])
def test_pattern_that_leaves_text_out_is_an_error(pat_str, text, at):
    enc = Encoding("gap", pat_str=pat_str, mergeable_ranks=byte_ranks(), special_tokens={})
    with pytest.raises(ValueError, match=f"nothing matches at byte {at} "):
        enc.encode(text)
    assert enc.encode("") == []


# ---- 8. clear errors --------------------------------------------------------------------------


def test_vocabulary_errors_are_short_and_name_the_place(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(b"YQ== 0\n" + b"Q" * (20 << 20) + b" 1 2\n")
    with pytest.raises(ValueError) as info:
        Encoding.from_tiktoken_file(path, pat_str="r50k")
    assert len(str(info.value)) < 400
    assert "line 2" in str(info.value) and "\u2026" in str(info.value)

    path.write_bytes(b"YQ== 0\nYg== 67108864\n")
    with pytest.raises(ValueError) as info:
        Encoding.from_tiktoken_file(path, pat_str="r50k")
    message = str(info.value)
    assert str(path) in message and "line 2" in message and "'Yg=='" in message.replace('"', "'")
    assert "2**26" in message

    with pytest.raises(ValueError, match=r"special token '<\|big\|>'.* below 2\*\*26"):
        Encoding(
            "x", pat_str="r50k", mergeable_ranks=byte_ranks(), special_tokens={"<|big|>": 1 << 26}
        )


@pytest.mark.parametrize(
    "layout",
    [b"%s\t%d\n", b"%s  %d\n", b"%s \t %d\r\n", b"\t%s %d\n"],
)
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_tiktoken_files_read_as_tiktoken_reads_them(tmp_path, layout, bom):
    ranks = byte_ranks() | {b"hi": 256}
    body = b"".join(layout % (base64.b64encode(t), r) for t, r in ranks.items())
    path = tmp_path / "v.tiktoken"
    path.write_bytes(bom + body)
    if not (bom and layout.startswith(b"\t")):  # tiktoken reads the BOM as a field there
        assert tiktoken.load.load_tiktoken_bpe(str(path)) == ranks
    enc = Encoding.from_tiktoken_file(path, pat_str="r50k")
    assert enc._mergeable_ranks == ranks
    assert enc.encode("hi") == [256]


def test_damaged_encoding_sidecars_name_the_file(tmp_path):
    path = tmp_path / "e.tiktoken"
    fastllm.get_encoding("gpt2").save(path)
    sidecar = Path(str(path) + ".json")
    good = json.loads(sidecar.read_text())
    damaged: list[bytes] = [
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b"{",
        json.dumps({**good, "special_tokens": ["<|endoftext|>"]}).encode(),
        json.dumps({**good, "special_tokens": {"<|x|>": "1"}}).encode(),
        json.dumps({**good, "pat_str": None}).encode(),
        json.dumps({**good, "version": 99}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "ranks_sha256"}).encode(),
        json.dumps({**good, "ranks_sha256": "00"}).encode(),
    ]
    for data in damaged:
        sidecar.write_bytes(data)
        with pytest.raises(ValueError) as info:
            Encoding.load(path)
        assert str(path) in str(info.value), (data, info.value)


def test_simple_tokenizer_reads_a_lone_surrogate_as_an_unknown_word():
    tok = SimpleTokenizer.from_text("hello world", special_tokens=("<|unk|>",))
    assert tok.encode("hello \ud800") == [tok.encode("hello")[0], tok.token_to_id("<|unk|>")]
    strict = SimpleTokenizer.from_text("hello world", special_tokens=())
    with pytest.raises(KeyError, match="not in the vocabulary"):
        strict.encode("hello \ud800")
    assert SimpleTokenizer.from_text("a \ud800").encode("\ufffd") == [1]


# ---- 9. overlapping special tokens ------------------------------------------------------------


def test_overlapping_specials_leftmost_then_longest():
    """fastllm's rule: the leftmost special token wins, and of those starting at the same place
    the longest. (tiktoken decides the second case by its regex alternation, whose order comes
    from a hash map and varies between processes.)"""
    specials = {"<|a": 300, "<|ab|>": 301, "b|><|c|>": 302}
    enc = Encoding("o", pat_str="r50k", mergeable_ranks=byte_ranks(), special_tokens=specials)
    assert enc.encode("<|ab|>", allowed_special="all") == [301]
    only_a = {"allowed_special": {"<|a"}, "disallowed_special": ()}
    assert enc.encode("<|ab|>", **only_a) == [300, 98, 124, 62]
    assert enc.encode("x<|ab|><|c|>", allowed_special="all") == [120, 301, 60, 124, 99, 124, 62]
    only_c = {"allowed_special": {"b|><|c|>"}, "disallowed_special": ()}
    assert enc.encode("x<|ab|><|c|>", **only_c) == [120, 60, 124, 97, 302]


def test_overlapping_specials_match_tiktoken_where_it_is_deterministic():
    """Where no special token is a prefix of another, tiktoken's regex finds the leftmost match
    whatever the alternation order: fastllm must agree."""
    import random

    rng = random.Random(14)
    for _ in range(200):
        names: set[str] = set()
        while len(names) < rng.randint(1, 6):
            names.add("".join(rng.choice("<|ab>") for _ in range(rng.randint(1, 5))))
        if any(a != b and b.startswith(a) for a in names for b in names):
            continue
        specials = {n: 256 + i for i, n in enumerate(sorted(names))}
        ours = Encoding("o", pat_str="r50k", mergeable_ranks=byte_ranks(), special_tokens=specials)
        theirs = tiktoken.Encoding(
            "o",
            pat_str=fastllm._fastllm.R50K_PATTERN,
            mergeable_ranks=byte_ranks(),
            special_tokens=specials,
        )
        for _ in range(10):
            text = "".join(rng.choice("<|ab> ") for _ in range(rng.randint(0, 20)))
            expected = theirs.encode(text, allowed_special="all")
            assert ours.encode(text, allowed_special="all") == expected, (specials, text)


def test_long_repetitive_special_with_a_short_one_inside_is_linear():
    """A 100 KB special-token name ``"ab" * 50_000`` with ``"ab"`` also special: every search
    after an ``"ab"`` read the matches up to the long name's length again (quadratic: 250 k
    searches of 100 KB for this 500 KB text). One pass of the automaton now serves all."""
    out = run_isolated(
        """
        import fastllm
        long = "ab" * 50_000
        specials = {long: 300, "ab": 301}
        enc = fastllm.Encoding(
            "o", pat_str="r50k", mergeable_ranks={bytes([b]): b for b in range(256)},
            special_tokens=specials,
        )
        text = ("ab" * 49_999 + "x") * 5 + long
        tokens = enc.encode(text, allowed_special="all")
        assert tokens == ([301] * 49_999 + [120]) * 5 + [300]
        only_short = enc.encode(text, allowed_special={"ab"}, disallowed_special=())
        assert only_short == ([301] * 49_999 + [120]) * 5 + [301] * 50_000
        import pytest
        with pytest.raises(ValueError, match="disallowed special token"):
            enc.encode(text, allowed_special={"ab"})
        print("ok")
        """,
        timeout=120,
    )
    assert out.strip() == "ok"


# ---- 9. threads that cannot be started --------------------------------------------------------

THREAD_LIMIT_CHILD = """
import json, os, resource, sys, threading, time
import numpy as np
import fastllm

work, limit = sys.argv[1], int(sys.argv[2])
enc = fastllm.get_encoding("gpt2")
docs = [f"document {i} " * (i % 17 + 1) for i in range(400)]
expected = [enc.encode_ordinary(d) for d in docs]
flat_expected = [t for ids in expected for t in ids]
reference = fastllm.tokenize_files(work + "/in", work + "/ref.bin", num_threads=1)
ref_bytes = open(work + "/ref.bin", "rb").read()

def settle():
    # A joined thread may still count against the limit for a moment after it has ended.
    for _ in range(500):
        with open("/proc/self/status") as f:
            if next(l for l in f if l.startswith("Threads:")).split()[1] == "1":
                return
        time.sleep(0.01)

def capacity():
    '''How many more threads this process can start now (at most 16).'''
    release, started = threading.Event(), []
    try:
        while len(started) < 16:
            t = threading.Thread(target=release.wait)
            t.start()
            started.append(t)
    except RuntimeError:
        pass
    finally:
        release.set()
        for t in started:
            t.join()
    settle()
    return len(started)

# Root is exempt from RLIMIT_NPROC: the limit is set, then root's privileges are dropped (after
# everything above was read as root: /root, where Python lives, is not readable to nobody).
resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
if os.geteuid() == 0:
    try:
        os.setgid(65534)
        os.setuid(65534)
    except OSError as e:
        print(json.dumps({"skip": f"cannot drop root privileges: {e}"}))
        sys.exit(0)
room = capacity()
if room >= 16:
    print(json.dumps({"skip": "RLIMIT_NPROC does not limit threads here"}))
    sys.exit(0)
fastllm.set_num_threads(8)
out = {"room": room}
out["encode_ordinary_batch"] = enc.encode_ordinary_batch(docs, num_threads=8) == expected
out["encode_batch"] = enc.encode_batch(docs, num_threads=8) == expected
tokens, offsets = enc.encode_ordinary_batch_to_numpy(docs, num_threads=8)
out["to_numpy"] = tokens.tolist() == flat_expected and len(offsets) == len(docs) + 1
out["decode_batch"] = enc.decode_batch(expected, num_threads=8) == docs
out["decode_bytes_batch"] = enc.decode_bytes_batch(expected, num_threads=8) == [
    d.encode() for d in docs
]
try:
    fastllm.tokenize_files(work + "/in", work + "/out/tokens.bin", num_threads=4, resume=False)
    out["tokenize"] = open(work + "/out/tokens.bin", "rb").read() == ref_bytes
except OSError as e:
    out["tokenize"] = f"OSError: {e}"
print(json.dumps(out))
"""


@pytest.mark.parametrize("extra_threads", [0, 1, 3])
def test_threads_that_cannot_be_started_fall_back_or_raise_oserror(extra_threads):
    """Issue 14: ``set_num_threads(5000)`` then a batch gave ``PanicException: failed to spawn
    thread``. Here spawning really fails: a child lowers RLIMIT_NPROC (and, as root, who is
    exempt from it, drops to uid 65534) so that it can start ``extra_threads`` threads or none.
    Batch calls fall back to fewer threads (the calling thread alone at worst) and give the right
    result; a corpus run, which needs a reader thread and an encoder thread, gives the right
    token file or an ``OSError`` naming the threads it could not start. Never a crash."""
    import os
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="fastllm-nproc-"))
    try:
        (work / "in").mkdir()
        for i in range(6):
            (work / "in" / f"doc{i}.txt").write_text(f"corpus file {i} " * 2000)
        (work / "out").mkdir()
        for path in [work, work / "in", *sorted((work / "in").iterdir())]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (work / "out").chmod(0o777)
        # The process itself counts too; processes uid 65534 already runs would lower the room.
        limit = 1 + extra_threads if os.geteuid() == 0 else 1
        proc = subprocess.run(
            [sys.executable, "-c", THREAD_LIMIT_CHILD, str(work), str(limit)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "PanicException" not in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    room = out.pop("room")
    if os.geteuid() == 0:
        assert room <= extra_threads
    tokenize = out.pop("tokenize")
    assert out == dict.fromkeys(out, True), (room, out)
    if room == 0:
        assert tokenize.startswith("OSError: cannot start the corpus reader thread")
    elif room == 1:
        assert tokenize.startswith("OSError: cannot start any of 4 encoder threads")
    else:
        assert tokenize is True, (room, tokenize)
    if tokenize is not True:
        assert "lower the thread count" in tokenize
