"""The book's word-level tokenizer (chapter 2: ``SimpleTokenizerV1`` and ``SimpleTokenizerV2``).

Text is split with ``re.split(r'([,.:;?_!"()\\']|--|\\s)', text)``: punctuation and ``--`` become
tokens, whitespace and empty items are dropped. The vocabulary built from a text is its sorted
unique tokens followed by the special tokens. Decoding joins tokens with spaces and removes the
space before ``, . : ; ? ! " ( ) '``. The work runs in Rust with the GIL released and gives the
same ids and strings as the book's Python code on any text.

>>> from fastllm import SimpleTokenizer
>>> tok = SimpleTokenizer.from_text("Hello, world. Is this-- a test?")
>>> tok.encode("Hello, do you like tea?")
[4, 0, 11, 11, 11, 11, 3]
>>> tok.decode(tok.encode("Hello, world."))
'Hello, world.'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

from fastllm import _fastllm
from fastllm._pretok import fix_surrogates as _fix_surrogates

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DEFAULT_SPECIAL_TOKENS", "SPLIT_PATTERN", "SimpleTokenizer"]

#: The book's splitting regex (implemented by hand in Rust, with identical results).
SPLIT_PATTERN: str = _fastllm.SIMPLE_SPLIT_PATTERN
#: The special tokens the book appends to the vocabulary (section 2.4).
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|unk|>")

_FORMAT = "fastllm.SimpleTokenizer"
_FORMAT_VERSION = 1
_UNK = "<|unk|>"

PathLike = Union[str, "os.PathLike[str]"]


class _Unset:
    def __repr__(self) -> str:
        return "<unk_token from special_tokens>"


_UNSET: Any = _Unset()


def _id_list(ids: Iterable[int]) -> Iterable[int]:
    """Lists and tuples go to Rust as they are; NumPy arrays and torch tensors via ``tolist``."""
    if isinstance(ids, (list, tuple)):
        return ids
    tolist = getattr(ids, "tolist", None)
    if tolist is not None:
        converted = tolist()
        if isinstance(converted, list):
            return converted
    return ids


class SimpleTokenizer:
    """The book's word-level tokenizer: ``SimpleTokenizerV2``, or ``V1`` with ``unk_token=None``.

    ``vocab`` maps each token to a distinct id in ``0..2**26``. With an ``unk_token`` (it must be
    in ``vocab``), an out-of-vocabulary word encodes to it, as in the book's
    ``SimpleTokenizerV2``; with ``unk_token=None`` it raises ``KeyError`` naming the word, as
    ``SimpleTokenizerV1``. Decoding an id that is not in the vocabulary raises ``KeyError``.

    Tokenizers pickle, compare equal when their vocabularies and unknown tokens are equal, and
    save to / load from JSON.

    >>> tok = SimpleTokenizer({"Hello": 0, ",": 1, "world": 2, "<|unk|>": 3})
    >>> tok.encode("Hello, big world")
    [0, 1, 3, 2]
    >>> tok.decode([0, 1, 2])
    'Hello, world'
    >>> len(tok), tok.unk_token
    (4, '<|unk|>')
    """

    __slots__ = ("_core",)

    _core: _fastllm.SimpleTokenizerCore

    def __init__(self, vocab: Mapping[str, int], *, unk_token: str | None = _UNK) -> None:
        if unk_token is not None and not isinstance(unk_token, str):
            raise TypeError(f"unk_token must be a str or None, got {unk_token!r}")
        self._core = _fastllm.SimpleTokenizerCore(dict(vocab), unk_token)

    @classmethod
    def _from_core(cls, core: _fastllm.SimpleTokenizerCore) -> SimpleTokenizer:
        tokenizer = cls.__new__(cls)
        tokenizer._core = core
        return tokenizer

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
        unk_token: str | None = _UNSET,
    ) -> SimpleTokenizer:
        """The book's vocabulary of ``text``: sorted unique tokens, then ``special_tokens``.

        ``unk_token`` defaults to ``"<|unk|>"`` when it is among ``special_tokens`` (the book's
        V2) and to ``None`` otherwise (V1: unknown words raise ``KeyError``). A special token
        that also occurs in the text keeps only its place at the end, so ids stay contiguous.
        Empty (or whitespace-only) text raises ``ValueError``.

        >>> tok = SimpleTokenizer.from_text("the cat sat on the mat.")
        >>> tok.vocab
        {'.': 0, 'cat': 1, 'mat': 2, 'on': 3, 'sat': 4, 'the': 5, '<|endoftext|>': 6, '<|unk|>': 7}
        >>> SimpleTokenizer.from_text("a b", special_tokens=()).unk_token is None
        True
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if isinstance(special_tokens, str):
            raise TypeError(
                f"special_tokens must be a collection of str, got the str {special_tokens!r}; "
                f"wrap it: special_tokens=({special_tokens!r},)"
            )
        specials = list(special_tokens)
        for token in specials:
            if not isinstance(token, str):
                raise TypeError(f"special_tokens must be str, got {token!r}")
        if unk_token is _UNSET:
            unk_token = _UNK if _UNK in specials else None
        try:
            core = _fastllm.SimpleTokenizerCore.from_text(text, specials, unk_token)
        except UnicodeEncodeError:
            fixed = _fix_surrogates(text)
            core = _fastllm.SimpleTokenizerCore.from_text(fixed, specials, unk_token)
        return cls._from_core(core)

    # ---- encoding ----

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        >>> tok = SimpleTokenizer.from_text("It's the last he painted, you know.")
        >>> tok.encode("It's the last he painted")
        [3, 0, 8, 9, 6, 4, 7]
        """
        try:
            return self._core.encode(text)
        except UnicodeEncodeError:
            # A lone surrogate is not UTF-8: read as U+FFFD (as tiktoken does), so it is an
            # unknown word like any other (the book's tokenizers look it up the same way).
            return self._core.encode(_fix_surrogates(text))

    def encode_to_numpy(self, text: str) -> npt.NDArray[np.uint32]:
        """Token ids of ``text`` as a ``uint32`` NumPy array (no Python list in between).

        >>> SimpleTokenizer.from_text("a b").encode_to_numpy("b a b")
        array([1, 0, 1], dtype=uint32)
        """
        try:
            return self._core.encode_to_numpy(text)
        except UnicodeEncodeError:
            return self._core.encode_to_numpy(_fix_surrogates(text))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: tokens joined by spaces, no space before ``, . : ; ? ! " ( ) '``.

        Accepts a list, a tuple, a NumPy array or a torch tensor of ids. As in the book, the
        space *before* an opening quote or parenthesis goes too, and the one after it stays.

        >>> tok = SimpleTokenizer.from_text('He said: "Yes (really)!"')
        >>> tok.decode(tok.encode("He said: Yes!"))
        'He said: Yes!'
        >>> tok.decode(tok.encode('He said: "Yes (really)!"'))
        'He said:" Yes( really)!"'
        """
        return self._core.decode(_id_list(ids))

    # ---- vocabulary ----

    @property
    def vocab(self) -> dict[str, int]:
        """The vocabulary, ``dict[str, int]`` in id order (a new dict on each access).

        >>> SimpleTokenizer.from_text("b a", special_tokens=()).vocab
        {'a': 0, 'b': 1}
        """
        return self._core.vocab()

    @property
    def unk_token(self) -> str | None:
        """The token unknown words become, or ``None`` (unknown words raise ``KeyError``).

        >>> SimpleTokenizer.from_text("a").unk_token
        '<|unk|>'
        """
        return self._core.unk_token

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token``, or ``None``.

        >>> SimpleTokenizer.from_text("b a").token_to_id("b")
        1
        """
        return self._core.token_to_id(token)

    def id_to_token(self, id: int) -> str | None:
        """The token of ``id``, or ``None``.

        >>> SimpleTokenizer.from_text("b a").id_to_token(0)
        'a'
        """
        return self._core.id_to_token(id)

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self._core.token_to_id(token) is not None

    def __repr__(self) -> str:
        return f"SimpleTokenizer(vocab_size={len(self)}, unk_token={self.unk_token!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimpleTokenizer):
            return NotImplemented
        return self.unk_token == other.unk_token and self.vocab == other.vocab

    __hash__ = None  # type: ignore[assignment]

    # ---- persistence ----

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.vocab, self.unk_token))

    def save(self, path: PathLike) -> None:
        """Writes the vocabulary and unknown token to a UTF-8 JSON file.

        >>> import tempfile, os
        >>> tok = SimpleTokenizer.from_text("a b")
        >>> path = os.path.join(tempfile.mkdtemp(), "tok.json")
        >>> tok.save(path)
        >>> SimpleTokenizer.load(path) == tok
        True
        """
        data = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "unk_token": self.unk_token,
            "vocab": self.vocab,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=0)
            f.write("\n")

    @classmethod
    def load(cls, path: PathLike) -> SimpleTokenizer:
        """Reads a tokenizer written by :meth:`save`, or a plain ``{token: id}`` JSON vocabulary.

        For a plain vocabulary, ``unk_token`` is ``"<|unk|>"`` when it is in it, else ``None``.

        >>> import tempfile, os, json
        >>> path = os.path.join(tempfile.mkdtemp(), "vocab.json")
        >>> with open(path, "w") as f:
        ...     json.dump({"a": 0, "b": 1}, f)
        >>> SimpleTokenizer.load(path)
        SimpleTokenizer(vocab_size=2, unk_token=None)
        """
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(
                f"{os.fspath(path)!r} is not a SimpleTokenizer file: expected a JSON object, "
                f"got {type(data).__name__}"
            )
        if data.get("format") == _FORMAT:
            version = data.get("version")
            if version != _FORMAT_VERSION:
                raise ValueError(
                    f"{os.fspath(path)!r} has SimpleTokenizer format version {version!r}; this "
                    f"fastllm reads version {_FORMAT_VERSION} (upgrade fastllm)"
                )
            vocab = data.get("vocab")
            if not isinstance(vocab, dict):
                raise ValueError(f"{os.fspath(path)!r}: 'vocab' must be a JSON object")
            return cls(vocab, unk_token=data.get("unk_token"))
        return cls(data, unk_token=_UNK if _UNK in data else None)


def _rebuild(vocab: dict[str, int], unk_token: str | None) -> SimpleTokenizer:
    return SimpleTokenizer(vocab, unk_token=unk_token)
