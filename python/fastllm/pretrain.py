"""Pretraining a GPT on token files (chapter 5 of "Build a Large Language Model (From Scratch)").

The book's functions, with its names and semantics: :func:`calc_loss_batch` (cross entropy of
the logits against the targets), :func:`calc_loss_loader` (its mean over ``num_batches``),
:func:`evaluate_model`, :func:`generate_and_print_sample`, :func:`train_model_simple` (AdamW
steps, an evaluation every ``eval_freq`` steps on ``eval_iter`` batches, a sample after each
epoch) and :func:`plot_losses` (train and validation loss against epochs and tokens seen).

:func:`pretrain` (and ``fastllm pretrain``) runs that loop on a token file written by
``fastllm tokenize`` or a sharded set: the windows are read from the memory map batch by batch
(:class:`TokenBatches`; the file is never copied), the run is checkpointed (model, optimizer,
data position and RNG state) so that a stopped run resumes with the very losses it would have
had, and the loss curve is saved as a PNG.

Design notes (measured with benches/bench_pretrain.py and torch.profiler: CPU time, torch on one
thread, tiny config with the GPT-2 vocabulary, batch 8 x 64, torch 2.15 CPU, 2 shared cores):
the nanoGPT-style step (0.58-0.67 CPU s at load 10-16) was 38% matmuls, 26% ``log_softmax``
and its backward, 9% ``fill_``, 21% AdamW (``sqrt``/``div``/``lerp_``/``addcdiv_`` per
tensor), and 40% of it system time: 100-125k page faults a step (400-500 MB), the 100 MB
``(512, 50257)`` logits and their gradients (allocations above glibc's 32 MB mmap threshold
are fresh pages every step) and AdamW's temporaries for the two 25 MB embedding matrices.
The loops around the step cost little (cProfile, load 13: the Python lines of Trainer.run,
calc_loss_batch and the token-id check, with the progress callback, ``model.train()`` and the
int64 batch copy of 4 KiB, are 5 ms of a 0.36 s step, about 1%); a batch fetch is
0.005-0.04% of a step. So the step itself is made cheaper, with the same numbers:

* :func:`calc_loss_batch` on a :class:`GPTModel` computes the head and the cross entropy
  together (:func:`linear_cross_entropy`): 64 tokens at a time (13 MB of logits, reused
  memory, no page faults), the chunk's softmax minus the one-hot targets giving its rows of
  the hidden states' gradient and its share of the head's, in the forward pass (no logits kept
  for backward); one ``softmax`` pass instead of ``log_softmax`` + ``exp`` (-11% on the head),
  the mean's 1/count applied to the small factors of the products, not to the probabilities,
  and the first chunk writing the head's gradient instead of zeros + add (-9%).
  The head + loss, forward and backward: 0.44-0.46 CPU s -> 0.28 (sys 0.21 -> 0.00, load 9)
  in the first version, each later change measured against the one before it. Loss and
  gradients equal the book's code to 1e-5 (tests/test_pretrain.py); hooks, a subclass's own
  ``forward``, autocast, a compiled model or a GPU (not measured: no GPU was lent) take the
  book's logits path.
* :func:`make_optimizer`: AdamW with ``fused=True`` (CPU kernels since torch 2.4): one pass
  per tensor and no temporaries, 0.145 -> 0.074 CPU s a step for the 13M parameters, the
  same update to 3e-8. ``foreach=True`` is no faster on a CPU (and equal bit for bit).
* Not tried, each for a reason: ``torch.set_flush_denormal`` (process-wide, and it changes
  numbers), keeping the gradients across steps (the book's ``zero_grad()`` sets them to None
  and backward allocates its results anew either way), int32 batches (the int64 copy is 4 KiB
  of a 0.3 s step), contiguity (every operand of the head is contiguous already).

Whole step (the four variants interleaved in one process, load 10): 0.577 -> 0.311 CPU s
(the chunked head alone 0.413, fused AdamW alone 0.460). The bench, fastllm pretrain /
nanoGPT-style loop: 1.89x (1,572 vs 848 tokens per CPU second, load 7.7), 2.21x (load 15.4)
and, with the last two changes to the head, 2.15x (1,554 vs 703, load 13.3) and 1.96x
(1,373 vs 707, load 5.5). ``--bf16`` on a CPU runs the book's logits path under autocast
(losses within 0.01% of float32 in the test); ``--compile`` works on a CPU (losses equal to
1e-6) but compiling took 150 s here, so no test runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastllm.data.dataset import WindowDataset
from fastllm.data.tokenfile import TokenFileDataset
from fastllm.nn.generate import generate_text_simple, text_to_token_ids, token_ids_to_text
from fastllm.nn.gpt import GPT_CONFIGS, GPTModel, check_config

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fastllm.encoding import Encoding

__all__ = [
    "CHECKPOINT_FORMAT",
    "PretrainResult",
    "TokenBatches",
    "Trainer",
    "calc_loss_batch",
    "calc_loss_loader",
    "evaluate_model",
    "generate_and_print_sample",
    "linear_cross_entropy",
    "load_checkpoint",
    "make_optimizer",
    "open_token_data",
    "plot_losses",
    "pretrain",
    "resolve_config",
    "resolve_device",
    "train_model_simple",
]

PathLike = Union[str, "os.PathLike[str]"]
Batch = tuple[torch.Tensor, torch.Tensor]
#: ``progress(steps_done, steps_total, tokens_seen, loss)``: ``loss`` is the last step's loss
#: tensor (call ``.item()`` only when it is shown: on CUDA that waits for the GPU).
Progress = Callable[[int, int, int, torch.Tensor], None]

CHECKPOINT_FORMAT = "fastllm-pretrain-checkpoint"
CHECKPOINT_VERSION = 1

# --------------------------------------------------------------------------------------------
# the book's loss functions
# --------------------------------------------------------------------------------------------


def calc_loss_batch(
    input_batch: torch.Tensor,
    target_batch: torch.Tensor,
    model: nn.Module,
    device: torch.device | str,
) -> torch.Tensor:
    """The book's ``calc_loss_batch`` (section 5.1): the mean cross entropy of ``model``'s
    logits for ``input_batch`` against ``target_batch``, both moved to ``device``.

    >>> import torch
    >>> from fastllm.nn import GPTModel, GPT_CONFIGS
    >>> _ = torch.manual_seed(123)
    >>> model = GPTModel({**GPT_CONFIGS["tiny"], "vocab_size": 50})
    >>> x = torch.randint(0, 50, (2, 8))
    >>> loss = calc_loss_batch(x, x, model, "cpu")
    >>> loss.shape, 3.0 < loss.item() < 5.0  # about ln(50) = 3.9 before training
    (torch.Size([]), True)
    """
    non_blocking = torch.device(device).type == "cuda"
    input_batch = input_batch.to(device, non_blocking=non_blocking)
    target_batch = target_batch.to(device, non_blocking=non_blocking)
    gpt = _fusable_head(model)
    if gpt is not None:
        hidden = gpt.hidden(input_batch).flatten(0, 1)
        return linear_cross_entropy(hidden, gpt.out_head.weight, target_batch.flatten())
    logits = model(input_batch)
    return F.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def _fusable_head(model: nn.Module) -> GPTModel | None:
    """``model`` when ``model(x)`` is exactly ``out_head(hidden(x))`` of a :class:`GPTModel`:
    its own ``forward`` (not a subclass's), no hooks that would see the logits, no autocast
    (which would run the head in another dtype), on the CPU; else None."""
    if not isinstance(model, GPTModel) or type(model).forward is not GPTModel.forward:
        return None
    head = model.out_head
    if model._forward_hooks or model._forward_pre_hooks or head._forward_hooks:
        return None
    if head._forward_pre_hooks or head.bias is not None or type(head) is not nn.Linear:
        return None
    device_type = head.weight.device.type
    if device_type != "cpu" or torch.is_autocast_enabled(device_type) or _global_hooks():
        return None  # on a GPU the logits are cheap and the 64-token chunks untested
    return model


def _global_hooks() -> bool:
    from torch.nn.modules import module as torch_module

    return bool(
        getattr(torch_module, "_global_forward_hooks", None)
        or getattr(torch_module, "_global_forward_pre_hooks", None)
    )


def _chunk_rows(vocab_size: int) -> int:
    """Rows of logits per chunk: a power of two with at most 2**22 logits (16 MiB in float32,
    under glibc's largest mmap threshold, so the chunk's memory is reused, not faulted in)."""
    rows = max(1, (1 << 22) // max(vocab_size, 1))
    return 1 << (rows.bit_length() - 1)


class _LinearCrossEntropy(torch.autograd.Function):
    """``F.cross_entropy(hidden @ weight.T, targets)`` (mean, ``ignore_index=-100``) computed
    chunk by chunk, the gradients with it: each chunk's softmax minus the one-hot targets
    gives the chunk's rows of ``d hidden`` and its share of ``d weight``; backward only
    scales them by the incoming gradient."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int
    ) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        valid = targets != -100
        count = valid.sum()
        scale = 1.0 / count.to(hidden.dtype)
        d_hidden = torch.empty_like(hidden) if need_hidden else None
        d_weight = None
        if need_weight:  # written by the first chunk (zeros when there is none)
            d_weight = torch.empty_like(weight) if len(hidden) else torch.zeros_like(weight)
        total = hidden.new_zeros(())
        on_cpu = hidden.device.type == "cpu"
        tiny = torch.finfo(hidden.dtype).tiny
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start : start + rows]
            keep = valid[start : start + rows]
            t = targets[start : start + rows].clamp(min=0)[:, None]
            logits = h @ weight.t()
            if on_cpu:  # one softmax kernel is 34% cheaper than log_softmax + exp on a CPU
                p = torch.softmax(logits, dim=1)
                picked = p.gather(1, t).squeeze(1)
                nll = -picked.log()
                low = picked < tiny  # loss > 87 nats: log of a subnormal or 0, exactly instead
                if bool(low.any()):
                    lse = torch.logsumexp(logits[low], dim=1)
                    nll[low] = lse - logits[low].gather(1, t[low]).squeeze(1)
            else:  # no value read back on a GPU
                p = torch.log_softmax(logits, dim=1)
                nll = -p.gather(1, t).squeeze(1)
                p.exp_()
            del logits
            total += (nll * keep).sum()
            if d_hidden is None and d_weight is None:
                continue
            p.scatter_add_(1, t, torch.full_like(t, -1, dtype=p.dtype))
            # the 1/count of the mean (0 for ignored targets) scales rows: the small factors of
            # the products (rows x dim), not the chunk of probabilities (rows x vocab)
            weights = (keep * scale)[:, None]
            if d_hidden is not None:
                out = d_hidden[start : start + rows]
                torch.mm(p, weight, out=out)
                out.mul_(weights)
            if d_weight is not None and start == 0:
                torch.mm(p.t(), h * weights, out=d_weight)  # the first chunk writes, others add
            elif d_weight is not None:
                d_weight.addmm_(p.t(), h * weights)
        ctx.save_for_backward(d_hidden, d_weight)
        return total * scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        d_hidden, d_weight = ctx.saved_tensors
        if grad.device.type == "cpu" and bool(grad == 1):  # the usual loss.backward()
            return d_hidden, d_weight, None, None
        return (
            None if d_hidden is None else d_hidden * grad,
            None if d_weight is None else d_weight * grad,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets)`` without the ``(tokens, vocab)`` logits
    in memory: ``chunk_rows`` tokens at a time (default: 16 MiB of logits), the gradients of
    ``hidden`` and ``weight`` computed in the same pass. The same loss and gradients to float
    tolerance (sums in another order); ``targets`` of -100 are ignored, as torch's.

    >>> import torch, torch.nn.functional as F
    >>> _ = torch.manual_seed(0)
    >>> h, w = torch.randn(10, 4), torch.randn(7, 4)
    >>> t = torch.randint(0, 7, (10,))
    >>> loss = linear_cross_entropy(h, w, t, chunk_rows=3)
    >>> torch.allclose(loss, F.cross_entropy(h @ w.T, t))
    True
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"linear_cross_entropy takes hidden (tokens, dim) and weight (vocab, dim), got "
            f"{tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"targets must be (tokens,) = ({hidden.shape[0]},), got {tuple(targets.shape)}"
        )
    vocab = int(weight.shape[0])
    if targets.device.type == "cpu" and targets.numel():
        bad = targets[((targets < 0) & (targets != -100)) | (targets >= vocab)]
        if bad.numel():
            raise IndexError(f"Target {int(bad[0])} is out of bounds.")
    rows = chunk_rows if chunk_rows is not None else _chunk_rows(vocab)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if not torch.is_grad_enabled():
        with torch.no_grad():
            return _LinearCrossEntropy.forward(_NoGrad(), hidden, weight, targets, rows)
    out: torch.Tensor = _LinearCrossEntropy.apply(hidden, weight, targets, rows)
    return out


