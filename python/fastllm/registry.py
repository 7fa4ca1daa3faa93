"""The encodings bundled with fastllm, and model-name lookup (offline: nothing is downloaded)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastllm import _fastllm
from fastllm.core import Encoding

__all__ = [
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
]

VOCAB_DIR = Path(__file__).parent / "vocab"

ENDOFTEXT = "<|endoftext|>"


@dataclass(frozen=True)
class BundledEncoding:
    file: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int] = field(default_factory=dict)
    explicit_n_vocab: int | None = None

    @property
    def path(self) -> Path:
        return VOCAB_DIR / self.file


_GPT2 = BundledEncoding(
    file="gpt2.tiktoken",
    sha256="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    pattern=_fastllm.R50K_PATTERN,
    special_tokens={ENDOFTEXT: 50256},
    explicit_n_vocab=50257,
)

BUNDLED: dict[str, BundledEncoding] = {
    "gpt2": _GPT2,
    "r50k_base": _GPT2,
    "cl100k_base": BundledEncoding(
        file="cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pattern=_fastllm.CL100K_PATTERN,
        special_tokens={
            ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

_ENCODINGS: dict[str, Encoding] = {}
_LOCK = threading.Lock()


def list_encoding_names() -> list[str]:
    """The names :func:`get_encoding` accepts.

    >>> list_encoding_names()
    ['gpt2', 'r50k_base', 'cl100k_base']
    """
    return list(BUNDLED)


def get_encoding(encoding_name: str) -> Encoding:
    """Returns a bundled encoding (loaded once per process, checksum verified).

    >>> enc = get_encoding("cl100k_base")
    >>> enc.encode("hello world")
    [15339, 1917]
    """
    enc = _ENCODINGS.get(encoding_name)
    if enc is not None:
        return enc
    spec = BUNDLED.get(encoding_name) if isinstance(encoding_name, str) else None
    if spec is None:
        raise ValueError(
            f"Unknown encoding {encoding_name!r}. fastllm bundles: "
            f"{', '.join(list_encoding_names())}. For another encoding, load its .tiktoken file "
            "with fastllm.Encoding.from_tiktoken_file(path, pat_str=...)."
        )
    with _LOCK:
        enc = _ENCODINGS.get(encoding_name)
        if enc is None:
            core = _fastllm.CoreBPE.from_tiktoken_file(
                str(spec.path), spec.special_tokens, spec.pattern, spec.sha256
            )
            enc = Encoding._from_core(encoding_name, core, spec.explicit_n_vocab)
            enc._pickle_by_name = get_encoding
            _ENCODINGS[encoding_name] = enc
    return enc


# Model names as in tiktoken 0.14's model.py. Models whose encoding fastllm does not bundle stay
# listed, so the error can say which file to load.
MODEL_TO_ENCODING: dict[str, str] = {
    "o1": "o200k_base",
    "o3": "o200k_base",
    "o4-mini": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-4o": "o200k_base",
    "gpt-4": "cl100k_base",
    "gpt-3.5-turbo": "cl100k_base",
    "gpt-3.5": "cl100k_base",
    "gpt-35-turbo": "cl100k_base",
    "davinci-002": "cl100k_base",
    "babbage-002": "cl100k_base",
    "text-embedding-ada-002": "cl100k_base",
    "text-embedding-3-small": "cl100k_base",
    "text-embedding-3-large": "cl100k_base",
    "text-davinci-003": "p50k_base",
    "text-davinci-002": "p50k_base",
    "text-davinci-001": "r50k_base",
    "text-curie-001": "r50k_base",
    "text-babbage-001": "r50k_base",
    "text-ada-001": "r50k_base",
    "davinci": "r50k_base",
    "curie": "r50k_base",
    "babbage": "r50k_base",
    "ada": "r50k_base",
    "code-davinci-002": "p50k_base",
    "code-davinci-001": "p50k_base",
    "code-cushman-002": "p50k_base",
    "code-cushman-001": "p50k_base",
    "davinci-codex": "p50k_base",
    "cushman-codex": "p50k_base",
    "text-davinci-edit-001": "p50k_edit",
    "code-davinci-edit-001": "p50k_edit",
    "text-similarity-davinci-001": "r50k_base",
    "text-similarity-curie-001": "r50k_base",
    "text-similarity-babbage-001": "r50k_base",
    "text-similarity-ada-001": "r50k_base",
    "text-search-davinci-doc-001": "r50k_base",
    "text-search-curie-doc-001": "r50k_base",
    "text-search-babbage-doc-001": "r50k_base",
    "text-search-ada-doc-001": "r50k_base",
    "code-search-babbage-code-001": "r50k_base",
    "code-search-ada-code-001": "r50k_base",
    "gpt2": "gpt2",
    "gpt-2": "gpt2",
}

MODEL_PREFIX_TO_ENCODING: dict[str, str] = {
    "o1-": "o200k_base",
    "o3-": "o200k_base",
    "o4-mini-": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-4.5-": "o200k_base",
    "gpt-4.1-": "o200k_base",
    "chatgpt-4o-": "o200k_base",
    "gpt-4o-": "o200k_base",
    "gpt-4-": "cl100k_base",
    "gpt-3.5-turbo-": "cl100k_base",
    "gpt-35-turbo-": "cl100k_base",
    "gpt-oss-": "o200k_harmony",
    "ft:gpt-4o": "o200k_base",
    "ft:gpt-4": "cl100k_base",
    "ft:gpt-3.5-turbo": "cl100k_base",
    "ft:davinci-002": "cl100k_base",
    "ft:babbage-002": "cl100k_base",
}


def encoding_name_for_model(model_name: str) -> str:
    """The name of the encoding a model uses (``KeyError`` if the model is not known).

    >>> encoding_name_for_model("gpt-4")
    'cl100k_base'
    """
    if model_name in MODEL_TO_ENCODING:
        return MODEL_TO_ENCODING[model_name]
    for prefix, encoding_name in MODEL_PREFIX_TO_ENCODING.items():
        if model_name.startswith(prefix):
            return encoding_name
    raise KeyError(
        f"Could not automatically map {model_name} to a tokeniser. "
        "Please use `fastllm.get_encoding` to explicitly get the tokeniser you expect."
    )


def encoding_for_model(model_name: str) -> Encoding:
    """The encoding a model uses, for the models whose encoding is bundled.

    >>> encoding_for_model("gpt-3.5-turbo").name
    'cl100k_base'
    """
    name = encoding_name_for_model(model_name)
    if name not in BUNDLED:
        raise KeyError(
            f"Model {model_name!r} uses the {name} encoding, which fastllm does not bundle "
            f"(bundled: {', '.join(list_encoding_names())}). Load its .tiktoken file with "
            f"fastllm.Encoding.from_tiktoken_file(path, name={name!r}, pat_str=...)."
        )
    return get_encoding(name)
