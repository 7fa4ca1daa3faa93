"""Train your own byte-level BPE vocabulary (in Rust), save and load it, and watch it work.

- :func:`train_bpe` learns a vocabulary from texts or files and returns a
  :class:`fastllm.Encoding`, which encodes at full speed and token for token like tiktoken.
- :func:`save_encoding` / :func:`load_encoding` write and read a ``.tiktoken`` rank file (which
  ``tiktoken.load.load_tiktoken_bpe`` reads too) plus a JSON sidecar with the pattern and special
  tokens.
- :func:`explain` shows, for learners, how a text is cut into pieces and how each piece is merged
  step by step into tokens.

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
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Union

from fastllm import _fastllm
from fastllm.core import Encoding, _fix_surrogates, resolve_pattern

__all__ = [
    "Explanation",
    "PieceExplanation",
    "TrainStats",
    "explain",
    "load_encoding",
    "save_encoding",
    "train_bpe",
]

#: Texts are handed to Rust in batches of about this many characters (or this many texts).
BATCH_CHARS = 8_000_000
BATCH_TEXTS = 100_000

ProgressCallback = Callable[[int, int], object]
TextOrPath = Union[str, "os.PathLike[str]"]

_SIDECAR_FORMAT = "fastllm.Encoding"
_SIDECAR_VERSION = 1


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
        # As tiktoken: lone surrogates cannot be UTF-8 encoded; they become U+FFFD.
        trainer.add_texts([_fix_surrogates(t) for t in batch])


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


# ---- save / load ----


def _write_atomically(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sidecar_path(path: str | os.PathLike[str]) -> str:
    """The JSON sidecar of a saved encoding: the rank file's path plus ``.json``.

    >>> sidecar_path("tok.tiktoken")
    'tok.tiktoken.json'
    """
    return os.fspath(path) + ".json"


def save_encoding(enc: Encoding, path: str | os.PathLike[str]) -> None:
    """Saves ``enc`` as a ``.tiktoken`` rank file at ``path`` plus a JSON sidecar ``path.json``.

    The rank file is tiktoken's format (``base64-token rank`` per line), so
    ``tiktoken.load.load_tiktoken_bpe(path)`` reads it. The sidecar holds what the ranks do not:
    the name, the pattern, the special tokens, and the rank file's sha256 (checked on load).
    Both files are written atomically.

    >>> import os, tempfile, fastllm
    >>> enc = fastllm.train.train_bpe(["hello hello"], 260)
    >>> path = os.path.join(tempfile.mkdtemp(), "tok.tiktoken")
    >>> save_encoding(enc, path)
    >>> load_encoding(path).encode("hello") == enc.encode("hello")
    True
    """
    path = os.fspath(path)
    data = enc._core_bpe.tiktoken_bytes()
    specials = dict(sorted(enc._special_tokens.items(), key=lambda item: item[1]))
    meta: dict[str, Any] = {
        "format": _SIDECAR_FORMAT,
        "version": _SIDECAR_VERSION,
        "name": enc.name,
        "pat_str": enc._pat_str,
        "special_tokens": specials,
        "n_vocab": enc.n_vocab,
        "ranks_file": os.path.basename(path),
        "ranks_sha256": hashlib.sha256(data).hexdigest(),
    }
    _write_atomically(path, data)
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    _write_atomically(sidecar_path(path), text.encode("utf-8"))


def _field(meta: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind):
        raise ValueError(
            f"{where}: field {key!r} is {value!r:.60}, expected a {kind.__name__}; the sidecar "
            "is damaged or was not written by fastllm.save_encoding"
        )
    return value


def load_encoding(path: str | os.PathLike[str], *, name: str | None = None) -> Encoding:
    """Loads an encoding written by :func:`save_encoding` (the rank file and its sidecar).

    The rank file's sha256 must match the sidecar's (``ValueError`` otherwise). ``name``
    overrides the saved name.

    >>> import fastllm
    >>> load_encoding("missing.tiktoken")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: 'missing.tiktoken.json' (the sidecar ...
    """
    path = os.fspath(path)
    sidecar = sidecar_path(path)
    try:
        with open(sidecar, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(
            e.errno,
            f"{e.strerror}: {sidecar!r} (the sidecar that save_encoding writes next to {path!r}; "
            "for a bare .tiktoken file use "
            "Encoding.from_tiktoken_file(path, pat_str=..., special_tokens=...))",
        ) from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{sidecar}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _SIDECAR_FORMAT:
        raise ValueError(
            f"{sidecar}: not a fastllm encoding sidecar (no 'format': {_SIDECAR_FORMAT!r})"
        )
    version = meta.get("version")
    if version != _SIDECAR_VERSION:
        raise ValueError(
            f"{sidecar}: version {version!r} is not supported (this fastllm reads version "
            f"{_SIDECAR_VERSION}); upgrade fastllm"
        )
    pat_str = _field(meta, "pat_str", str, sidecar)
    sha256 = _field(meta, "ranks_sha256", str, sidecar)
    specials = _field(meta, "special_tokens", dict, sidecar)
    for token, rank in specials.items():
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise ValueError(f"{sidecar}: special token {token!r} has id {rank!r}, not an int")
    saved_name = _field(meta, "name", str, sidecar)
    core = _fastllm.CoreBPE.from_tiktoken_file(path, specials, pat_str, sha256)
    return Encoding._from_core(saved_name if name is None else name, core)


# ---- the teaching view ----


def _show(part: bytes) -> str:
    """A token's bytes for display: text, with space as ␣ and invisible bytes escaped."""
    text = part.decode("utf-8", errors="backslashreplace")
    out = []
    for char in text:
        if char == " ":
            out.append("␣")
        elif char == "\\" or char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class PieceExplanation:
    """One pre-token piece: its parts before the first merge and after each merge."""

    #: The piece's text.
    piece: str
    #: Whether the piece is a special token (encoded as its id, not merged).
    special: bool
    #: ``steps[0]`` is the piece's single bytes; ``steps[k]`` the parts after merge ``k``.
    steps: tuple[tuple[bytes, ...], ...]
    #: The token made by each merge, with its rank (``len(steps) - 1`` of them).
    merges: tuple[tuple[bytes, int], ...]
    #: The final token ids.
    ids: tuple[int, ...]

    def __str__(self) -> str:
        count = f"{len(self.ids)} token{'s' if len(self.ids) != 1 else ''}"
        head = f"{self.piece!r} -> {count} {list(self.ids)}"
        if self.special:
            return f"{head}  (special token)"
        lines = [head]
        rows = [" · ".join(_show(p) for p in parts) for parts in self.steps]
        width = max(len(r) for r in rows)
        for k, row in enumerate(rows):
            if k == 0:
                note = "bytes"
            else:
                made, rank = self.merges[k - 1]
                note = f"merge -> {_show(made)} (rank {rank})"
            lines.append(f"  {k:>3}  {row:<{width}}   {note}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """How an encoding turns a text into tokens: pieces, then merges within each piece."""

    text: str
    pieces: tuple[PieceExplanation, ...]

    @property
    def ids(self) -> list[int]:
        """All token ids, as ``enc.encode(text, allowed_special="all")`` gives them."""
        return [i for piece in self.pieces for i in piece.ids]

    def __str__(self) -> str:
        n = len(self.ids)
        head = f"{len(self.pieces)} pieces, {n} token{'s' if n != 1 else ''}"
        return "\n".join([head, *(str(p) for p in self.pieces)])


def _merge_steps(
    piece: bytes, ranks: dict[bytes, int]
) -> tuple[tuple[tuple[bytes, ...], ...], tuple[tuple[bytes, int], ...]]:
    """tiktoken's merge order: repeatedly merge the adjacent pair whose bytes rank lowest."""
    parts = [bytes([b]) for b in piece]
    steps = [tuple(parts)]
    made: list[tuple[bytes, int]] = []
    while len(parts) > 1:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        rank, i = best
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
        steps.append(tuple(parts))
        made.append((parts[i], rank))
    return tuple(steps), tuple(made)


def explain(enc: Encoding, text: str) -> Explanation:
    """The book's teaching view: each pre-token piece of ``text`` and its merge steps.

    Special tokens are recognised (as ``encode(text, allowed_special="all")``), and the ids are
    the ones ``encode`` gives. ``str()`` of the result is a readable table.

    >>> import fastllm
    >>> print(explain(fastllm.get_encoding("gpt2"), "Hello world"))
    2 pieces, 2 tokens
    'Hello' -> 1 token [15496]
        0  H · e · l · l · o   bytes
        1  H · e · ll · o      merge -> ll (rank 297)
        2  H · ell · o         merge -> ell (rank 695)
        3  H · ello            merge -> ello (rank 11109)
        4  Hello               merge -> Hello (rank 15496)
    ' world' -> 1 token [995]
        0  ␣ · w · o · r · l · d   bytes
        1  ␣w · o · r · l · d      merge -> ␣w (rank 266)
        2  ␣w · or · l · d         merge -> or (rank 273)
        3  ␣w · or · ld            merge -> ld (rank 335)
        4  ␣wor · ld               merge -> ␣wor (rank 476)
        5  ␣world                  merge -> ␣world (rank 995)
    """
    try:
        pieces = _fastllm.split_pieces(enc._pat_str, text, list(enc._special_tokens))
    except UnicodeEncodeError:
        text = _fix_surrogates(text)
        pieces = _fastllm.split_pieces(enc._pat_str, text, list(enc._special_tokens))
    ranks = enc._mergeable_ranks
    out = []
    for piece, special in pieces:
        if special:
            out.append(PieceExplanation(piece, True, (), (), (enc._special_tokens[piece],)))
            continue
        steps, made = _merge_steps(piece.encode("utf-8"), ranks)
        ids = tuple(ranks[p] for p in steps[-1])
        out.append(PieceExplanation(piece, False, steps, made, ids))
    return Explanation(text, tuple(out))