class _NoGrad:
    """The ``ctx`` of a forward without autograd: no gradients wanted, none saved."""

    needs_input_grad = (False, False, False, False)

    def save_for_backward(self, *tensors: Any) -> None:
        pass


def calc_loss_loader(
    data_loader: Iterable[Batch],
    model: nn.Module,
    device: torch.device | str,
    num_batches: int | None = None,
) -> float:
    """The book's ``calc_loss_loader``: the mean of :func:`calc_loss_batch` over the first
    ``num_batches`` batches of ``data_loader`` (all of them by default; ``nan`` when it has
    none).

    >>> import numpy as np, torch
    >>> from fastllm.data import WindowDataset
    >>> from fastllm.nn import GPTModel, GPT_CONFIGS
    >>> _ = torch.manual_seed(123)
    >>> model = GPTModel({**GPT_CONFIGS["tiny"], "vocab_size": 50}).eval()
    >>> loader = TokenBatches(WindowDataset(np.arange(50, dtype=np.uint16), 8, 8), 2)
    >>> 3.0 < calc_loss_loader(loader, model, "cpu", num_batches=2) < 5.0
    True
    """
    total_loss = 0.0
    length = len(data_loader) if isinstance(data_loader, Sized) else None
    if length == 0:
        return float("nan")
    if num_batches is None:
        if length is None:
            raise ValueError("calc_loss_loader needs num_batches for a loader without len()")
        num_batches = length
    elif length is not None:
        num_batches = min(num_batches, length)
    done = 0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        loss = calc_loss_batch(input_batch, target_batch, model, device)
        total_loss += loss.item()
        done += 1
    return total_loss / done if done else float("nan")


