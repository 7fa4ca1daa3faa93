"""What Python does to a text and a pattern before Rust pre-tokenizes: a leaf (imports only Rust).

- :func:`resolve_pattern`: the pattern names (``"gpt2"``, ``"cl100k"``, ``"o200k"``, ...) and
  the regexes they stand for;
- :func:`fix_surrogates`: lone surrogates, which cannot be UTF-8 encoded, become U+FFFD (as in
  tiktoken).

:class:`fastllm.Encoding`, :func:`fastllm.train_bpe` and :mod:`fastllm.explain` use these two,
so each has one owner.
"""

from __future__ import annotations

from fastllm import _fastllm

__all__ = ["PATTERN_NAMES", "fix_surrogates", "resolve_pattern"]

#: Pattern names and their regexes. (The Rust core has the same table; phase 2 of issue 10
#: exposes it from Rust so that this copy goes.)
PATTERN_NAMES: dict[str, str] = {
    "r50k": _fastllm.R50K_PATTERN,
    "r50k_base": _fastllm.R50K_PATTERN,
    "gpt2": _fastllm.R50K_PATTERN,
    "p50k": _fastllm.R50K_PATTERN,
    "p50k_base": _fastllm.R50K_PATTERN,
    "cl100k": _fastllm.CL100K_PATTERN,
    "cl100k_base": _fastllm.CL100K_PATTERN,
    "o200k": _fastllm.O200K_PATTERN,
    "o200k_base": _fastllm.O200K_PATTERN,
}


def resolve_pattern(pat_str: str) -> str:
    """Returns the regex for a known pattern name, or ``pat_str`` itself.

    >>> resolve_pattern("cl100k").startswith("'(?i:")
    True
    >>> resolve_pattern(r"\\w+")
    '\\\\w+'
    """
    return PATTERN_NAMES.get(pat_str, pat_str)


def fix_surrogates(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, as tiktoken does before encoding.

    >>> fix_surrogates("a\\ud800b")
    'a\\ufffdb'
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
