"""The tiktoken-compatible :class:`Encoding`.

Every method has tiktoken 0.14's name, keyword arguments, defaults, return type and errors; the
work is done in Rust (``fastllm._fastllm.CoreBPE``) with the GIL released.
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Union

from fastllm import _fastllm, _sidecar
from fastllm import explain as _explain
from fastllm._pretok import fix_surrogates as _fix_surrogates
from fastllm._pretok import resolve_pattern

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from fastllm.arrow import EncodedColumn

__all__ = ["DecodeStream", "Encoding", "resolve_pattern"]

AllowedSpecial = Union[Literal["all"], AbstractSet[str]]
DisallowedSpecial = Union[Literal["all"], Collection[str]]

def _token_list(tokens: Sequence[int]) -> Sequence[int]:
    """Lists and tuples go to Rust as they are; NumPy arrays and torch tensors via ``tolist``."""
    if isinstance(tokens, (list, tuple)):
        return tokens
    tolist = getattr(tokens, "tolist", None)
    if tolist is not None:
        converted = tolist()
        if isinstance(converted, list):
            return converted
    return list(tokens)


def _token_ids(tokens: Sequence[int]) -> Sequence[int]:
    """As :func:`_token_list`, but a 1-D NumPy array of integers goes to Rust as it is (read
    there without a list of Python ints; ids that are not token ids are read through
    ``tolist`` there, for the same errors)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(tokens, np.ndarray):
        if tokens.ndim == 1 and tokens.dtype.kind in "iu":
            return tokens  # type: ignore[no-any-return]
    return _token_list(tokens)