def evaluate_model(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    device: torch.device | str,
    eval_iter: int,
) -> tuple[float, float]:
    """The book's ``evaluate_model``: the train and validation loss over ``eval_iter`` batches
    each, in eval mode (no dropout) and without gradients; the model is put back in training
    mode."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(
    model: nn.Module,
    tokenizer: Any,
    device: torch.device | str,
    start_context: str,
    *,
    max_new_tokens: int = 50,
    log: Callable[[str], None] = print,
) -> str:
    """The book's ``generate_and_print_sample``: 50 greedy tokens after ``start_context``,
    printed on one line (through ``log``) and returned."""
    model.eval()
    pos_emb = model.pos_emb
    if not isinstance(pos_emb, nn.Embedding):
        raise TypeError("generate_and_print_sample needs a GPTModel (a model with pos_emb)")
    context_size = int(pos_emb.weight.shape[0])
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(
            model=model, idx=encoded, max_new_tokens=max_new_tokens, context_size=context_size
        )
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    log(decoded_text.replace("\n", " "))
    model.train()
    return decoded_text


# --------------------------------------------------------------------------------------------
# batches from token files
# --------------------------------------------------------------------------------------------


class TokenBatches:
    """Batches of a window dataset in a seeded random order per epoch, as the book's
    ``DataLoader(dataset, batch_size, shuffle=True, drop_last=True)``, but with a position.

    ``dataset`` is anything that gathers a batch from an index array: a
    :class:`fastllm.data.TokenFileDataset` (a memory-mapped token file or sharded set) or a
    :class:`fastllm.data.WindowDataset`; each batch is one gather from the memory map, so
    the token file is never copied. Epoch ``e``'s order is ``torch.randperm`` seeded with
    ``(seed, e)``, so any batch of any epoch can be recomputed: :meth:`iter_epoch` starts at a
    given step, which is how a checkpointed run resumes exactly. ``shuffle=False`` keeps the
    windows in order (the validation set). On CUDA the batches are pinned and copied without
    blocking.

    Iterating the object gives the epoch set by :meth:`set_epoch`, from its first batch.

    >>> import numpy as np
    >>> from fastllm.data import WindowDataset
    >>> dataset = WindowDataset(np.arange(41, dtype=np.uint16), max_length=4, stride=4)
    >>> loader = TokenBatches(dataset, batch_size=3, seed=0)
    >>> len(loader), [x[:, 0].tolist() for x, _ in loader]
    (3, [[16, 4, 28], [20, 12, 36], [0, 32, 24]])
    >>> [x[:, 0].tolist() for x, _ in loader.iter_epoch(0, start=2)]
    [[0, 32, 24]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.device = None if device is None else torch.device(device)
        self.epoch = 0
        self._order: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order iterating the object gives."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> torch.Tensor:
        """The window indices of ``epoch`` in the order they are served."""
        if self._order is not None and self._order[0] == epoch:
            return self._order[1]
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        self._order = (epoch, order)
        return order

    def batch(self, epoch: int, step: int) -> Batch:
        """Batch ``step`` of ``epoch`` (on the loader's device)."""
        rows = self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        x, y = self.dataset[rows.numpy()]
        if self.device is None or self.device.type == "cpu":
            return x, y
        if self.device.type == "cuda":
            return (
                x.pin_memory().to(self.device, non_blocking=True),
                y.pin_memory().to(self.device, non_blocking=True),
            )
        return x.to(self.device), y.to(self.device)

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from batch ``start`` on."""
        for step in range(start, len(self)):
            yield self.batch(epoch, step)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_epoch(self.epoch)

    def __repr__(self) -> str:
        return (
            f"TokenBatches({len(self)} batches of {self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, over {self.dataset!r})"
        )


def _window_count_error(what: str, tokens: int, context_length: int, batch_size: int) -> str:
    return (
        f"{what} holds {tokens:,} tokens: too few for one batch of {batch_size} windows of "
        f"context_length + 1 = {context_length + 1:,} tokens; use a smaller --context-length "
        "or --batch-size, or more data"
    )


def _token_count(dataset: Any) -> int:
    if isinstance(dataset, TokenFileDataset):
        return sum(len(p) for p in dataset.parts)
    return int(len(dataset.inputs) * dataset.stride + dataset.max_length)


def _open_dataset(
    source: PathLike | list[PathLike], context_length: int, stride: int, dtype: Any
) -> TokenFileDataset:
    try:
        return TokenFileDataset(source, max_length=context_length, stride=stride, dtype=dtype)
    except ValueError as error:
        if "too few for max_length" not in str(error):
            raise
        tokens = sum(len(p) for p in TokenFileDataset(source, 1, 1, dtype=dtype).parts)
        shown = source if isinstance(source, (str, os.PathLike)) else ", ".join(map(str, source))
        raise ValueError(
            f"{os.fspath(shown)} holds {tokens:,} tokens, fewer than one window of "
            f"context_length + 1 = {context_length + 1:,} tokens needs: use a smaller "
            "--context-length, or more data"
        ) from None


def open_token_data(
    train: PathLike | list[PathLike],
    val: PathLike | list[PathLike] | None,
    context_length: int,
    *,
    stride: int | None = None,
    dtype: Any = None,
    val_fraction: float = 0.1,
) -> tuple[Any, Any, dict[str, Any] | None]:
    """The training and validation window datasets of a run, and the token file's metadata.

    ``train`` is a token file (its ``.json`` sidecar says the dtype and the vocabulary), a
    shard manifest, a glob or a list of shards (see :class:`fastllm.data.TokenFileDataset`);
    ``dtype`` reads a flat file without sidecar. The validation set is ``val`` when given, else
    the manifest's ``val`` shards, else the last shard of a sharded set, else the last
    ``val_fraction`` of the tokens (as the book's 90/10 split; both are views of the memory
    map). Windows are ``context_length`` tokens apart (``stride``, as the book's loaders).

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.bin"
    >>> np.arange(1000, dtype=np.uint16).tofile(path)
    >>> train, val, meta = open_token_data(path, None, 16, dtype=np.uint16)
    >>> len(train), len(val), int(val[0][0][0])
    (56, 6, 900)
    """
    stride = context_length if stride is None else stride
    data = _open_dataset(train, context_length, stride, dtype)
    meta = data.meta
    manifest = meta is not None and "shards" in meta
    if val is not None:
        val_data: Any = _open_dataset(val, context_length, stride, dtype)
    elif manifest and any(s.get("split") == "val" for s in meta["shards"]):  # type: ignore[index]
        data = TokenFileDataset(train, context_length, stride, dtype=dtype, split="train")
        val_data = TokenFileDataset(train, context_length, stride, dtype=dtype, split="val")
    elif len(data.parts) > 1:
        files = [Path(getattr(p, "filename", "") or "") for p in data.parts]
        if not all(f.name for f in files):
            raise ValueError(f"{train}: pass --val, the shards cannot be split")
        data = TokenFileDataset([str(f) for f in files[:-1]], context_length, stride, dtype=dtype)
        val_data = TokenFileDataset(str(files[-1]), context_length, stride, dtype=dtype)
    else:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
        tokens = data.tokens
        split = int(len(tokens) * (1 - val_fraction))
        for what, part in (
            ("the training part", tokens[:split]),
            ("the validation part", tokens[split:]),
        ):
            if len(part) < context_length + 1:
                raise ValueError(
                    f"{os.fspath(data.path)} holds {len(tokens):,} tokens; {what} "
                    f"({len(part):,} tokens, {val_fraction:.0%} for validation) is shorter "
                    f"than context_length + 1 = {context_length + 1:,}: use a smaller "
                    "--context-length, more data, or a separate --val file"
                )
        val_data = WindowDataset(tokens[split:], context_length, stride)
        train_data = WindowDataset(tokens[:split], context_length, stride)
        return train_data, val_data, meta
    return data, val_data, meta


# --------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------


@dataclass
class Trainer:
    """The state of :func:`train_model_simple`'s loop, so that it can stop and resume.

    The fields after ``tokenizer`` are the position (``epoch``, ``step_in_epoch``: batches of
    that epoch done; ``global_step`` as the book counts it, from -1) and the history the book
    returns. :meth:`run` trains until ``num_epochs`` are done or ``max_steps`` steps (in all,
    counting those before a resume); :meth:`state_dict` / :meth:`load_state_dict` hold
    everything a checkpoint needs to continue with the same losses.
    """

    model: nn.Module
    train_loader: Iterable[Batch]
    val_loader: Iterable[Batch]
    optimizer: torch.optim.Optimizer
    device: torch.device | str
    num_epochs: int
    eval_freq: int
    eval_iter: int
    start_context: str
    tokenizer: Any
    max_steps: int | None = None
    autocast: torch.dtype | None = None
    progress: Progress | None = None
    log: Callable[[str], None] = print
    on_step: Callable[[Trainer], None] | None = None
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = -1
    tokens_seen: int = 0
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    track_tokens_seen: list[int] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=self.autocast)

    @property
    def total_steps(self) -> int:
        """The steps the run makes in all (``max_steps`` or every batch of every epoch)."""
        per_epoch = len(self.train_loader) if isinstance(self.train_loader, Sized) else 0
        total = per_epoch * self.num_epochs
        return min(total, self.max_steps) if self.max_steps is not None else total

    @property
    def done(self) -> bool:
        """Whether the run has made all its steps."""
        steps = self.global_step + 1
        return self.epoch >= self.num_epochs or (
            self.max_steps is not None and steps >= self.max_steps
        )

    def _batches(self) -> Iterator[Batch]:
        loader = self.train_loader
        if isinstance(loader, TokenBatches):
            return loader.iter_epoch(self.epoch, self.step_in_epoch)
        if self.step_in_epoch:
            raise ValueError("only a TokenBatches loader resumes in the middle of an epoch")
        set_epoch = getattr(loader, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        return iter(loader)

    def _evaluate(self) -> None:
        with self._context():
            train_loss, val_loss = evaluate_model(
                self.model, self.train_loader, self.val_loader, self.device, self.eval_iter
            )
        self.train_losses.append(train_loss)
        self.val_losses.append(val_loss)
        self.track_tokens_seen.append(self.tokens_seen)
        self.log(
            f"Ep {self.epoch + 1} (Step {self.global_step:06d}): "
            f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}"
        )

    def _sample(self) -> None:
        if self.tokenizer is not None and self.start_context:
            self.samples.append(
                generate_and_print_sample(
                    self.model, self.tokenizer, self.device, self.start_context, log=self.log
                )
            )

    def run(self) -> tuple[list[float], list[float], list[int]]:
        """Trains to the end; returns the book's ``(train_losses, val_losses,
        track_tokens_seen)``."""
        model, optimizer = self.model, self.optimizer
        total = self.total_steps
        while not self.done:
            if isinstance(self.train_loader, TokenBatches):
                self.train_loader.set_epoch(self.epoch)
            model.train()
            for input_batch, target_batch in self._batches():
                optimizer.zero_grad()
                with self._context():
                    loss = calc_loss_batch(input_batch, target_batch, model, self.device)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                self.tokens_seen += input_batch.numel()
                self.global_step += 1
                self.step_in_epoch += 1
                if self.global_step % self.eval_freq == 0:
                    self._evaluate()
                if self.progress is not None:
                    self.progress(self.global_step + 1, total, self.tokens_seen, loss.detach())
                if self.on_step is not None:
                    self.on_step(self)
                if self.done:
                    break
            else:  # the epoch is complete
                self._sample()
                self.epoch += 1
                self.step_in_epoch = 0
                if self.on_step is not None:
                    self.on_step(self)
                continue
            self._sample()  # stopped by max_steps: a sample of where it got to
            break
        return self.train_losses, self.val_losses, self.track_tokens_seen

    def _module(self) -> nn.Module:
        # a torch.compile'd model keeps the module (and the state_dict keys) in _orig_mod
        module = getattr(self.model, "_orig_mod", self.model)
        return module if isinstance(module, nn.Module) else self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue the run: model, optimizer, position, history and RNG."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": self._module().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "position": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "tokens_seen": self.tokens_seen,
            },
            "history": {
                "train_losses": list(self.train_losses),
                "val_losses": list(self.val_losses),
                "track_tokens_seen": list(self.track_tokens_seen),
            },
            "rng": rng,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues from :meth:`state_dict`'s ``state``."""
        self._module().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        position = state["position"]
        self.epoch = int(position["epoch"])
        self.step_in_epoch = int(position["step_in_epoch"])
        self.global_step = int(position["global_step"])
        self.tokens_seen = int(position["tokens_seen"])
        history = state["history"]
        self.train_losses = [float(v) for v in history["train_losses"]]
        self.val_losses = [float(v) for v in history["val_losses"]]
        self.track_tokens_seen = [int(v) for v in history["track_tokens_seen"]]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def train_model_simple(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
    start_context: str,
    tokenizer: Any,
) -> tuple[list[float], list[float], list[int]]:
    """The book's ``train_model_simple`` (section 5.2): ``num_epochs`` passes over
    ``train_loader``, one optimizer step per batch; every ``eval_freq`` steps the train and
    validation losses over ``eval_iter`` batches are printed and recorded, and after each epoch
    a sample continuing ``start_context`` is printed. Returns ``(train_losses, val_losses,
    track_tokens_seen)``.

    The loaders may be the book's ``DataLoader`` or :class:`TokenBatches`; :class:`Trainer`
    is the same loop with checkpoints, a step limit and a progress callback.

    >>> import numpy as np, torch, fastllm
    >>> from fastllm.data import WindowDataset
    >>> from fastllm.nn import GPTModel, GPT_CONFIGS
    >>> _ = torch.manual_seed(123)
    >>> cfg = {**GPT_CONFIGS["tiny"], "context_length": 8, "emb_dim": 16, "n_layers": 1}
    >>> model = GPTModel(cfg)
    >>> tokens = np.array(fastllm.get_encoding("gpt2").encode("Every effort moves you. " * 20))
    >>> loader = TokenBatches(WindowDataset(tokens, 8, 8), batch_size=2)
    >>> optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    >>> train, val, seen = train_model_simple(model, loader, loader, optimizer, "cpu",
    ...     num_epochs=1, eval_freq=5, eval_iter=1, start_context="Every",
    ...     tokenizer=fastllm.get_encoding("gpt2"))  # doctest: +ELLIPSIS
    Ep 1 (Step 000000): Train loss ..., Val loss ...
    Ep 1 (Step 000005): Train loss ..., Val loss ...
    Every...
    >>> seen
    [16, 96]
    """
    return Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        device,
        num_epochs,
        eval_freq,
        eval_iter,
        start_context,
        tokenizer,
    ).run()


