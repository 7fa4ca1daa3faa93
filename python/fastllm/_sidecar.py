"""The saved form of an encoding: a ``.tiktoken`` rank file plus its JSON sidecar (a leaf).

The rank file is tiktoken's format (``base64-token rank`` per line), so
``tiktoken.load.load_tiktoken_bpe(path)`` reads it. The sidecar ``path + ".json"`` holds what the
ranks do not: the name, the pattern, the special tokens, and the rank file's sha256 (checked on
load). Both files are written atomically. :meth:`fastllm.Encoding.save` and
:meth:`fastllm.Encoding.load` are the public face; this module works on the Rust core only, so it
imports nothing of fastllm but ``_fastllm``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from typing import Any

from fastllm import _fastllm

__all__ = ["read", "sidecar_path", "write"]

FORMAT = "fastllm.Encoding"
VERSION = 1


def sidecar_path(path: str | os.PathLike[str]) -> str:
    """The JSON sidecar of a saved encoding: the rank file's path plus ``.json``.

    >>> sidecar_path("tok.tiktoken")
    'tok.tiktoken.json'
    """
    return os.fspath(path) + ".json"


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


def write(path: str | os.PathLike[str], name: str, core: _fastllm.CoreBPE) -> None:
    """Writes ``core`` as the rank file ``path`` and its sidecar, under the name ``name``."""
    path = os.fspath(path)
    data = core.tiktoken_bytes()
    specials = dict(sorted(core.special_tokens().items(), key=lambda item: item[1]))
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "pat_str": core.pattern,
        "special_tokens": specials,
        "n_vocab": core.max_token_value + 1,
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


def read(path: str | os.PathLike[str]) -> tuple[str, _fastllm.CoreBPE]:
    """The saved name and the Rust core of the encoding saved at ``path`` (sha256 checked).

    >>> read("missing.tiktoken")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: 'missing.tiktoken.json' (the sidecar ...
    """
    path = os.fspath(path)
    sidecar = sidecar_path(path)
    try:
        with open(sidecar, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{sidecar}: not UTF-8 text ({e}); the sidecar is damaged") from None
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
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{sidecar}: not a fastllm encoding sidecar (no 'format': {FORMAT!r})")
    version = meta.get("version")
    if version != VERSION:
        raise ValueError(
            f"{sidecar}: version {version!r} is not supported (this fastllm reads version "
            f"{VERSION}); upgrade fastllm"
        )
    pat_str = _field(meta, "pat_str", str, sidecar)
    sha256 = _field(meta, "ranks_sha256", str, sidecar)
    specials = _field(meta, "special_tokens", dict, sidecar)
    for token, rank in specials.items():
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise ValueError(f"{sidecar}: special token {token!r} has id {rank!r}, not an int")
    saved_name = _field(meta, "name", str, sidecar)
    if not os.path.exists(path):
        raise FileNotFoundError(
            errno.ENOENT, f"the rank file is missing (its sidecar {sidecar} is there)", path
        )
    data = _fastllm.read_vocab_file(path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.strip().lower():
        raise ValueError(
            f"{path}: sha256 is {actual}, but its sidecar {sidecar} records {sha256}: the rank "
            "file was changed or replaced after it was saved. Put back the file saved with this "
            "sidecar, or save the encoding again (Encoding.save, train_bpe) to write a matching "
            "pair"
        )
    return saved_name, _fastllm.CoreBPE.from_tiktoken_bytes(data, specials, pat_str)