class Encoding:
    """A byte-pair encoding, token for token identical to ``tiktoken.Encoding``.

    >>> import fastllm
    >>> enc = fastllm.get_encoding("gpt2")
    >>> enc.encode("hello world")
    [31373, 995]
    >>> enc.decode([31373, 995])
    'hello world'
    """

    name: str
    max_token_value: int
    _pat_str: str
    _special_tokens: dict[str, int]
    _core_bpe: _fastllm.CoreBPE
    #: Set by the registry on bundled encodings: they pickle as ``(get_encoding, (name,))``.
    _pickle_by_name: Callable[[str], Encoding] | None

    def __init__(
        self,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ) -> None:
        """Creates an encoding from its parts, exactly as ``tiktoken.Encoding(...)``.

        ``pat_str`` is the pre-tokenizer regex, or one of the names ``"r50k"``, ``"cl100k"``,
        ``"o200k"``.

        >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256}
        >>> enc = Encoding("toy", pat_str="r50k", mergeable_ranks=ranks, special_tokens={})
        >>> enc.encode("abc")
        [256, 99]
        """
        core = _fastllm.CoreBPE(mergeable_ranks, special_tokens, resolve_pattern(pat_str))
        self._setup(name, core, explicit_n_vocab)

    def _setup(self, name: str, core: _fastllm.CoreBPE, explicit_n_vocab: int | None) -> None:
        self.name = name
        self._core_bpe = core
        self._pat_str = core.pattern
        self._special_tokens = core.special_tokens()
        self.max_token_value = core.max_token_value
        self._pickle_by_name = None
        if explicit_n_vocab:
            n_tokens = core.n_mergeable + len(self._special_tokens)
            if n_tokens != explicit_n_vocab or self.max_token_value != explicit_n_vocab - 1:
                raise ValueError(
                    f"explicit_n_vocab={explicit_n_vocab}, but the encoding has {n_tokens} "
                    f"tokens and max_token_value={self.max_token_value}; they must equal "
                    f"explicit_n_vocab and explicit_n_vocab - 1"
                )

    @classmethod
    def _from_core(
        cls, name: str, core: _fastllm.CoreBPE, explicit_n_vocab: int | None = None
    ) -> Encoding:
        enc = cls.__new__(cls)
        enc._setup(name, core, explicit_n_vocab)
        return enc

    @classmethod
    def from_tiktoken_file(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        pat_str: str,
        special_tokens: dict[str, int] | None = None,
        explicit_n_vocab: int | None = None,
        expected_sha256: str | None = None,
    ) -> Encoding:
        """Loads a ``.tiktoken`` rank file (``base64-token rank`` per line) in one call.

        ``name`` defaults to the file name without its extension. Give ``expected_sha256`` to
        have the file checked.

        >>> enc = Encoding.from_tiktoken_file(
        ...     "o200k_base.tiktoken", pat_str="o200k",
        ...     special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        ... )  # doctest: +SKIP
        """
        path = os.fspath(path)
        if name is None:
            name = os.path.basename(path).rsplit(".", 1)[0]
        core = _fastllm.CoreBPE.from_tiktoken_file(
            path, special_tokens or {}, resolve_pattern(pat_str), expected_sha256
        )
        return cls._from_core(name, core, explicit_n_vocab)

    @classmethod
    def from_data_gym(
        cls,
        vocab_bpe_file: str | os.PathLike[str],
        encoder_json_file: str | os.PathLike[str],
        *,
        name: str,
        pat_str: str = "r50k",
        special_tokens: dict[str, int] | None = None,
        explicit_n_vocab: int | None = None,
    ) -> Encoding:
        """Loads GPT-2's original ``vocab.bpe`` + ``encoder.json`` pair.

        >>> enc = Encoding.from_data_gym(
        ...     "vocab.bpe", "encoder.json", name="gpt2",
        ...     special_tokens={"<|endoftext|>": 50256},
        ... )  # doctest: +SKIP
        """
        core = _fastllm.CoreBPE.from_data_gym(
            os.fspath(vocab_bpe_file),
            os.fspath(encoder_json_file),
            special_tokens if special_tokens is not None else {},
            resolve_pattern(pat_str),
        )
        return cls._from_core(name, core, explicit_n_vocab)

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    # ====================
    # Encoding
    # ====================

    def _special_args(
        self, text: str, allowed_special: AllowedSpecial, disallowed_special: DisallowedSpecial
    ) -> tuple[AbstractSet[str], Collection[str]]:
        """Checks, as tiktoken does, strings that are not special tokens. ``"all"`` goes to Rust
        as it is (every special token; for ``disallowed``, every one not allowed): no set of all
        the names is built per call."""
        if disallowed_special == "all":
            return allowed_special, disallowed_special  # type: ignore[return-value]
        allowed: AbstractSet[str] = allowed_special  # type: ignore[assignment]
        disallowed: Collection[str] = disallowed_special
        if disallowed and not self.special_tokens_set.issuperset(disallowed):
            # tiktoken also refuses text matching a disallowed string that is not a special
            # token; that rare case is checked here, the usual one in Rust.
            if match := _special_token_regex(frozenset(disallowed)).search(text):
                raise_disallowed_special_token(match.group())
            disallowed = ()
        return allowed, disallowed

    def encode_ordinary(self, text: str) -> list[int]:
        """Encodes a string into tokens, ignoring special tokens.

        This is equivalent to ``encode(text, disallowed_special=())`` (but slightly faster).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").encode_ordinary("hello world")
        [31373, 995]
        """
        try:
            return self._core_bpe.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._core_bpe.encode_ordinary(_fix_surrogates(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        """Encodes a string into tokens.

        Text that matches a special token raises ``ValueError`` unless the token is in
        ``allowed_special`` (then it becomes the special token's id) or is left out of
        ``disallowed_special`` (then it is encoded as ordinary text). ``"all"`` means every
        special token.

        Overlapping special tokens: the leftmost one in the text wins, and of several that start
        at the same character, the longest (with ``{"<|a": 300, "<|ab|>": 301}`` both allowed,
        ``"<|ab|>"`` is ``[301]``). This is tiktoken's result wherever no special token is a
        prefix of another at the same position; where one is, tiktoken's choice follows the
        order of its special-token regex alternation, which comes from a hash map and can
        differ between processes.

        >>> import fastllm
        >>> enc = fastllm.get_encoding("gpt2")
        >>> enc.encode("hello world")
        [31373, 995]
        >>> enc.encode("<|endoftext|>", allowed_special="all")
        [50256]
        >>> enc.encode("<|endoftext|>", disallowed_special=())
        [27, 91, 437, 1659, 5239, 91, 29]
        """
        allowed, disallowed = self._special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.encode(_fix_surrogates(text), allowed, disallowed)

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> npt.NDArray[np.uint32]:
        """Encodes a string into a writable ``uint32`` NumPy array (no Python list is built).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").encode_to_numpy("hello world")
        array([31373,   995], dtype=uint32)
        """
        allowed, disallowed = self._special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode_to_numpy(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.encode_to_numpy(_fix_surrogates(text), allowed, disallowed)

    def count_tokens(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> int:
        """The number of tokens ``encode`` would return, without building a list.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").count_tokens("hello world")
        2
        """
        allowed, disallowed = self._special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.count_tokens(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.count_tokens(_fix_surrogates(text), allowed, disallowed)

    def encode_ordinary_batch(self, text: list[str], *, num_threads: int = 8) -> list[list[int]]:
        """Encodes a list of strings in parallel (GIL released), ignoring special tokens.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").encode_ordinary_batch(["hello world", "goodbye world"])
        [[31373, 995], [11274, 16390, 995]]
        """
        try:
            return self._core_bpe.encode_ordinary_batch(text, num_threads)
        except UnicodeEncodeError:
            return self._core_bpe.encode_ordinary_batch(
                [_fix_surrogates(t) for t in text], num_threads
            )

    def _batch_special_args(
        self,
        texts: list[str],
        allowed_special: AllowedSpecial,
        disallowed_special: DisallowedSpecial,
    ) -> tuple[AbstractSet[str], Collection[str]]:
        allowed, disallowed = self._special_args("", allowed_special, disallowed_special)
        if disallowed_special != "all" and disallowed_special and not disallowed:
            # Disallowed strings that are not special tokens: checked in Python, as in encode.
            for text in texts:
                self._special_args(text, allowed_special, disallowed_special)
        return allowed, disallowed

    def encode_batch(
        self,
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[list[int]]:
        """Encodes a list of strings in parallel; see :meth:`encode` for the special tokens.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").encode_batch(["hello world", "goodbye world"])
        [[31373, 995], [11274, 16390, 995]]
        """
        allowed, disallowed = self._batch_special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode_batch(text, allowed, disallowed, num_threads)
        except UnicodeEncodeError:
            fixed = [_fix_surrogates(t) for t in text]
            return self._core_bpe.encode_batch(fixed, allowed, disallowed, num_threads)

    def encode_batch_to_numpy(
        self,
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """Encodes a list of strings in parallel into one flat ``uint32`` array and offsets.

        The tokens of ``text[i]`` are ``tokens[offsets[i]:offsets[i + 1]]``; no Python list of
        tokens is built.

        >>> import fastllm
        >>> tokens, offsets = fastllm.get_encoding("gpt2").encode_batch_to_numpy(["hi", "a b"])
        >>> tokens.tolist(), offsets.tolist()
        ([5303, 64, 275], [0, 1, 3])
        """
        allowed, disallowed = self._batch_special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode_batch_to_numpy(text, allowed, disallowed, num_threads)
        except UnicodeEncodeError:
            fixed = [_fix_surrogates(t) for t in text]
            return self._core_bpe.encode_batch_to_numpy(fixed, allowed, disallowed, num_threads)

    def encode_ordinary_batch_to_numpy(
        self, text: list[str], *, num_threads: int = 8
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """:meth:`encode_batch_to_numpy` with special tokens encoded as ordinary text.

        >>> import fastllm
        >>> enc = fastllm.get_encoding("gpt2")
        >>> enc.encode_ordinary_batch_to_numpy(["<|endoftext|>"])[0].tolist()
        [27, 91, 437, 1659, 5239, 91, 29]
        """
        return self.encode_batch_to_numpy(
            text, num_threads=num_threads, allowed_special=frozenset(), disallowed_special=()
        )

    def encode_with_unstable(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> tuple[list[int], list[list[int]]]:
        """Encodes a string into stable tokens and the token sequences that may complete them.

        The tokens of the text's last piece can change when more text follows, so they are held
        back: the stable tokens decode to a prefix of ``text``, and each completion (in token
        order here; tiktoken's order is arbitrary) continues them into bytes that start with all
        of ``text``. Special tokens as in :meth:`encode`. tiktoken calls this API unstable too.

        >>> import fastllm
        >>> enc = fastllm.get_encoding("gpt2")
        >>> stable, completions = enc.encode_with_unstable("hello fanta")
        >>> stable, [8842] in completions, [277, 4910] in completions
        ([31373], True, True)
        >>> all(enc.decode_bytes(stable + c).startswith(b"hello fanta") for c in completions)
        True
        """
        allowed, disallowed = self._special_args(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode_with_unstable(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.encode_with_unstable(_fix_surrogates(text), allowed, disallowed)

    def encode_ordinary_arrow(
        self, column: Any, *, eot: bool = False, num_threads: int | None = None
    ) -> EncodedColumn:
        """Encodes every row of an Arrow string column (pyarrow, polars, DuckDB...) without a
        Python ``str`` per row, on all cores: ``(tokens, offsets, null_count)``, NumPy, zero-copy.

        ``eot=True`` ends each document with ``<|endoftext|>``. See :mod:`fastllm.arrow`.
        """
        from fastllm import arrow

        return arrow.encode_ordinary_arrow(self, column, eot=eot, num_threads=num_threads)

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """Returns the id of the token whose text or bytes this is; ``KeyError`` if none.

        Special tokens are found too.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").encode_single_token("hello")
        31373
        """
        if isinstance(text_or_bytes, str):
            text_or_bytes = text_or_bytes.encode("utf-8")
        return self._core_bpe.encode_single_token(text_or_bytes)

    # ====================
    # Decoding
    # ====================

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """Decodes tokens into bytes.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_bytes([31373, 995])
        b'hello world'
        """
        return self._core_bpe.decode_bytes(_token_ids(tokens))

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decodes tokens into a string (invalid UTF-8 handled by ``errors``, as in tiktoken).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode([31373, 995])
        'hello world'
        """
        if errors == "replace":
            return self._core_bpe.decode_replace(_token_ids(tokens))
        return self._core_bpe.decode_bytes(_token_ids(tokens)).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token (special tokens included); ``KeyError`` if there is none.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_single_token_bytes(31373)
        b'hello'
        """
        return self._core_bpe.decode_single_token_bytes(token)

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """The bytes of each token, to see how a text was split.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_tokens_bytes([31373, 995])
        [b'hello', b' world']
        """
        return self._core_bpe.decode_tokens_bytes(_token_ids(tokens))

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """Decodes tokens and gives the character offset where each token starts.

        A token that starts inside a multi-byte character gets that character's offset. Raises
        ``UnicodeDecodeError`` if the tokens do not decode to valid UTF-8 (as tiktoken).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_with_offsets([31373, 995])
        ('hello world', [0, 5])
        """
        token_bytes = self.decode_tokens_bytes(tokens)
        offsets = []
        chars = 0
        for piece in token_bytes:
            starts_inside_char = bool(piece) and 0x80 <= piece[0] < 0xC0
            offsets.append(max(0, chars - starts_inside_char))
            chars += sum(1 for byte in piece if not 0x80 <= byte < 0xC0)
        return b"".join(token_bytes).decode("utf-8", errors="strict"), offsets

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        """Decodes a batch of token lists into strings, in parallel.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_batch([[31373], [995]])
        ['hello', ' world']
        """
        decoded = self._core_bpe.decode_bytes_batch([_token_list(t) for t in batch], num_threads)
        return [b.decode("utf-8", errors=errors) for b in decoded]

    def decode_bytes_batch(
        self, batch: Sequence[Sequence[int]], *, num_threads: int = 8
    ) -> list[bytes]:
        """Decodes a batch of token lists into bytes, in parallel.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").decode_bytes_batch([[31373], [995]])
        [b'hello', b' world']
        """
        return self._core_bpe.decode_bytes_batch([_token_list(t) for t in batch], num_threads)

    def decode_stream(self, errors: str = "replace") -> DecodeStream:
        """An incremental decoder: feed it ids one at a time, get text as soon as it is whole.

        See :class:`DecodeStream`; joined, its pieces equal :meth:`decode` of all the ids.

        >>> import fastllm
        >>> stream = fastllm.get_encoding("gpt2").decode_stream()
        >>> [stream.step(t) for t in [31373, 995]] + [stream.flush()]
        ['hello', ' world', '']
        """
        return DecodeStream(self, errors=errors)

    # ====================
    # Miscellaneous
    # ====================

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every mergeable token, sorted.

        >>> import fastllm
        >>> len(fastllm.get_encoding("gpt2").token_byte_values())
        50256
        """
        return self._core_bpe.token_byte_values()

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").eot_token
        50256
        """
        return self._special_tokens["<|endoftext|>"]

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        """The special tokens' strings.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").special_tokens_set
        {'<|endoftext|>'}
        """
        return set(self._special_tokens)

    @functools.cached_property
    def _special_token_values(self) -> frozenset[int]:
        return frozenset(self._special_tokens.values())

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is the id of a special token.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").is_special_token(50256)
        True
        """
        if not isinstance(token, int):
            raise TypeError(f"token must be an int, got {type(token).__name__}")
        return token in self._special_token_values

    @property
    def n_vocab(self) -> int:
        """``max_token_value + 1`` (tiktoken keeps it for backwards compatibility).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").n_vocab
        50257
        """
        return self.max_token_value + 1

    def save(self, path: str | os.PathLike[str]) -> None:
        """Saves as a ``.tiktoken`` rank file plus ``path + ".json"`` (pattern, special tokens,
        sha256). tiktoken's ``load_tiktoken_bpe`` reads the rank file.

        >>> import os, tempfile, fastllm
        >>> path = os.path.join(tempfile.mkdtemp(), "gpt2.tiktoken")
        >>> fastllm.get_encoding("gpt2").save(path)
        >>> fastllm.Encoding.load(path).encode("hello world")
        [31373, 995]
        """
        _sidecar.write(path, self.name, self._core_bpe)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, name: str | None = None) -> Encoding:
        """Loads an encoding written by :meth:`save`, checking the rank file's sha256.

        >>> import fastllm
        >>> fastllm.Encoding.load("missing.tiktoken")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        FileNotFoundError: ...
        """
        saved_name, core = _sidecar.read(path)
        return cls._from_core(saved_name if name is None else name, core)

    def explain(self, text: str) -> _explain.Explanation:
        """Each pre-token piece of ``text`` and its merge steps; ``print()`` it for a table.

        See :mod:`fastllm.explain` for the table.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2").explain("hello world").ids
        [31373, 995]
        """
        return _explain.explain(
            text,
            pat_str=self._pat_str,
            special_tokens=self._special_tokens,
            ranks=self._mergeable_ranks,
        )

    @functools.cached_property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        return self._core_bpe.mergeable_ranks()

    def _encode_single_piece(self, text_or_bytes: str | bytes) -> list[int]:
        if isinstance(text_or_bytes, str):
            text_or_bytes = text_or_bytes.encode("utf-8")
        return self._core_bpe.encode_single_piece(text_or_bytes)

    def _encode_only_native_bpe(self, text: str) -> list[int]:
        """Encodes a string piece by piece: pre-tokenized, then each piece merged on its own
        (tiktoken's reference path; the tokens equal :meth:`encode_ordinary`'s).

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2")._encode_only_native_bpe("hello world")
        [31373, 995]
        """
        text = _fix_surrogates(text)
        tokens: list[int] = []
        for piece, _ in _fastllm.split_pieces(self._pat_str, text, []):
            tokens.extend(self._core_bpe.encode_single_piece(piece.encode("utf-8")))
        return tokens

    def _encode_bytes(self, text: bytes) -> list[int]:
        """Encodes bytes that may not be valid UTF-8, as tiktoken does: the valid prefix as text
        (special tokens as ordinary text), then its last piece and the rest merged as one piece.

        >>> import fastllm
        >>> fastllm.get_encoding("gpt2")._encode_bytes(b"hello \\xe4\\xb8")
        [31373, 220, 10310]
        """
        return self._core_bpe.encode_bytes(bytes(text))

    # ---- pickling: by name for a bundled encoding, else by value; subclasses stay subclasses

    #: Instance attributes that pickling rebuilds rather than copies.
    _REBUILT = frozenset(
        {
            "name",
            "max_token_value",
            "_pat_str",
            "_special_tokens",
            "_core_bpe",
            "_pickle_by_name",
            "special_tokens_set",
            "_special_token_values",
            "_mergeable_ranks",
        }
    )

    def __getstate__(self) -> dict[str, Any]:
        """The encoding's parts (the ranks as ``.tiktoken`` bytes) and any attributes a subclass
        added."""
        state: dict[str, Any] = {
            "name": self.name,
            "pat_str": self._pat_str,
            "tiktoken_bytes": self._core_bpe.tiktoken_bytes(),
            "special_tokens": self._special_tokens,
        }
        extra = {k: v for k, v in self.__dict__.items() if k not in self._REBUILT}
        if extra:
            state["attributes"] = extra
        return state

    def __setstate__(self, value: object) -> None:
        """Restores what :meth:`__getstate__` gave (or a dict of tiktoken's ``Encoding``
        arguments, ``mergeable_ranks`` included)."""
        if not isinstance(value, dict):
            raise TypeError(f"cannot restore an Encoding from {type(value).__name__}")
        if "tiktoken_bytes" in value:
            core = _fastllm.CoreBPE.from_tiktoken_bytes(
                value["tiktoken_bytes"], value["special_tokens"], value["pat_str"]
            )
        else:
            core = _fastllm.CoreBPE(
                value["mergeable_ranks"], value["special_tokens"], resolve_pattern(value["pat_str"])
            )
        self._setup(value["name"], core, value.get("explicit_n_vocab"))
        self.__dict__.update(value.get("attributes", {}))

    def __reduce__(self) -> tuple[Any, ...]:
        # A bundled encoding unpickles as the registry's own object; any other as its own class.
        if self._pickle_by_name is not None and type(self) is Encoding:
            return (self._pickle_by_name, (self.name,))
        return (_new, (type(self),), self.__getstate__())


def _new(cls: type[Encoding]) -> Encoding:
    """An empty instance of ``cls`` for ``__setstate__`` to fill (unpickling)."""
    return cls.__new__(cls)


@functools.lru_cache(maxsize=128)
def _special_token_regex(tokens: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(token) for token in tokens))


def raise_disallowed_special_token(token: str) -> NoReturn:
    """Raises tiktoken's ``ValueError`` for text that matches a disallowed special token."""
    raise ValueError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


class DecodeStream:
    """Decodes token ids one at a time into text, never splitting a character (as HF
    tokenizers' ``DecodeStream``): what generation prints as it goes.

    :meth:`step` takes the next id and returns the text it completes: ``""`` while the bytes so
    far end inside a multi-byte UTF-8 character (a token may hold half of one: GPT-2 spells
    ``"日"`` as the tokens of bytes ``e6 97`` and ``a5``), the whole character once its last
    byte arrives. :meth:`flush` ends the stream and returns what is left (incomplete bytes as
    U+FFFD with ``errors="replace"``): nothing is dropped, and the pieces joined equal
    ``encoding.decode(ids, errors=errors)``. Python's incremental UTF-8 decoder does the work.

    >>> import fastllm
    >>> enc = fastllm.get_encoding("gpt2")
    >>> ids = enc.encode("日本 🙂")
    >>> stream = enc.decode_stream()
    >>> [stream.step(t) for t in ids] + [stream.flush()]
    ['', '日', '', '本', ' 🙂', '']
    >>> list(enc.decode_stream().stream(ids[:3]))  # 本's last byte never came
    ['日', '�']
    """

    def __init__(self, encoding: Encoding, errors: str = "replace") -> None:
        self.encoding = encoding
        self.errors = errors
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def step(self, token: int) -> str:
        """The text ``token`` completes (``""`` when its bytes end inside a character)."""
        piece: str = self._decoder.decode(self.encoding.decode_single_token_bytes(token))
        return piece

    def flush(self) -> str:
        """Ends the stream: the rest of the bytes decoded (``""`` when none are pending); the
        stream can then be used again from a clean state."""
        rest: str = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return rest

    def stream(self, tokens: Iterable[int]) -> Iterator[str]:
        """Yields the non-empty pieces of ``tokens`` as they complete, then the flushed rest
        (``tokens`` may be a generator: each piece comes as soon as its last id does)."""
        for token in tokens:
            piece = self.step(token)
            if piece:
                yield piece
        rest = self.flush()
        if rest:
            yield rest

    @property
    def pending(self) -> bytes:
        """The bytes of an unfinished character, waiting for the next ids."""
        buffered: bytes = self._decoder.getstate()[0]
        return buffered
