"""The encodings bundled with fastllm (tiktoken 0.14's, offline) and the loader of any vocabulary.

- :func:`get_encoding` / :func:`list_encoding_names`: the bundled encodings by name, as in
  ``tiktoken.registry`` (also :data:`ENCODINGS`, the loaded ones, and
  :data:`ENCODING_CONSTRUCTORS`, their parts as ``tiktoken.Encoding(**constructor())`` takes them);
- :func:`load_encoding`: a bundled name, a vocabulary saved by :func:`fastllm.train_bpe` /
  :meth:`fastllm.Encoding.save` (its sidecar gives the pattern and the special tokens), or a plain
  ``.tiktoken`` rank file with its pattern and special tokens given. The ``--encoding`` option of
  the ``fastllm`` commands goes through it.

The rank files are stored zstd-compressed in ``fastllm/vocab`` and the sha256 of the
decompressed bytes is checked on every load (see ``vocab/PROVENANCE.md``). Nothing is downloaded.

Design notes (measured on the shared 2-core machine):

- Load = ``import fastllm`` + first ``get_encoding`` in a fresh process, median of 5, against
  ``import tiktoken`` + ``tiktoken.get_encoding`` reading the same file from its cache: 71-151 ms
  vs 85-195 ms for the 50k and 100k vocabularies, 338 vs 410 ms for o200k_base (table in
  ``README.md``). Most of o200k's load is the merge table (every cut of every token looked up),
  built on all allowed threads (before that: 338 vs 356 ms).
- zstd-19 instead of plain files: 6.97 MB of rank files are 2.59 MB; decompressing costs about
  2 ms for o200k. In the wheel (a deflated zip) that is 4.24 MB instead of 4.81 MB with the
  plain files; a binary form (token lengths + bytes, zstd) would be 1.61 MB, a further 1 MB.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastllm import _fastllm
from fastllm._pretok import PATTERN_NAMES, resolve_pattern
from fastllm.encoding import Encoding

__all__ = [
    "BUNDLED",
    "ENCODINGS",
    "ENCODING_CONSTRUCTORS",
    "get_encoding",
    "list_encoding_names",
    "load_encoding",
]

VOCAB_DIR = Path(__file__).parent / "vocab"

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class BundledEncoding:
    """A bundled encoding: its rank file (zstd-compressed) and what tiktoken 0.14 adds to it."""

    file: str
    #: sha256 of the decompressed rank file (tiktoken's ``expected_hash``).
    sha256: str
    pattern: str
    special_tokens: dict[str, int] = field(default_factory=dict)
    explicit_n_vocab: int | None = None

    @property
    def path(self) -> Path:
        return VOCAB_DIR / self.file


_R50K_FILE = (
    "gpt2.tiktoken.zst",
    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
)
_P50K_FILE = (
    "p50k_base.tiktoken.zst",
    "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
)
_O200K_FILE = (
    "o200k_base.tiktoken.zst",
    "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
)
_O200K_SPECIALS = {ENDOFTEXT: 199999, ENDOFPROMPT: 200018}


def _harmony_specials() -> dict[str, int]:
    """o200k_harmony's 1,088 special tokens, built as tiktoken 0.14 builds them."""
    return {
        **_O200K_SPECIALS,
        "<|startoftext|>": 199998,
        "<|endoftext|>": 199999,
        "<|reserved_200000|>": 200000,
        "<|reserved_200001|>": 200001,
        "<|return|>": 200002,
        "<|constrain|>": 200003,
        "<|reserved_200004|>": 200004,
        "<|channel|>": 200005,
        "<|start|>": 200006,
        "<|end|>": 200007,
        "<|message|>": 200008,
        "<|reserved_200009|>": 200009,
        "<|reserved_200010|>": 200010,
        "<|reserved_200011|>": 200011,
        "<|call|>": 200012,
    } | {f"<|reserved_{i}|>": i for i in range(200013, 201088)}


