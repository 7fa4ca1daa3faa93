"""Text found on every machine with Python, for demos, tests and benchmarks (nothing downloaded).

Three kinds, because tokenizers behave differently on each:

- :func:`python_source`: the standard library's ``.py`` files;
- :func:`english_prose`: the standard library's docstrings and the licence texts under
  ``/usr/share/common-licenses`` when present;
- :func:`non_latin_text`: CPython's CJK test texts, then the translations in the system's
  gettext catalogs (``/usr/share/locale``) for languages written in non-Latin scripts, then
  generated text in Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, Hangul and CJK scripts.

``fastllm.corpus`` is this module's older name (kept for one release).

>>> from fastllm import samples
>>> len(samples.english_prose(10_000)) >= 10_000
True
"""

from __future__ import annotations

import ast
import functools
import os
import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path

__all__ = ["english_prose", "non_latin_text", "python_source", "stdlib_dir", "stdlib_files"]


def stdlib_dir() -> Path:
    """The directory of this Python's standard library.

    >>> (stdlib_dir() / "os.py").exists()
    True
    """
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files, sorted (site-packages excluded).

    >>> len(stdlib_files()) > 100
    True
    """
    found: list[Path] = []
    for folder, subdirs, names in os.walk(stdlib_dir()):
        subdirs[:] = sorted(d for d in subdirs if d not in ("site-packages", "__pycache__"))
        found.extend(Path(folder, n) for n in names if n.endswith(".py"))
    return sorted(found)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _take(parts: Iterator[str], max_bytes: int, sep: str = "\n") -> str:
    out: list[str] = []
    size = 0
    for part in parts:
        out.append(part)
        size += len(part.encode("utf-8")) + len(sep)
        if size >= max_bytes:
            break
    return sep.join(out)


def python_source(max_bytes: int = 4_000_000, *, skip_bytes: int = 0) -> str:
    """About ``max_bytes`` of Python source from the standard library.

    ``skip_bytes`` skips that much source first, so callers can take disjoint slices.

    >>> "def " in python_source(50_000)
    True
    """

    def parts() -> Iterator[str]:
        skipped = 0
        for path in stdlib_files():
            text = _read(path)
            if text is None:
                continue
            if skipped < skip_bytes:
                skipped += len(text.encode("utf-8"))
                continue
            yield text

    return _take(parts(), max_bytes)


def _docstrings(path: Path) -> Iterator[str]:
    text = _read(path)
    if text is None:
        return
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 80:
                yield doc


@functools.lru_cache(maxsize=1)
def _all_docstrings() -> tuple[str, ...]:
    return tuple(doc for path in stdlib_files() for doc in _docstrings(path))


def english_prose(max_bytes: int = 4_000_000, *, skip_bytes: int = 0) -> str:
    """About ``max_bytes`` of English prose: licence texts, then standard library docstrings.

    >>> "the" in english_prose(20_000)
    True
    """

    def parts() -> Iterator[str]:
        skipped = 0
        licences = Path("/usr/share/common-licenses")
        sources: list[Iterator[str]] = []
        if licences.is_dir():
            texts = (_read(p) for p in sorted(licences.iterdir()) if p.is_file())
            sources.append(t for t in texts if t)
        sources.append(iter(_all_docstrings()))
        for source in sources:
            for text in source:
                if skipped < skip_bytes:
                    skipped += len(text.encode("utf-8"))
                    continue
                yield text

    return _take(parts(), max_bytes, sep="\n\n")


_SCRIPTS: dict[str, list[tuple[int, int]]] = {
    "cyrillic": [(0x0430, 0x044F), (0x0410, 0x042F)],
    "greek": [(0x03B1, 0x03C9), (0x0391, 0x03A9), (0x03AC, 0x03AF)],
    "arabic": [(0x0621, 0x064A), (0x064B, 0x0652)],
    "hebrew": [(0x05D0, 0x05EA)],
    "devanagari": [(0x0915, 0x0939), (0x093E, 0x094D)],
    "thai": [(0x0E01, 0x0E2E), (0x0E30, 0x0E39)],
    "hangul": [(0xAC00, 0xD7A3)],
    "cjk": [(0x4E00, 0x9FFF), (0x3041, 0x3096), (0x30A1, 0x30FA)],
}
_DIGITS = {"arabic": 0x0660, "devanagari": 0x0966, "thai": 0x0E50}
_PUNCT = {"cjk": "\u3002\u3001\u300c\u300d\uff01\uff1f", "arabic": "،؛؟.", "default": ".,;:!?«»—"}


def _generated_non_latin(seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    names = sorted(_SCRIPTS)
    while True:
        script = rng.choice(names)
        ranges = _SCRIPTS[script]
        punct = _PUNCT.get(script, _PUNCT["default"])
        words = []
        for _ in range(rng.randint(20, 120)):
            lo, hi = rng.choice(ranges)
            word = "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 9)))
            if script in _DIGITS and rng.random() < 0.05:
                word = "".join(chr(_DIGITS[script] + rng.randint(0, 9)) for _ in range(4))
            elif rng.random() < 0.03:
                word = str(rng.randint(0, 99999))
            words.append(word + (rng.choice(punct) if rng.random() < 0.12 else ""))
        sep = "" if script in ("cjk", "thai") and rng.random() < 0.7 else " "
        yield sep.join(words)


_NON_LATIN_LOCALES = (
    "ar",
    "be",
    "bg",
    "el",
    "fa",
    "he",
    "hi",
    "hy",
    "ja",
    "ka",
    "kk",
    "ko",
    "mk",
    "mr",
    "ru",
    "sr",
    "ta",
    "th",
    "uk",
    "zh_CN",
    "zh_TW",
)


@functools.lru_cache(maxsize=1)
def _translations() -> tuple[str, ...]:
    """Translated messages in non-Latin scripts from the system's gettext catalogs."""
    import gettext

    found: list[str] = []
    root = Path("/usr/share/locale")
    for locale in _NON_LATIN_LOCALES:
        for path in sorted((root / locale / "LC_MESSAGES").glob("*.mo")):
            try:
                with path.open("rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
            except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError):
                continue
            for message in catalog.values():
                if isinstance(message, str) and len(message) > 20:
                    non_ascii = sum(ord(c) > 0x2FF for c in message)
                    if non_ascii * 2 > len(message):
                        found.append(message)
    return tuple(found)


def non_latin_text(max_bytes: int = 4_000_000, *, seed: int = 0) -> str:
    """About ``max_bytes`` of non-Latin text: real text found on the machine, then generated.

    ``seed=0`` starts with CPython's CJK test texts and the system's translations (when
    present); another ``seed`` gives generated text only, different for each seed.

    >>> text = non_latin_text(10_000)
    >>> sum(ord(c) > 0x2FF for c in text) > len(text) // 2
    True
    """

    def parts() -> Iterator[str]:
        cjk_dir = stdlib_dir() / "test" / "cjkencodings"
        if seed == 0:
            if cjk_dir.is_dir():
                for path in sorted(cjk_dir.glob("*-utf8.txt")):
                    text = _read(path)
                    if text:
                        yield text
            yield from _translations()
        yield from _generated_non_latin(seed)

    return _take(parts(), max_bytes)
