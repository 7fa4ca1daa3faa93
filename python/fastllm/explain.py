"""The teaching view of BPE: how a text is cut into pieces and each piece merged into tokens.

:meth:`fastllm.Encoding.explain` is the public face; :func:`explain` works on an encoding's parts
(pattern, special tokens, ranks), so this module is a leaf: it imports nothing of fastllm but the
Rust splitter and :mod:`fastllm._pretok`.

>>> import fastllm
>>> print(fastllm.get_encoding("gpt2").explain("Hello world"))
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

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from fastllm import _fastllm
from fastllm._pretok import fix_surrogates

__all__ = ["Explanation", "PieceExplanation", "explain"]


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
    piece: bytes, ranks: Mapping[bytes, int]
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


def explain(
    text: str,
    *,
    pat_str: str,
    special_tokens: Mapping[str, int],
    ranks: Mapping[bytes, int],
) -> Explanation:
    """Each pre-token piece of ``text`` and its merge steps, for the encoding with these parts.

    Special tokens are recognised (as ``encode(text, allowed_special="all")``), and the ids are
    the ones ``encode`` gives. ``str()`` of the result is a readable table.

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256}
    >>> explain("abc", pat_str=r"\\w+", special_tokens={}, ranks=ranks).ids
    [256, 99]
    """
    try:
        pieces = _fastllm.split_pieces(pat_str, text, list(special_tokens))
    except UnicodeEncodeError:
        text = fix_surrogates(text)
        pieces = _fastllm.split_pieces(pat_str, text, list(special_tokens))
    out = []
    for piece, special in pieces:
        if special:
            out.append(PieceExplanation(piece, True, (), (), (special_tokens[piece],)))
            continue
        steps, made = _merge_steps(piece.encode("utf-8"), ranks)
        ids = tuple(ranks[p] for p in steps[-1])
        out.append(PieceExplanation(piece, False, steps, made, ids))
    return Explanation(text, tuple(out))
