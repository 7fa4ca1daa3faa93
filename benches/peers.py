"""The contenders, all built from fastllm's bundled rank files (nothing is downloaded).

- ``fastllm``: :func:`fastllm.get_encoding`.
- ``tiktoken``: ``tiktoken.Encoding`` over the same ranks, pattern and special tokens.
- ``hf_tokenizers``: a HuggingFace ``tokenizers`` BPE whose merges are derived from the ranks
  (each token's merge is the last step of BPE-encoding its bytes with the lower ranks), with the
  same split pattern and GPT-2's byte-level alphabet.
- ``pure_python``: :class:`pure_python_bpe.PurePythonBPE`.
"""

from __future__ import annotations

import functools
import importlib.util

import fastllm
from fastllm.registry import BUNDLED


def available(contender: str) -> bool:
    module = {"tiktoken": "tiktoken", "hf_tokenizers": "tokenizers", "pure_python": "regex"}
    name = module.get(contender)
    return name is None or importlib.util.find_spec(name) is not None


@functools.cache
def ranks(name: str) -> dict[bytes, int]:
    from reference import reference_encoding

    return reference_encoding(name)._mergeable_ranks


@functools.cache
def encoder(contender: str, name: str):
    spec = BUNDLED[name]
    if contender == "fastllm":
        return fastllm.get_encoding(name)
    if contender == "tiktoken":
        from reference import reference_encoding

        return reference_encoding(name)
    if contender == "pure_python":
        from pure_python_bpe import PurePythonBPE

        return PurePythonBPE(ranks(name), spec.pattern)
    if contender == "hf_tokenizers":
        return HFEncoder(name)
    raise ValueError(f"unknown contender {contender!r}")


def _byte_to_unicode() -> dict[int, str]:
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    others = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}


def _merge_parts(token: bytes, rank: int, table: dict[bytes, int]) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = table.get(parts[i] + parts[i + 1])
            if r is not None and r < rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


class HFEncoder:
    """HF tokenizers over the same vocabulary, with an ``encode_ordinary``-like face."""

    def __init__(self, name: str) -> None:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

        table = ranks(name)
        show = _byte_to_unicode()
        vocab = {"".join(show[b] for b in t): r for t, r in table.items()}
        merges = []
        for token, rank in sorted(table.items(), key=lambda kv: kv[1]):
            if len(token) < 2:
                continue
            parts = _merge_parts(token, rank, table)
            if len(parts) == 2:
                merges.append(tuple("".join(show[b] for b in p) for p in parts))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(BUNDLED[name].pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        self.tokenizer = tok

    def encode_ordinary(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_ordinary_batch(self, texts: list[str], num_threads: int = 8) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)