def plot_losses(
    epochs_seen: Any,
    tokens_seen: Any,
    train_losses: list[float],
    val_losses: list[float],
    path: PathLike | None = None,
) -> Figure:
    """The book's loss plot (section 5.2): training and validation loss against epochs, with
    the tokens seen on a second x-axis; saved to ``path`` (a PNG) when given. Needs matplotlib.

    >>> fig = plot_losses([0, 0.5, 1], [0, 10, 20], [9.0, 7.0, 6.0], [9.5, 7.5, 6.8])
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['Training loss', 'Validation loss']
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ImportError(
            "plot_losses needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install fastllm[plot])"
        ) from exc
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax1 = fig.add_subplot()
    epochs = [float(e) for e in epochs_seen]
    ax1.plot(epochs, train_losses, label="Training loss")
    ax1.plot(epochs, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax1.twiny()  # a second x-axis for the tokens seen
    ax2.plot([int(t) for t in tokens_seen], train_losses, alpha=0)  # aligns the ticks
    ax2.set_xlabel("Tokens seen")
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


# --------------------------------------------------------------------------------------------
# pretrain: the loop on token files, with checkpoints
# --------------------------------------------------------------------------------------------


def make_optimizer(
    model: nn.Module, *, lr: float = 4e-4, weight_decay: float = 0.1
) -> torch.optim.AdamW:
    """The book's ``torch.optim.AdamW(model.parameters(), lr, weight_decay)``, as
    :func:`pretrain` builds it: the fused implementation (one kernel per tensor, no temporary
    tensors; the same update to float tolerance) when the parameters are float tensors on the
    CPU or CUDA, else the default one.

    >>> import torch
    >>> make_optimizer(torch.nn.Linear(2, 2)).defaults["fused"]
    True
    """
    params = list(model.parameters())
    fused = bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA when torch sees a GPU, else the CPU; otherwise ``device``,
    checked: asking for CUDA on a machine without it is a ``ValueError`` saying what to do.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a torch device ({error})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda
            why = (
                f"this torch is built with CUDA {build} but sees no GPU (driver, "
                "CUDA_VISIBLE_DEVICES?)"
                if build
                else "this torch is a CPU-only build"
            )
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available: {why}; use "
                "--device cpu (or auto), or install a CUDA build of torch on a machine with a GPU"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: torch sees {torch.cuda.device_count()} GPU(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
    return resolved


def resolve_config(config: str | Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A configuration by name (a key of :data:`fastllm.nn.GPT_CONFIGS`) or as a dict, with
    ``overrides`` (``None`` values ignored), checked.

    >>> resolve_config("tiny", context_length=64)["context_length"]
    64
    >>> resolve_config("huge")
    Traceback (most recent call last):
    ...
    ValueError: unknown configuration 'huge'; known: 124M, 355M, 774M, 1558M, small, tiny
    """
    if isinstance(config, str):
        if config not in GPT_CONFIGS:
            raise ValueError(f"unknown configuration {config!r}; known: {', '.join(GPT_CONFIGS)}")
        base = dict(GPT_CONFIGS[config])
    else:
        base = dict(config)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return check_config(base)


