"""Train your own byte-level BPE vocabulary (in Rust).

:func:`train_bpe` learns a vocabulary from texts or files and returns a :class:`fastllm.Encoding`,
which encodes at full speed and token for token like tiktoken. Save it with
:meth:`fastllm.Encoding.save` (a ``.tiktoken`` rank file that ``tiktoken.load.load_tiktoken_bpe``
reads too, plus a JSON sidecar), and watch it work with :meth:`fastllm.Encoding.explain`.

The rule is classic byte-level BPE (as in GPT-2 and minbpe) with a fixed tie-break. Ranks 0-255
are the single bytes, in byte order. Each step merges the most frequent adjacent pair of tokens,
counted over the pre-tokenized pieces (overlapping pairs count: ``a a a`` holds ``(a, a)``
twice); **ties go to the pair with the smallest (left id, right id)**. The merge is applied left
to right in every piece. Special tokens in the training text separate documents: they are cut out
before pre-tokenization (as ``encode(text, allowed_special="all")`` would) and get the ids after
the learned tokens.

>>> import fastllm
>>> enc = fastllm.train.train_bpe(["low lower lowest"] * 10, 260, special_tokens=())
>>> [enc.decode([i]) for i in range(256, 260)]
['lo', 'low', ' low', ' lowe']
>>> enc.encode("lowest")
[257, 101, 115, 116]
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Union

from fastllm import _fastllm
from fastllm._pretok import fix_surrogates, resolve_pattern
from fastllm._sidecar import sidecar_path
from fastllm.encoding import Encoding
from fastllm.explain import Explanation, PieceExplanation

__all__ = [
    "Explanation",
    "PieceExplanation",
    "TrainStats",
    "explain",
    "load_encoding",
    "save_encoding",
    "sidecar_path",
    "train_bpe",
    "train_with_stats",
]

#: Texts are handed to Rust in batches of about this many characters (or this many texts).
BATCH_CHARS = 8_000_000
BATCH_TEXTS = 100_000

ProgressCallback = Callable[[int, int], object]
TextOrPath = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What :func:`train_bpe` saw and did (``fastllm train-bpe`` prints it)."""

    #: Texts and files read (a file counts as one text).
    texts: int
    #: Bytes of text, special tokens excluded.
    bytes: int
    #: Distinct pre-token pieces of two bytes or more.
    unique_pieces: int
    #: Tokens learned by merging (the vocabulary less 256 bytes and the special tokens).
    learned: int
    #: Merge steps (equal to ``learned``: under this rule no two merges make the same bytes).
    steps: int


def _add_batch(trainer: _fastllm.BpeTrainer, batch: list[str]) -> None:
    try:
        trainer.add_texts(batch)
    except UnicodeEncodeError:
        trainer.add_texts([fix_surrogates(t) for t in batch])


def _feed(
    trainer: _fastllm.BpeTrainer,
    texts: Iterable[TextOrPath] | TextOrPath,
    file_progress: ProgressCallback | None = None,
) -> None:
    """Streams ``texts`` into ``trainer``: strings in batches, paths read by Rust."""
    if isinstance(texts, (str, os.PathLike)):
        texts = [texts]
    batch: list[str] = []
    chars = 0
    paths: list[str] = []
    for index, item in enumerate(texts):
        if isinstance(item, str):
            batch.append(item)
            chars += len(item)
            if chars >= BATCH_CHARS or len(batch) >= BATCH_TEXTS:
                _add_batch(trainer, batch)
                batch, chars = [], 0
        elif isinstance(item, os.PathLike):
            paths.append(os.fspath(item))
        else:
            raise TypeError(
                f"texts must be strings or os.PathLike file paths, but item {index} is "
                f"{type(item).__name__} ({item!r:.60}); decode bytes first, or wrap a path "
                "string in pathlib.Path"
            )
    if batch:
        _add_batch(trainer, batch)
    if paths:
        trainer.add_files(paths, file_progress)


