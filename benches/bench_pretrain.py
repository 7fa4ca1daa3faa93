"""Benchmark: ``fastllm pretrain``'s loop against a minimal nanoGPT-style loop (pytest-benchmark).

Both train the same :class:`fastllm.nn.GPTModel` (the ``tiny`` configuration, GPT-2 vocabulary,
context 64) with AdamW (lr 4e-4, weight decay 0.1) on batches of 8 windows of the same token
file (Python's standard library sources tokenized by ``fastllm tokenize``):

* ``nanogpt`` - nanoGPT's ``train.py`` reduced to its core, as nanoGPT writes it: ``get_batch``
  stacks random windows of ``np.memmap`` (``torch.stack([torch.from_numpy(data[i:i+T]) ...])``),
  ``logits = model(x)``, ``F.cross_entropy``, ``zero_grad(set_to_none=True)``, ``backward``,
  ``step``, with ``torch.optim.AdamW`` as nanoGPT builds it on a CPU (its
  ``configure_optimizers`` asks for ``fused=True`` only when the device is CUDA).
* ``fastllm`` - :func:`fastllm.pretrain.pretrain` itself, i.e. what ``fastllm pretrain`` runs:
  its model, its optimizer (:func:`fastllm.pretrain.make_optimizer`: AdamW, fused on the CPU
  too), :class:`fastllm.pretrain.Trainer` over :class:`fastllm.pretrain.TokenBatches` of a
  :class:`fastllm.data.TokenFileDataset`, and :func:`fastllm.pretrain.calc_loss_batch` (the
  head and the cross entropy in chunks, never all logits at once). Its evaluation (the book's
  at step 0) falls before the first timed step; the progress callback stamps the steps.

Figures (issue 16): tokens per CPU second of fastllm / nanoGPT (target >= 1.0x) and the data
path's share of a step (a batch fetch's CPU time over a step's, target < 2%). The machine is
shared: times are CPU times (``time.process_time``, user + system: the page faults of freshly
allocated logits are system time) with torch on one thread, the two loops alternate round by
round (ABBA), and the load average is printed with the figures.

    python3 -m pytest benches/bench_pretrain.py --benchmark-only -p no:cacheprovider
    python3 benches/bench_pretrain.py          # prints the ratio and the data share
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastllm import corpus  # noqa: E402
from fastllm.data import TokenFileDataset  # noqa: E402
from fastllm.nn import GPT_CONFIGS, GPTModel  # noqa: E402
from fastllm.pretrain import TokenBatches, pretrain  # noqa: E402
from fastllm.tokenfile import tokenize_files  # noqa: E402

CONFIG = {**GPT_CONFIGS["tiny"], "context_length": 64}
BATCH = 8
STEPS = 12  # per round; the first step of each round is not timed
ROUNDS = 6
LR, WEIGHT_DECAY = 4e-4, 0.1


def token_file(folder: Path) -> Path:
    text = folder / "corpus.txt"
    text.write_text(corpus.python_source(2_000_000), encoding="utf-8")
    out = folder / "train.bin"
    tokenize_files(text, out, encoding="gpt2")
    return out


def nanogpt_steps(path: Path, steps: int, stamps: list[float]) -> None:
    """nanoGPT's loop: get_batch from np.memmap, forward, loss, backward, step; AdamW as
    nanoGPT's configure_optimizers builds it on a CPU (not fused)."""
    torch.manual_seed(123)
    model = GPTModel(CONFIG, check_token_ids=False)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    block = CONFIG["context_length"]
    data = np.memmap(path, dtype=np.uint16, mode="r")

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(data) - block, (BATCH,))
        x = torch.stack([torch.from_numpy(data[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(data[i + 1 : i + 1 + block].astype(np.int64)) for i in ix]
        )
        return x, y

    for _ in range(steps):
        x, y = get_batch()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stamps.append(time.process_time())


def fastllm_steps(path: Path, steps: int, stamps: list[float]) -> None:
    """``fastllm pretrain``'s run: :func:`fastllm.pretrain.pretrain` on the token file (the
    last 10% for validation, evaluated at step 0 only, before the first stamp)."""
    pretrain(
        path,
        config=CONFIG,
        batch_size=BATCH,
        max_steps=steps,
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        eval_freq=10**9,
        eval_iter=1,
        start_context="",
        device="cpu",
        seed=123,
        log=None,
        progress=lambda step, total, tokens, loss: stamps.append(time.process_time()),
    )


def fetch_seconds(path: Path, batches: int) -> float:
    """CPU seconds per batch of TokenBatches over the token file (the data path of a step)."""
    dataset = TokenFileDataset(path, CONFIG["context_length"], CONFIG["context_length"])
    loader = TokenBatches(dataset, BATCH, seed=123)
    loader.batch(0, 0)
    start = time.process_time()
    for step in range(1, batches + 1):
        loader.batch(0, step)
    return (time.process_time() - start) / batches


def per_step(stamps: list[float]) -> float:
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def measure(path: Path, rounds: int = ROUNDS) -> dict[str, Any]:
    """Interleaved rounds; per-step CPU seconds of each loop and the data path's share."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        nano: list[float] = []
        ours: list[float] = []
        shares: list[float] = []

        def run_nanogpt() -> None:
            stamps: list[float] = []
            nanogpt_steps(path, STEPS, stamps)
            nano.append(per_step(stamps))

        def run_fastllm() -> None:
            stamps: list[float] = []
            fastllm_steps(path, STEPS, stamps)
            step = per_step(stamps)
            ours.append(step)
            shares.append(fetch_seconds(path, STEPS) / step)

        for i in range(rounds):  # ABBA: neither loop always runs first
            for run in (run_nanogpt, run_fastllm) if i % 2 == 0 else (run_fastllm, run_nanogpt):
                run()
    finally:
        torch.set_num_threads(threads)
    tokens = BATCH * CONFIG["context_length"]
    return {
        "nanogpt_tokens_per_cpu_s": tokens / statistics.median(nano),
        "fastllm_tokens_per_cpu_s": tokens / statistics.median(ours),
        "ratio": statistics.median(n / o for n, o in zip(nano, ours)),
        "data_share": statistics.median(shares),
        "load_average": os.getloadavg()[0],
        "rounds": rounds,
    }


@pytest.fixture(scope="module")
def path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield token_file(Path(folder))


def _bench(benchmark: Any, run: Callable[[list[float]], Any]) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.pedantic(lambda: run([]), rounds=3, iterations=1, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.benchmark(group="pretrain-loop")
def test_nanogpt_loop(benchmark: Any, path: Path) -> None:
    _bench(benchmark, lambda stamps: nanogpt_steps(path, STEPS, stamps))


@pytest.mark.benchmark(group="pretrain-loop")
def test_fastllm_loop(benchmark: Any, path: Path) -> None:
    _bench(benchmark, lambda stamps: fastllm_steps(path, STEPS, stamps))


@pytest.mark.benchmark(group="pretrain-figures")
def test_ratio_and_data_share(benchmark: Any, path: Path) -> None:
    figures: dict[str, Any] = {}
    benchmark.pedantic(lambda: figures.update(measure(path, 3)), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    assert figures["ratio"] > 0 and 0 <= figures["data_share"] < 1


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        file = token_file(Path(folder))
        result = measure(file)
    tokens = BATCH * CONFIG["context_length"]
    print(
        f"tiny GPT ({CONFIG['n_layers']} layers, {CONFIG['emb_dim']} dims, vocab "
        f"{CONFIG['vocab_size']}), batch {BATCH} x {CONFIG['context_length']} = {tokens} tokens,"
        f" AdamW, torch on 1 thread, {result['rounds']} interleaved rounds of {STEPS} steps"
    )
    print("AdamW as each builds it on a CPU: fastllm pretrain fused, nanoGPT not (CUDA only)")
    print(f"nanoGPT-style loop  {result['nanogpt_tokens_per_cpu_s']:,.0f} tokens per CPU second")
    print(f"fastllm pretrain    {result['fastllm_tokens_per_cpu_s']:,.0f} tokens per CPU second")
    print(f"ratio               {result['ratio']:.3f}x (target >= 1.0x)")
    print(f"data path share     {result['data_share']:.3%} of a step (target < 2%)")
    print(f"load average        {result['load_average']:.2f}")
    sys.exit(0)
