"""BPE training speed, peak memory and compression: fastllm vs rustbpe vs HF tokenizers.

    python3 -m pytest benches/bench_train.py --benchmark-only

Two tasks (the issue's), every contender with the same pre-tokenizer pattern (GPT-2's r50k, as
a regex where the library takes one) and the same vocabulary size, no special tokens:

- ``english``: vocabulary 8,192 on 4.4 MB of English: all of ``fastllm.corpus.english_prose``
  (licence texts and the standard library's docstrings, 2.3 MB on a typical machine), then the
  standard library's ``#`` comments (the text after ``#``, one line each) up to 4.4 MB, fed as
  documents: paragraphs (split on blank lines), and comments in groups of 40 lines. The comments
  after the first 4.4 MB are the held-out text.
- ``python``: vocabulary 32,768 on ``fastllm.corpus.python_source(20_000_000)``, fed as chunks
  of 2,000 lines; held out: 2 MB of standard library source after the first 22 MB.

``test_train`` times training (3 rounds each); ``test_peak_memory`` trains once in a fresh child
process and reports the peak RSS above the child's baseline (``/proc/self/clear_refs`` resets the
peak once the corpus is loaded; ``ru_maxrss`` where that is missing); ``test_report`` (last)
encodes the held-out text with each trained vocabulary, and prints and records the ratios
measured in this run: training time vs fastllm, bytes per token, peak memory.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fastllm import _fastllm, corpus

TASKS = {"english": 8192, "python": 32768}
CONTENDERS = ["fastllm", "rustbpe", "hf_tokenizers"]
ROUNDS = 3
PATTERN = _fastllm.R50K_PATTERN
ENGLISH_BYTES = 4_400_000
PYTHON_BYTES = 20_000_000

TIMES: dict[tuple[str, str], dict[str, float]] = {}
TRAINED: dict[tuple[str, str], object] = {}
MEMORY: dict[tuple[str, str], dict[str, float]] = {}


def available(contender: str) -> bool:
    module = {"rustbpe": "rustbpe", "hf_tokenizers": "tokenizers"}.get(contender)
    return module is None or importlib.util.find_spec(module) is not None


@functools.lru_cache(maxsize=1)
def _comments() -> list[str]:
    source = corpus.python_source(100_000_000)
    lines = (line.strip() for line in source.split("\n"))
    return [line[1:].strip() for line in lines if line.startswith("#") and line[1:].strip()]


@functools.cache
def task_data(task: str) -> tuple[list[str], str]:
    """(training documents, held-out text) of a task."""
    if task == "english":
        prose = corpus.english_prose(ENGLISH_BYTES)
        docs = [p for p in prose.split("\n\n") if p]
        size = sum(len(d.encode("utf-8")) for d in docs)
        comments = _comments()
        used = 0
        while size < ENGLISH_BYTES and used < len(comments):
            group = "\n".join(comments[used : used + 40])
            docs.append(group)
            size += len(group.encode("utf-8"))
            used += 40
        return docs, "\n".join(comments[used:])
    source = corpus.python_source(PYTHON_BYTES)
    lines = source.split("\n")
    docs = ["\n".join(lines[i : i + 2000]) + "\n" for i in range(0, len(lines), 2000)]
    held_out = corpus.python_source(2_000_000, skip_bytes=PYTHON_BYTES + 2_000_000)
    return docs, held_out


def train(contender: str, docs: list[str], vocab_size: int) -> object:
    """Trains one contender; returns something ``count_tokens`` can use."""
    if contender == "fastllm":
        from fastllm.train import train_bpe

        return train_bpe(docs, vocab_size, pat_str=PATTERN, special_tokens=())
    if contender == "rustbpe":
        import rustbpe

        tokenizer = rustbpe.Tokenizer()
        tokenizer.train_from_iterator(iter(docs), vocab_size, pattern=PATTERN)
        return tokenizer
    if contender == "hf_tokenizers":
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tokenizer.train_from_iterator(docs, trainer=trainer)
        return tokenizer
    raise ValueError(contender)


def count_tokens(contender: str, trained: object, text: str) -> int:
    if contender == "fastllm":
        return len(trained.encode_ordinary(text))  # type: ignore[attr-defined]
    if contender == "rustbpe":
        return len(trained.encode(text))  # type: ignore[attr-defined]
    return len(trained.encode(text).ids)  # type: ignore[attr-defined]


def vocab_size_of(contender: str, trained: object) -> int:
    if contender == "fastllm":
        return trained.n_vocab  # type: ignore[attr-defined]
    if contender == "rustbpe":
        return trained.vocab_size  # type: ignore[attr-defined]
    return trained.get_vocab_size()  # type: ignore[attr-defined]


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("contender", CONTENDERS)
def test_train(benchmark, contender, task):
    if not available(contender):
        pytest.skip(f"{contender} is not installed")
    docs, _ = task_data(task)
    vocab_size = TASKS[task]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    benchmark.group = f"train {task} vocab {vocab_size}"
    benchmark.extra_info.update(contender=contender, bytes=n_bytes, vocab_size=vocab_size)
    trained = benchmark.pedantic(
        train, args=(contender, docs, vocab_size), rounds=ROUNDS, iterations=1
    )
    TRAINED[(task, contender)] = trained
    stats = benchmark.stats.stats
    TIMES[(task, contender)] = {"min": stats.min, "mean": stats.mean}
    assert vocab_size_of(contender, trained) == vocab_size


CHILD = r"""
import json, pickle, resource, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[3])
import bench_train