def _recorded_encoding(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    encoding = meta.get("encoding")
    return encoding if isinstance(encoding, dict) else None


def _data_encoding(
    meta: Mapping[str, Any] | None, encoding: str | Encoding | None, train: Any
) -> Encoding | None:
    """The encoding of the samples: ``encoding``, else the one the data was tokenized with."""
    from fastllm.registry import get_encoding, list_encoding_names, load_encoding

    recorded = _recorded_encoding(meta)
    if encoding is None:
        name = recorded.get("name") if recorded else None
        if isinstance(name, str) and name in list_encoding_names():
            return get_encoding(name)
        return None if recorded else get_encoding("gpt2")
    enc = load_encoding(encoding) if isinstance(encoding, (str, os.PathLike)) else encoding
    if recorded is not None and recorded.get("vocab_sha256"):
        from fastllm.tokenfile import _corpus_encoder

        given = _corpus_encoder(enc).vocab_sha256
        if given != recorded["vocab_sha256"]:
            raise ValueError(
                f"{train} was tokenized with {recorded.get('name')!r}, not with {enc.name!r} "
                "(the vocabulary checksums differ): pass the encoding it was tokenized with, "
                "or tokenize it again"
            )
    return enc


def _check_vocabulary(
    cfg: Mapping[str, Any],
    meta: Mapping[str, Any] | None,
    enc: Encoding | None,
    train: Any,
    datasets: Iterable[Any],
) -> None:
    recorded = _recorded_encoding(meta)
    n_vocab = None
    name = None
    if recorded is not None:
        n_vocab = recorded.get("n_vocab")
        name = recorded.get("name")
    if n_vocab is None and enc is not None:
        n_vocab, name = enc.n_vocab, enc.name
    if n_vocab is None:  # a raw file: the largest id decides
        largest = max(
            int(np.max(p)) if len(p) else 0
            for d in datasets
            for p in (d.parts if isinstance(d, TokenFileDataset) else [d.inputs, d.targets])
        )
        if largest >= cfg["vocab_size"]:
            raise ValueError(
                f"{train} holds token id {largest:,} but the config's vocab_size is "
                f"{cfg['vocab_size']:,}: pass --vocab-size {largest + 1} (or more)"
            )
        return
    if int(n_vocab) > cfg["vocab_size"]:
        raise ValueError(
            f"{train} was tokenized with {name!r} ({int(n_vocab):,} tokens) but the config's "
            f"vocab_size is {cfg['vocab_size']:,}: its ids would index past the embedding; pass "
            f"--vocab-size {int(n_vocab)} (vocab_size={int(n_vocab)}), or tokenize with an "
            f"encoding of at most {cfg['vocab_size']:,} tokens"
        )


def _describe(dataset: Any) -> dict[str, Any]:
    return {"windows": len(dataset), "tokens": _token_count(dataset)}


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """A checkpoint written by :func:`pretrain`, checked; ``ValueError`` when it is damaged
    or not a fastllm checkpoint (with what to do).

    >>> import pathlib, tempfile
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> load_checkpoint(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...run.pt is not a readable fastllm checkpoint (...): it is damaged ...
    """
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(
            f"{os.fspath(path)} is not a readable fastllm checkpoint ({type(error).__name__}: "
            f"{str(error)[:200]}): it is damaged (a copy cut short?) or another kind of file; "
            "delete it to start over, or pass another --checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{os.fspath(path)} is not a fastllm pretraining checkpoint (no {CHECKPOINT_FORMAT!r}"
            " format field); pass the file fastllm pretrain --checkpoint wrote"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{os.fspath(path)}: checkpoint version {state.get('version')!r}, this fastllm "
            f"reads version {CHECKPOINT_VERSION}"
        )
    missing = [
        k for k in ("model", "optimizer", "position", "history", "rng", "run") if k not in state
    ]
    if missing:
        raise ValueError(f"{os.fspath(path)}: the checkpoint misses {', '.join(missing)}")
    return state


def _save_atomically(state: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save(dict(state), tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fingerprint(dataset: Any) -> str:
    """Cheap identity of the data: window and token counts plus the first and last window."""
    digest = hashlib.sha256(repr(_describe(dataset)).encode())
    if len(dataset):
        for i in (0, len(dataset) - 1):
            digest.update(dataset[i][0].numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns: the trained model, the book's loss history, and figures
    of the run (``seconds`` and ``tokens_per_second`` count this call's steps only)."""

    model: GPTModel
    config: dict[str, Any]
    train_losses: list[float]
    val_losses: list[float]
    tokens_seen: list[int]
    samples: list[str]
    steps: int
    epochs_seen: float
    tokens_trained: int
    seconds: float
    tokens_per_second: float
    device: torch.device
    resumed_from_step: int | None = None
    checkpoint: Path | None = None
    plot: Path | None = None


def pretrain(
    train: PathLike | list[PathLike],
    *,
    val: PathLike | list[PathLike] | None = None,
    config: str | Mapping[str, Any] = "tiny",
    context_length: int | None = None,
    vocab_size: int | None = None,
    batch_size: int = 8,
    num_epochs: int = 1,
    max_steps: int | None = None,
    lr: float = 4e-4,
    weight_decay: float = 0.1,
    eval_freq: int = 5,
    eval_iter: int = 5,
    start_context: str = "Every effort moves you",
    encoding: str | Encoding | None = None,
    device: str | torch.device | None = "auto",
    bf16: bool = False,
    seed: int = 123,
    dtype: Any = None,
    checkpoint: PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    plot: PathLike | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = print,
    compile: bool = False,
    threads: int | None = None,
) -> PretrainResult:
    """Pretrains a :class:`fastllm.nn.GPTModel` on a token file with the book's loop.

    ``train`` (and ``val``) as :func:`open_token_data` takes them; ``config`` a name of
    :data:`fastllm.nn.GPT_CONFIGS` or a dict, with ``context_length`` / ``vocab_size``
    overriding it. The vocabulary the data was tokenized with must fit ``vocab_size``
    (``ValueError`` otherwise); samples are decoded with it (or with ``encoding``, checked
    against the sidecar's checksum). AdamW with ``lr`` and ``weight_decay`` as in the book;
    batches in a random order seeded by ``seed`` (which also seeds the model's
    initialization). ``device`` ``"auto"`` is CUDA when present, else the CPU; ``bf16`` runs
    the forward pass under bfloat16 autocast. ``threads`` sets torch's intra-op threads for
    the run (``torch.set_num_threads``; on a busy machine one thread is much faster for a tiny
    model than several fighting for cores).

    With ``checkpoint`` the run is saved there every ``checkpoint_every`` steps and at each
    epoch's end, and when the file exists (and ``resume``) the run continues from it: the
    same arguments give the same losses as a run that was never stopped. ``plot`` saves the
    loss curve as a PNG (needs matplotlib).

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "raw.bin"
    >>> np.tile(np.arange(20, dtype=np.uint16), 50).tofile(path)
    >>> result = pretrain(path, dtype=np.uint16, vocab_size=20, context_length=16,
    ...                   num_epochs=5, max_steps=30, lr=1e-2, eval_freq=10,
    ...                   start_context="", log=None, threads=1)
    >>> result.steps, result.val_losses[-1] < 1.0  # a cycle of 20 ids is learned at once
    (30, True)
    """
    if threads is None:
        return _pretrain(**locals())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _pretrain(**locals())
    finally:
        torch.set_num_threads(before)


def _pretrain(
    train: PathLike | list[PathLike],
    *,
    val: PathLike | list[PathLike] | None,
    config: str | Mapping[str, Any],
    context_length: int | None,
    vocab_size: int | None,
    batch_size: int,
    num_epochs: int,
    max_steps: int | None,
    lr: float,
    weight_decay: float,
    eval_freq: int,
    eval_iter: int,
    start_context: str,
    encoding: str | Encoding | None,
    device: str | torch.device | None,
    bf16: bool,
    seed: int,
    dtype: Any,
    checkpoint: PathLike | None,
    checkpoint_every: int | None,
    resume: bool,
    plot: PathLike | None,
    progress: Progress | None,
    log: Callable[[str], None] | None,
    compile: bool,
    **_: Any,
) -> PretrainResult:
    say: Callable[[str], None] = log if log is not None else (lambda message: None)
    cfg = resolve_config(config, context_length=context_length, vocab_size=vocab_size)
    dev = resolve_device(device)
    train_data, val_data, meta = open_token_data(train, val, cfg["context_length"], dtype=dtype)
    for what, data in (("the training set", train_data), ("the validation set", val_data)):
        need = batch_size if what == "the training set" else 1
        if len(data) < need:
            raise ValueError(
                _window_count_error(
                    f"{train if what == 'the training set' else (val or train)} ({what})",
                    _token_count(data) if len(data) else _raw_tokens(data),
                    cfg["context_length"],
                    need,
                )
            )
    enc = _data_encoding(meta, encoding, train)
    _check_vocabulary(
        cfg, meta, enc if encoding is not None else None, train, (train_data, val_data)
    )

    torch.manual_seed(seed)
    # the ids were checked against vocab_size with the data; the per-batch check reads a value
    # back (a CUDA sync, a torch.compile graph break), so it runs on a plain CPU run only
    model = GPTModel(cfg, check_token_ids=dev.type == "cpu" and not compile)
    model.to(dev)
    optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay)
    train_loader = TokenBatches(train_data, batch_size, seed=seed, device=dev)
    val_loader = TokenBatches(val_data, batch_size, shuffle=False, drop_last=False, device=dev)
    run = {
        "config": cfg,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "eval_freq": eval_freq,
        "eval_iter": eval_iter,
        "train": _fingerprint(train_data),
        "val": _fingerprint(val_data),
    }
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        dev,
        num_epochs,
        eval_freq,
        eval_iter,
        start_context,
        enc,
        max_steps=max_steps,
        autocast=torch.bfloat16 if bf16 else None,
        progress=progress,
        log=say,
    )
    checkpoint_path = None if checkpoint is None else Path(os.fspath(checkpoint))
    resumed = None
    if checkpoint_path is not None and resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        _check_same_run(checkpoint_path, state["run"], run)
        trainer.load_state_dict(state)
        resumed = trainer.global_step + 1
        say(f"resumed    {checkpoint_path} at step {resumed:,} (epoch {trainer.epoch + 1})")
    if checkpoint_path is not None:
        every = checkpoint_every
        last_saved = [trainer.global_step]

        def save(t: Trainer) -> None:
            at_epoch_end = t.step_in_epoch == 0
            step = t.global_step + 1
            if at_epoch_end or t.done or (every and step % every == 0):
                if last_saved[0] == t.global_step and not at_epoch_end:
                    return
                state = t.state_dict()
                state["run"] = run
                _save_atomically(state, checkpoint_path)
                last_saved[0] = t.global_step

        trainer.on_step = save
    if compile:
        trainer.model = torch.compile(model)  # type: ignore[assignment]
    steps_before = trainer.global_step + 1
    tokens_before = trainer.tokens_seen
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    steps = trainer.global_step + 1
    per_epoch = max(len(train_loader), 1)
    epochs_seen = steps / per_epoch
    plot_path = None
    if plot is not None and trainer.train_losses:
        plot_path = Path(os.fspath(plot))
        n = len(trainer.train_losses)
        epochs_axis = [epochs_seen * i / max(n - 1, 1) for i in range(n)]
        plot_losses(
            epochs_axis,
            trainer.track_tokens_seen,
            trainer.train_losses,
            trainer.val_losses,
            plot_path,
        )
    trained = trainer.tokens_seen - tokens_before
    return PretrainResult(
        model=model,
        config=cfg,
        train_losses=trainer.train_losses,
        val_losses=trainer.val_losses,
        tokens_seen=trainer.track_tokens_seen,
        samples=trainer.samples,
        steps=steps,
        epochs_seen=epochs_seen,
        tokens_trained=trained,
        seconds=seconds,
        tokens_per_second=trained / seconds if seconds > 0 and steps > steps_before else 0.0,
        device=dev,
        resumed_from_step=resumed,
        checkpoint=checkpoint_path,
        plot=plot_path,
    )


def _raw_tokens(dataset: Any) -> int:
    if isinstance(dataset, TokenFileDataset):
        return sum(len(p) for p in dataset.parts)
    base = getattr(dataset.inputs, "base", None)
    return len(base) if base is not None and getattr(base, "ndim", 0) == 1 else 0


def _check_same_run(path: Path, saved: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    differ = [k for k in run if saved.get(k) != run[k]]
    if differ:
        shown = "; ".join(f"{k}: {saved.get(k)!r} then, {run[k]!r} now" for k in differ)
        raise ValueError(
            f"{path} was written by a different run ({shown[:600]}): resume with the same "
            "data and settings, or pass another --checkpoint (or --no-resume) to start over"
        )
