"""Text generation with a GPT model (chapter 4's greedy loop and chapter 5's sampling).

:func:`generate_text_simple` is the book's greedy decoding; :func:`generate` adds temperature
scaling, top-k sampling and an end-of-sequence id (section 5.3), and can print the text as it
is generated through :class:`fastllm.encoding.DecodeStream` (never half a character).
:func:`text_to_token_ids` and :func:`token_ids_to_text` are the book's two helpers.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import torch
from torch import nn

from ._checks import check_positive

if TYPE_CHECKING:
    from fastllm.encoding import DecodeStream, Encoding

__all__ = ["generate", "generate_text_simple", "text_to_token_ids", "token_ids_to_text"]


def _check_idx(idx: torch.Tensor, name: str) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(
            f"{name} expects idx of shape (batch, num_tokens), got {shape}; "
            "use idx.unsqueeze(0) for a single sequence (see text_to_token_ids)"
        )


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    """The book's greedy generation (section 4.7): ``max_new_tokens`` times, run the model on
    the last ``context_size`` ids and append the most likely next id.

    ``idx`` is ``(batch, num_tokens)``; returns ``(batch, num_tokens + max_new_tokens)``. Runs
    under ``torch.no_grad()``; call ``model.eval()`` first to turn dropout off, as the book does.

    >>> import torch
    >>> from fastllm.nn import GPTModel, GPT_CONFIGS
    >>> _ = torch.manual_seed(123)
    >>> model = GPTModel({**GPT_CONFIGS["tiny"], "vocab_size": 100}).eval()
    >>> generate_text_simple(model, torch.tensor([[1, 2, 3]]), 4, context_size=128).shape
    torch.Size([1, 7])
    """
    _check_idx(idx, "generate_text_simple")
    context_size = check_positive("context_size", context_size)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # crop to the supported context
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]  # the last position: (batch, vocab_size)
        probas = torch.softmax(logits, dim=-1)
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)  # (batch, 1)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def _stream_of(stream: Encoding | DecodeStream) -> DecodeStream:
    from fastllm.encoding import DecodeStream, Encoding

    if isinstance(stream, DecodeStream):
        return stream
    if isinstance(stream, Encoding):
        return stream.decode_stream()
    raise TypeError(f"stream must be an Encoding or a DecodeStream, got {type(stream).__name__}")


def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_size: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    *,
    stream: Encoding | DecodeStream | None = None,
    file: TextIO | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The book's ``generate`` (section 5.3): greedy, or sampled with ``temperature`` and
    ``top_k``, stopping at ``eos_id``.

    Each step keeps the ``top_k`` largest logits (the others become ``-inf``), divides by
    ``temperature`` and samples from the softmax with ``torch.multinomial`` (``temperature=0``:
    argmax, as :func:`generate_text_simple`). When every sequence's next id is ``eos_id`` the
    loop stops without appending it; in a batch, a sequence that ended earlier is padded with
    ``eos_id`` (one sequence behaves exactly as the book's).

    With ``stream`` (an :class:`fastllm.Encoding` or a
    :class:`fastllm.encoding.DecodeStream`; batch of one) the new text is written to ``file``
    (default ``sys.stdout``) as it is generated, each character once complete. ``generator``
    draws the samples (default: torch's global RNG).

    >>> import io, torch, fastllm
    >>> from fastllm.nn import GPTModel, GPT_CONFIGS
    >>> _ = torch.manual_seed(123)
    >>> model = GPTModel(GPT_CONFIGS["tiny"]).eval()
    >>> enc = fastllm.get_encoding("gpt2")
    >>> out = io.StringIO()
    >>> ids = generate(model, torch.tensor([enc.encode("Hello")]), 5, 128,
    ...                temperature=1.0, top_k=10, stream=enc, file=out)
    >>> ids.shape, out.getvalue() == enc.decode(ids[0, 1:].tolist())
    (torch.Size([1, 6]), True)
    """
    _check_idx(idx, "generate")
    context_size = check_positive("context_size", context_size)
    if top_k is not None:
        top_k = check_positive("top_k", top_k)
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    decoder = None
    if stream is not None:
        if idx.shape[0] != 1:
            raise ValueError(f"stream prints one sequence; idx holds a batch of {idx.shape[0]}")
        decoder = _stream_of(stream)
    out = sys.stdout if file is None else file
    finished = torch.zeros(idx.shape[0], 1, dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]
        if top_k is not None:
            top_logits, _ = torch.topk(logits, min(top_k, logits.shape[-1]))
            min_val = top_logits[:, -1:]
            logits = torch.where(logits < min_val, torch.tensor(-torch.inf).to(logits), logits)
        if temperature > 0.0:
            probs = torch.softmax(logits / temperature, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        if eos_id is not None:
            idx_next = torch.where(finished, torch.full_like(idx_next, eos_id), idx_next)
            finished = finished | (idx_next == eos_id)
            if bool(finished.all()):
                break
        idx = torch.cat((idx, idx_next), dim=1)
        if decoder is not None:
            _write(out, decoder.step(int(idx_next[0, 0])))
    if decoder is not None:
        _write(out, decoder.flush())
    return idx


def _write(out: TextIO, text: str) -> None:
    if text:
        out.write(text)
        out.flush()


def text_to_token_ids(text: str, tokenizer: Any) -> torch.Tensor:
    """The book's helper: ``text`` encoded (``<|endoftext|>`` allowed) as a batch of one,
    ``(1, num_tokens)``.

    >>> import fastllm
    >>> text_to_token_ids("Every effort moves you", fastllm.get_encoding("gpt2"))
    tensor([[6109, 3626, 6100,  345]])
    """
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)  # add the batch dimension


def token_ids_to_text(token_ids: torch.Tensor, tokenizer: Any) -> str:
    """The book's helper: a batch of one (or a flat sequence) of ids decoded to text.

    >>> import fastllm, torch
    >>> token_ids_to_text(torch.tensor([[6109, 3626, 6100, 345]]), fastllm.get_encoding("gpt2"))
    'Every effort moves you'
    """
    flat = token_ids.squeeze(0)  # remove the batch dimension
    text: str = tokenizer.decode(flat.tolist())
    return text