def status(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None

contender, data = sys.argv[1], sys.argv[2]
with open(data, "rb") as f:
    docs, vocab_size = pickle.load(f)
bench_train.train(contender, ["warm up the code paths"] * 3, 300)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = status("VmRSS:")
except OSError:
    baseline = None
if baseline is None:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
bench_train.train(contender, docs, vocab_size)
seconds = time.perf_counter() - start
peak = status("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds}))
"""


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("contender", CONTENDERS)
def test_peak_memory(benchmark, contender, task):
    if not available(contender):
        pytest.skip(f"{contender} is not installed")
    docs, _ = task_data(task)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "docs.pickle"
        data.write_bytes(pickle.dumps((docs, TASKS[task])))

        def run() -> dict[str, float]:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, contender, str(data), str(Path(__file__).parent)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            return json.loads(out.stdout.strip().splitlines()[-1])

        benchmark.group = f"peak memory {task}"
        result = benchmark.pedantic(run, rounds=1, iterations=1)
    mb = (result["peak"] - result["baseline"]) / 1e6
    MEMORY[(task, contender)] = {"peak_mb": mb, "seconds": result["seconds"]}
    benchmark.extra_info.update(contender=contender, peak_above_baseline_mb=round(mb, 1))


def test_report(benchmark, capsys):
    """Held-out compression of each trained vocabulary, and the ratios of this run."""
    done = [key for key in TRAINED if key[1] == "fastllm"]
    if not done:
        pytest.skip("no training benchmark ran")
    held_out = {task: task_data(task)[1] for task in TASKS}
    enc = TRAINED[done[0]]
    benchmark.group = "encode held-out text with the trained vocabulary"
    encode = enc.encode_ordinary  # type: ignore[attr-defined]
    benchmark.pedantic(encode, args=(held_out[done[0][0]],), rounds=3)
    lines = ["", "BPE training (ratios measured in this run; r50k pattern, no special tokens)"]
    header = (
        f"{'task':<9} {'contender':<14} {'train s (min/mean)':>19} {'vs fastllm':>10} "
        f"{'bytes/token':>11} {'peak MB':>8}"
    )
    lines.append(header)
    report: dict[str, dict[str, object]] = {}
    for task, vocab_size in TASKS.items():
        docs, text = task_data(task)
        n_bytes = len(text.encode("utf-8"))
        base = TIMES.get((task, "fastllm"))
        for contender in CONTENDERS:
            if (task, contender) not in TRAINED:
                continue
            times = TIMES[(task, contender)]
            ratio = times["min"] / base["min"] if base else float("nan")
            tokens = count_tokens(contender, TRAINED[(task, contender)], text)
            bpt = n_bytes / tokens
            mem = MEMORY.get((task, contender), {}).get("peak_mb", float("nan"))
            lines.append(
                f"{task:<9} {contender:<14} {times['min']:>8.3f} / {times['mean']:<8.3f} "
                f"{ratio:>9.2f}x {bpt:>11.3f} {mem:>8.1f}"
            )
            report[f"{task}/{contender}"] = {
                "vocab_size": vocab_size,
                "train_bytes": sum(len(d.encode("utf-8")) for d in docs),
                "held_out_bytes": n_bytes,
                "train_min_s": times["min"],
                "train_mean_s": times["mean"],
                "time_vs_fastllm": ratio,
                "bytes_per_token": bpt,
                "peak_mb": mem,
            }
    benchmark.extra_info["report"] = report
    with capsys.disabled():
        print("\n".join(lines))
