"""A plain-Python byte-pair encoder: the reference speed of code a learner writes by hand.

Pre-tokenizes with the ``regex`` module (installed with tiktoken) and merges with a dict of
ranks, lowest rank first, leftmost on ties: the same result as tiktoken, at pure-Python speed.
"""

from __future__ import annotations

import regex


class PurePythonBPE:
    def __init__(self, mergeable_ranks: dict[bytes, int], pat_str: str) -> None:
        self.ranks = mergeable_ranks
        self.pattern = regex.compile(pat_str)

    def encode_piece(self, piece: bytes) -> list[int]:
        ranks = self.ranks
        if piece in ranks:
            return [ranks[piece]]
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best_rank, best_i = None, -1
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_i = rank, i
            if best_rank is None:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        return [ranks[p] for p in parts]

    def encode_ordinary(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self.pattern.findall(text):
            out.extend(self.encode_piece(piece.encode("utf-8")))
        return out