#: The bundled encodings, in tiktoken 0.14's order.
BUNDLED: dict[str, BundledEncoding] = {
    "gpt2": BundledEncoding(
        *_R50K_FILE, _fastllm.R50K_PATTERN, {ENDOFTEXT: 50256}, explicit_n_vocab=50257
    ),
    "r50k_base": BundledEncoding(
        *_R50K_FILE, _fastllm.R50K_PATTERN, {ENDOFTEXT: 50256}, explicit_n_vocab=50257
    ),
    "p50k_base": BundledEncoding(
        *_P50K_FILE, _fastllm.R50K_PATTERN, {ENDOFTEXT: 50256}, explicit_n_vocab=50281
    ),
    "p50k_edit": BundledEncoding(
        *_P50K_FILE,
        _fastllm.R50K_PATTERN,
        {ENDOFTEXT: 50256, FIM_PREFIX: 50281, FIM_MIDDLE: 50282, FIM_SUFFIX: 50283},
    ),
    "cl100k_base": BundledEncoding(
        "cl100k_base.tiktoken.zst",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _fastllm.CL100K_PATTERN,
        {
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": BundledEncoding(*_O200K_FILE, _fastllm.O200K_PATTERN, dict(_O200K_SPECIALS)),
    "o200k_harmony": BundledEncoding(*_O200K_FILE, _fastllm.O200K_PATTERN, _harmony_specials()),
}

#: The bundled encodings loaded so far, by name (as ``tiktoken.registry.ENCODINGS``).
ENCODINGS: dict[str, Encoding] = {}
_LOCK = threading.RLock()


def list_encoding_names() -> list[str]:
    """The names :func:`get_encoding` accepts, in tiktoken's order.

    >>> list_encoding_names()
    ['gpt2', 'r50k_base', 'p50k_base', 'p50k_edit', 'cl100k_base', 'o200k_base', 'o200k_harmony']
    """
    return list(BUNDLED)


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or "/" in value
        or value.endswith((".tiktoken", ".zst", ".json", ".bpe"))
        or os.path.exists(value)
    )


def _how_to_load(path: str) -> str:
    sidecar = path + ".json"
    if not os.path.exists(path):
        return f"there is no file {path!r}"
    if os.path.exists(sidecar):
        return (
            f"it has a sidecar ({sidecar}): load it with fastllm.load_encoding(path) or "
            "fastllm.Encoding.load(path)"
        )
    return (
        "it has no sidecar: load it with fastllm.load_encoding(path, pat_str=..., "
        "special_tokens=...) or fastllm.Encoding.from_tiktoken_file(path, pat_str=...)"
    )


def _unknown_encoding(name: str) -> ValueError:
    return ValueError(
        f"Unknown encoding {name!r}. fastllm bundles: {', '.join(list_encoding_names())}. "
        "To use a vocabulary file, give its path: fastllm.load_encoding(path) reads a vocabulary "
        "saved by fastllm.train_bpe or Encoding.save, and a plain .tiktoken file with "
        "pat_str=... and special_tokens=... (command line: --encoding FILE --pattern NAME "
        "--special NAME=ID)."
    )


def get_encoding(encoding_name: str) -> Encoding:
    """Returns a bundled encoding (loaded once per process, checksum verified).

    A name that is not bundled raises ``ValueError`` listing the bundled ones; a file path raises
    ``ValueError`` saying which loader reads it (:func:`load_encoding` reads them all).

    >>> enc = get_encoding("cl100k_base")
    >>> enc.encode("hello world")
    [15339, 1917]
    """
    enc = ENCODINGS.get(encoding_name) if isinstance(encoding_name, str) else None
    if enc is not None:
        return enc
    if isinstance(encoding_name, os.PathLike) or (
        isinstance(encoding_name, str)
        and encoding_name not in BUNDLED
        and _looks_like_path(encoding_name)
    ):
        path = os.fspath(encoding_name)
        raise ValueError(
            f"get_encoding takes the name of a bundled encoding "
            f"({', '.join(list_encoding_names())}), and {path!r} is a file path; "
            f"{_how_to_load(path)}"
        )
    if not isinstance(encoding_name, str):
        raise ValueError(f"Expected a string in get_encoding, got {type(encoding_name)}")
    spec = BUNDLED.get(encoding_name)
    if spec is None:
        raise _unknown_encoding(encoding_name)
    with _LOCK:
        enc = ENCODINGS.get(encoding_name)
        if enc is None:
            core = _fastllm.CoreBPE.from_tiktoken_file(
                str(spec.path), spec.special_tokens, spec.pattern, spec.sha256
            )
            enc = Encoding._from_core(encoding_name, core, spec.explicit_n_vocab)
            enc._pickle_by_name = get_encoding
            ENCODINGS[encoding_name] = enc
    return enc


def _constructor(name: str) -> Callable[[], dict[str, Any]]:
    def construct() -> dict[str, Any]:
        spec = BUNDLED[name]
        parts: dict[str, Any] = {
            "name": name,
            "pat_str": spec.pattern,
            "mergeable_ranks": get_encoding(name)._mergeable_ranks,
            "special_tokens": dict(spec.special_tokens),
        }
        if spec.explicit_n_vocab is not None:
            parts["explicit_n_vocab"] = spec.explicit_n_vocab
        return parts

    construct.__name__ = construct.__qualname__ = name
    construct.__doc__ = f"The parts of {name}, as ``Encoding(**constructor())`` takes them."
    return construct


#: Name to a function returning the encoding's parts (``name``, ``pat_str``,
#: ``mergeable_ranks``, ``special_tokens``, ``explicit_n_vocab`` where tiktoken gives it), as
#: ``tiktoken.registry.ENCODING_CONSTRUCTORS``: ``Encoding(**ENCODING_CONSTRUCTORS[name]())``.
ENCODING_CONSTRUCTORS: dict[str, Callable[[], dict[str, Any]]] = {
    name: _constructor(name) for name in BUNDLED
}


# ---- any vocabulary ----


def _default_name(path: str) -> str:
    base = os.path.basename(path)
    for suffix in (".zst", ".tiktoken"):
        base = base.removesuffix(suffix)
    return base or "encoding"


def _check_specials(enc: Encoding, special_tokens: dict[str, int], path: str) -> None:
    """``special_tokens`` given for a rank file must not reuse a rank or each other's ids."""
    seen: dict[int, str] = {}
    for name, token in special_tokens.items():
        if token in seen:
            raise ValueError(
                f"special tokens {seen[token]!r} and {name!r} both have id {token}; give each "
                "special token its own id"
            )
        seen[token] = name
        held = enc.decode_single_token_bytes(token)
        if held != name.encode("utf-8"):
            free = enc._core_bpe.n_mergeable
            while _token_at(enc, free):
                free += 1
            raise ValueError(
                f"special token {name!r}={token} collides with rank {token} of {path} (the "
                f"token {held!r}); give it an id no token of the file has (e.g. {free})"
            )


def _token_at(enc: Encoding, token: int) -> list[bytes]:
    try:
        return [enc.decode_single_token_bytes(token)]
    except KeyError:
        return []


def load_encoding(
    source: str | os.PathLike[str],
    *,
    pat_str: str | None = None,
    special_tokens: dict[str, int] | None = None,
    name: str | None = None,
) -> Encoding:
    """Any vocabulary as an :class:`~fastllm.Encoding`:

    - the name of a bundled encoding (``"gpt2"``, ``"o200k_base"``, ...): :func:`get_encoding`;
    - a vocabulary saved by :func:`fastllm.train_bpe` or :meth:`fastllm.Encoding.save` (the
      ``.tiktoken`` file or its ``.json`` sidecar): its sidecar gives the name, pattern and
      special tokens, and the rank file's sha256 is checked;
    - a plain ``.tiktoken`` rank file (or a zstd-compressed one) without sidecar: give its
      pre-tokenizer ``pat_str`` (a regex or a pattern name: ``gpt2``, ``cl100k``, ``o200k``, ...)
      and its ``special_tokens`` (ids that no rank has).

    ``name`` defaults to the saved name, or the file name without ``.tiktoken``. Errors name the
    file and what to do: a missing file, a file that is not a vocabulary, a rank file that does
    not match its sidecar, a special token id that is a rank.

    >>> load_encoding("o200k_base").name
    'o200k_base'
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.tiktoken")
    >>> get_encoding("gpt2").save(path)
    >>> load_encoding(path).encode("hello world")
    [31373, 995]
    """
    if isinstance(source, str) and source in BUNDLED:
        if pat_str is not None or special_tokens:
            raise ValueError(
                f"{source!r} is a bundled encoding with its own pattern and special tokens; "
                "a pattern and special tokens can be given for a .tiktoken file only"
            )
        enc = get_encoding(source)
        if name is None or name == enc.name:
            return enc
        return Encoding._from_core(name, enc._core_bpe, BUNDLED[source].explicit_n_vocab)
    path = os.fspath(source)
    if not os.path.exists(path):
        if not _looks_like_path(path):
            raise _unknown_encoding(path)
        raise FileNotFoundError(
            errno.ENOENT,
            "no such vocabulary file; give the path of a .tiktoken file or a bundled "
            f"encoding's name ({', '.join(list_encoding_names())})",
            path,
        )
    if os.path.isdir(path):
        raise IsADirectoryError(
            errno.EISDIR, "is a directory; give the path of a .tiktoken vocabulary file", path
        )
    if path.endswith(".json") and os.path.exists(path.removesuffix(".json")):
        path = path.removesuffix(".json")  # the sidecar was given: load what it describes
    sidecar = path + ".json"
    if os.path.exists(sidecar):
        enc = Encoding.load(path, name=name)
        if pat_str is not None and resolve_pattern(pat_str) != enc._pat_str:
            raise ValueError(
                f"{path}: its sidecar {sidecar} gives its pattern, and the pattern given "
                f"({pat_str!r:.60}) is another; leave the pattern out (--pattern) to use the "
                "saved one"
            )
        if special_tokens and special_tokens != enc._special_tokens:
            raise ValueError(
                f"{path}: its sidecar {sidecar} gives its special tokens "
                f"({dict(sorted(enc._special_tokens.items(), key=lambda kv: kv[1]))}), and the "
                "special tokens given are others; leave them out (--special) to use the saved ones"
            )
        return enc
    if pat_str is None:
        raise ValueError(
            f"{path} has no sidecar ({sidecar}), so its pre-tokenizer pattern and special tokens "
            "are unknown. If fastllm saved it (train_bpe, Encoding.save), put the sidecar back "
            "next to it; for a plain .tiktoken file give the pattern (pat_str=..., command line: "
            f"--pattern NAME_OR_REGEX; names: {', '.join(sorted(PATTERN_NAMES))}) and the special "
            "tokens (special_tokens={...}, command line: --special NAME=ID)"
        )
    specials = dict(special_tokens or {})
    try:
        enc = Encoding.from_tiktoken_file(
            path,
            name=_default_name(path) if name is None else name,
            pat_str=pat_str,
            special_tokens=specials,
        )
    except ValueError as e:
        if not str(e).startswith(path):
            raise
        raise ValueError(
            f"{e}. Is {path} a vocabulary? fastllm reads tiktoken's rank files (one "
            "'<base64 token> <rank>' per line, plain or zstd-compressed) and the vocabularies "
            "train_bpe saves; for GPT-2's vocab.bpe + encoder.json use Encoding.from_data_gym"
        ) from None
    _check_specials(enc, specials, path)
    return enc