def train_with_stats(
    texts: Iterable[TextOrPath] | TextOrPath,
    vocab_size: int,
    *,
    pat_str: str = "gpt2",
    special_tokens: Iterable[str] = ("<|endoftext|>",),
    name: str = "trained",
    num_threads: int = 0,
    progress: ProgressCallback | None = None,
    file_progress: ProgressCallback | None = None,
) -> tuple[Encoding, TrainStats]:
    """:func:`train_bpe`, also returning what training saw and did.

    ``file_progress(files done, bytes counted)`` is called as files are read (after each ~64 MB).

    >>> enc, stats = train_with_stats(["aaab"], 258, special_tokens=())
    >>> stats
    TrainStats(texts=1, bytes=4, unique_pieces=1, learned=2, steps=2)
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if isinstance(special_tokens, str):
        special_tokens = (special_tokens,)
    specials = list(special_tokens)
    for token in specials:
        if not isinstance(token, str):
            raise TypeError(f"special tokens must be str, got {token!r} ({type(token).__name__})")
    if vocab_size < 0:
        raise ValueError(f"vocab_size={vocab_size} is negative")
    trainer = _fastllm.BpeTrainer(vocab_size, resolve_pattern(pat_str), specials, num_threads)
    _feed(trainer, texts, file_progress)
    tokens, steps = trainer.train(progress)
    n_texts, n_bytes, unique = trainer.stats()
    ranks = {token: rank for rank, token in enumerate(tokens)}
    special_ids = {token: len(tokens) + i for i, token in enumerate(specials)}
    core = _fastllm.CoreBPE(ranks, special_ids, trainer.pattern)
    enc = Encoding._from_core(name, core)
    if enc.n_vocab < vocab_size:
        warnings.warn(
            f"the corpus ran out of pairs to merge: the vocabulary has {enc.n_vocab} tokens, "
            f"not vocab_size={vocab_size}; train on more text for a larger vocabulary",
            RuntimeWarning,
            stacklevel=3,
        )
    stats = TrainStats(n_texts, n_bytes, unique, len(tokens) - 256, steps)
    return enc, stats


def train_bpe(
    texts: Iterable[TextOrPath] | TextOrPath,
    vocab_size: int,
    *,
    pat_str: str = "gpt2",
    special_tokens: Iterable[str] = ("<|endoftext|>",),
    name: str = "trained",
    num_threads: int = 0,
    progress: ProgressCallback | None = None,
) -> Encoding:
    """Trains a byte-level BPE vocabulary of ``vocab_size`` tokens and returns its Encoding.

    ``texts`` is any iterable of strings (streamed to Rust in batches of a few MB, so a generator
    over a corpus that does not fit in memory works) and/or ``os.PathLike`` paths of UTF-8 text
    files (read by Rust); a single string or path is one text. ``vocab_size`` counts every token:
    the 256 bytes, the learned tokens and ``special_tokens``, whose ids come last. ``pat_str`` is
    the pre-tokenizer: ``"gpt2"`` (= ``"r50k"``), ``"cl100k"``, ``"o200k"`` or a regex.
    Counting runs on ``num_threads`` threads (0 = all allowed by :func:`fastllm.set_num_threads`)
    with the GIL released; the result does not depend on the thread count. ``progress(done,
    total)`` is called about 20 times a second while merging; an exception from it stops
    training. If the corpus runs out of pairs first, the vocabulary is smaller (a
    ``RuntimeWarning`` says so).

    Raises ``ValueError`` for a ``vocab_size`` below 256 + the number of special tokens, an empty
    corpus, a pattern that does not compile, and a special token that is also a learned token
    (only possible for a one-byte special token, since special tokens are cut out of the text).

    >>> import fastllm
    >>> enc = fastllm.train.train_bpe(["the cat sat on the mat"] * 5, 265)
    >>> enc.n_vocab, enc.eot_token
    (265, 264)
    >>> [enc.decode([t]) for t in enc.encode(" the mat")]
    [' the', ' m', 'at']
    """
    enc, _ = train_with_stats(
        texts,
        vocab_size,
        pat_str=pat_str,
        special_tokens=special_tokens,
        name=name,
        num_threads=num_threads,
        progress=progress,
    )
    return enc


# ---- kept for one release: these lived here before Encoding.save/load/explain owned them ----


def save_encoding(enc: Encoding, path: str | os.PathLike[str]) -> None:
    """:meth:`fastllm.Encoding.save` (kept here for one release).

    >>> import os, tempfile, fastllm
    >>> enc = fastllm.train.train_bpe(["hello hello"], 260)
    >>> path = os.path.join(tempfile.mkdtemp(), "tok.tiktoken")
    >>> save_encoding(enc, path)
    >>> load_encoding(path).encode("hello") == enc.encode("hello")
    True
    """
    enc.save(path)


def load_encoding(path: str | os.PathLike[str], *, name: str | None = None) -> Encoding:
    """:meth:`fastllm.Encoding.load` (kept here for one release)."""
    return Encoding.load(path, name=name)


def explain(enc: Encoding, text: str) -> Explanation:
    """:meth:`fastllm.Encoding.explain` (kept here for one release).

    >>> import fastllm
    >>> explain(fastllm.get_encoding("gpt2"), "Hello world").ids
    [15496, 995]
    """
    return enc.explain(text)
