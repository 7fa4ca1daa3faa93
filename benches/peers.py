"""The contenders, built from fastllm's bundled rank files (nothing is downloaded).

- ``fastllm``: :func:`fastllm.get_encoding`.
- ``tiktoken``: ``tiktoken.Encoding`` over the same ranks, pattern and special tokens.
- ``quicktok`` (PyPI ``quicktok-v1``): its own bundled vocabularies (cl100k_base, o200k_base;
  it has no gpt2/r50k scanner), checked exact against tiktoken before it is timed.
- ``splintr`` (PyPI ``splintr-rs``): ``splintr.Tokenizer`` over fastllm's ``.tiktoken`` file with
  splintr's own pattern constant for the encoding (its regex engine refuses tiktoken 0.14's
  possessive quantifiers), checked exact against tiktoken before it is timed.
- ``hf_tokenizers``: a HuggingFace ``tokenizers`` BPE whose merges are derived from the ranks
  (each token's merge is the last step of BPE-encoding its bytes with the lower ranks), with the
  same split pattern and GPT-2's byte-level alphabet.
- ``pure_python``: :class:`pure_python_bpe.PurePythonBPE`.

Imports are lazy: the cold benchmark's worker processes import this module and then only the
one tokenizer they time.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

MODULES = {
    "fastllm": "fastllm",
    "tiktoken": "tiktoken",
    "quicktok": "quicktok",
    "splintr": "splintr",
    "hf_tokenizers": "tokenizers",
    "pure_python": "regex",
}
# The PyPI distribution of each peer (for the versions in the machine info).
DISTRIBUTIONS = {
    "fastllm": "fastllm",
    "tiktoken": "tiktoken",
    "quicktok": "quicktok-v1",
    "splintr": "splintr-rs",
    "hf_tokenizers": "tokenizers",
}
# The encodings the benchmarks cover, in order; each one only once fastllm bundles it.
WANTED_ENCODINGS = ("gpt2", "cl100k_base", "o200k_base")
QUICKTOK_NAMES = {"cl100k_base": "cl100k_base", "o200k_base": "o200k_base"}
SPLINTR_PATTERNS = {
    "gpt2": "GPT2_PATTERN",
    "r50k_base": "GPT2_PATTERN",
    "cl100k_base": "CL100K_BASE_PATTERN",
    "o200k_base": "O200K_BASE_PATTERN",
}


def available(contender: str) -> bool:
    name = MODULES.get(contender)
    return name is None or importlib.util.find_spec(name) is not None


def version(contender: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTIONS.get(contender, contender))
    except metadata.PackageNotFoundError:
        return None


def encodings() -> list[str]:
    """The wanted encodings that this fastllm bundles (o200k_base joins when it is bundled)."""
    from fastllm.registry import BUNDLED

    return [name for name in WANTED_ENCODINGS if name in BUNDLED]


def unsupported(contender: str, name: str) -> str | None:
    """Why ``contender`` cannot run encoding ``name`` (``None`` when it can)."""
    if not available(contender):
        return f"{contender} is not installed"
    if contender == "quicktok" and name not in QUICKTOK_NAMES:
        return f"quicktok bundles no {name} (no gpt2/r50k scanner)"
    if contender == "splintr" and name not in SPLINTR_PATTERNS:
        return f"splintr has no pattern constant for {name}"
    return None


@dataclass(frozen=True)
class VocabSpec:
    """What a worker process needs to build any contender, without importing fastllm."""

    name: str
    path: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int] = field(default_factory=dict)
    explicit_n_vocab: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plain_rank_file(name: str) -> str:
    """A plain (decompressed, sha256-checked) copy of a bundled rank file, for the peers that
    read a ``.tiktoken`` path (tiktoken's ``load_tiktoken_bpe``, splintr): made once per machine
    in the temporary directory."""
    import tempfile

    from fastllm import _fastllm
    from fastllm.registry import BUNDLED

    spec = BUNDLED[name]
    folder = os.path.join(tempfile.gettempdir(), f"fastllm-vocab-{spec.sha256[:16]}")
    path = os.path.join(folder, spec.file.removesuffix(".zst"))
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(_fastllm.read_vocab_file(spec.path, spec.sha256))
        os.replace(tmp, path)
    return path


def vocab_spec(name: str) -> VocabSpec:
    from fastllm.registry import BUNDLED

    spec = BUNDLED[name]
    return VocabSpec(
        name=name,
        path=plain_rank_file(name),
        sha256=spec.sha256,
        pattern=spec.pattern,
        special_tokens=dict(spec.special_tokens),
        explicit_n_vocab=spec.explicit_n_vocab,
    )


def build(contender: str, spec: VocabSpec) -> Any:
    """A new instance of ``contender`` for ``spec`` (not cached: no state shared with others)."""
    if contender == "fastllm":
        import fastllm

        return fastllm.get_encoding(spec.name)
    if contender == "tiktoken":
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        return tiktoken.Encoding(
            name=spec.name,
            pat_str=spec.pattern,
            mergeable_ranks=load_tiktoken_bpe(spec.path, expected_hash=spec.sha256),
            special_tokens=dict(spec.special_tokens),
            explicit_n_vocab=spec.explicit_n_vocab,
        )
    if contender == "quicktok":
        import quicktok

        return quicktok.Tokenizer(QUICKTOK_NAMES[spec.name], "")
    if contender == "splintr":
        import splintr

        pattern = getattr(splintr, SPLINTR_PATTERNS[spec.name])
        return splintr.Tokenizer(spec.path, pattern, dict(spec.special_tokens))
    if contender == "pure_python":
        from pure_python_bpe import PurePythonBPE

        return PurePythonBPE(ranks(spec.name), spec.pattern)
    if contender == "hf_tokenizers":
        return HFEncoder(spec.name)
    raise ValueError(f"unknown contender {contender!r}")


@functools.cache
def ranks(name: str) -> dict[bytes, int]:
    return encoder("tiktoken", name)._mergeable_ranks


@functools.cache
def encoder(contender: str, name: str) -> Any:
    if contender == "tiktoken":
        from reference import reference_encoding

        return reference_encoding(name)
    return build(contender, vocab_spec(name))


# Each contender's one-thread call (text -> ids; the NumPy variant for fastllm) and its batch
# call on a list of documents. Timed as they are; ``flat`` turns a batch call's output into
# (tokens, per-document lengths) after the clock has stopped, for the exactness check.
def one_thread_call(contender: str, enc: Any, numpy: bool = False) -> Callable[[str], Any]:
    if numpy:
        if contender != "fastllm":
            raise ValueError(f"{contender} has no encode_to_numpy")
        return enc.encode_to_numpy
    return enc.encode_ordinary


def batch_call(contender: str, enc: Any) -> Callable[[list[str]], Any]:
    if contender == "fastllm":
        return enc.encode_ordinary_batch_to_numpy
    if contender == "quicktok":
        return enc.encode_batch
    if contender == "splintr":
        return enc.encode_batch_flat
    return enc.encode_ordinary_batch


def flat(contender: str, out: Any) -> tuple[Any, Any]:
    """(uint32 tokens, int64 lengths) of a batch call's output."""
    import numpy as np

    if contender in ("fastllm", "quicktok"):
        tokens, offsets = out
        return np.asarray(tokens, dtype=np.uint32), np.diff(np.asarray(offsets, dtype=np.int64))
    if contender == "splintr":
        ids, offsets = out
        bounds = np.frombuffer(offsets, dtype="<u8").astype(np.int64)
        return np.frombuffer(ids, dtype="<u4").astype(np.uint32), np.diff(bounds)
    lengths = np.array([len(ids) for ids in out], dtype=np.int64)
    tokens = np.fromiter((t for ids in out for t in ids), dtype=np.uint32, count=int(lengths.sum()))
    return tokens, lengths


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
                pre_tokenizers.Split(Regex(vocab_spec(name).pattern), behavior="isolated"),
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
