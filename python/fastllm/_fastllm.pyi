"""Type stubs for fastllm's Rust extension module."""

from collections.abc import Iterable, Sequence
from os import PathLike

import numpy as np
import numpy.typing as npt

__version__: str
R50K_PATTERN: str
CL100K_PATTERN: str
O200K_PATTERN: str

# ---- BPE encoding (rust/py/encoding.rs) ----

def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def read_vocab_file(path: str | PathLike[str], expected_sha256: str | None = None) -> bytes: ...

class CoreBPE:
    def __init__(
        self, mergeable_ranks: dict[bytes, int], special_tokens: dict[str, int], pat_str: str
    ) -> None: ...
    @staticmethod
    def from_tiktoken_file(
        path: str | PathLike[str],
        special_tokens: dict[str, int],
        pat_str: str,
        expected_sha256: str | None = None,
    ) -> CoreBPE: ...
    @staticmethod
    def from_tiktoken_bytes(
        data: bytes, special_tokens: dict[str, int], pat_str: str
    ) -> CoreBPE: ...
    @staticmethod
    def from_data_gym(
        vocab_bpe_path: str | PathLike[str],
        encoder_json_path: str | PathLike[str],
        special_tokens: dict[str, int],
        pat_str: str,
    ) -> CoreBPE: ...
    @property
    def pattern(self) -> str: ...
    @property
    def max_token_value(self) -> int: ...
    @property
    def n_mergeable(self) -> int: ...
    def special_tokens(self) -> dict[str, int]: ...
    def mergeable_ranks(self) -> dict[bytes, int]: ...
    def tiktoken_bytes(self) -> bytes: ...
    def encode_ordinary(self, text: str) -> list[int]: ...
    def encode(
        self, text: str, allowed_special: Iterable[str], disallowed_special: Iterable[str]
    ) -> list[int]: ...
    def encode_to_numpy(
        self, text: str, allowed_special: Iterable[str], disallowed_special: Iterable[str]
    ) -> npt.NDArray[np.uint32]: ...
    def count_tokens(
        self, text: str, allowed_special: Iterable[str], disallowed_special: Iterable[str]
    ) -> int: ...
    def encode_batch(
        self,
        texts: Sequence[str],
        allowed_special: Iterable[str],
        disallowed_special: Iterable[str],
        num_threads: int = 0,
    ) -> list[list[int]]: ...
    def encode_ordinary_batch(
        self, texts: Sequence[str], num_threads: int = 0
    ) -> list[list[int]]: ...
    def encode_batch_to_numpy(
        self,
        texts: Sequence[str],
        allowed_special: Iterable[str],
        disallowed_special: Iterable[str],
        num_threads: int = 0,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]: ...
    def encode_with_unstable(
        self, text: str, allowed_special: Iterable[str], disallowed_special: Iterable[str]
    ) -> tuple[list[int], list[list[int]]]: ...
    def encode_bytes(self, data: bytes) -> list[int]: ...
    def encode_single_token(self, piece: bytes) -> int: ...
    def encode_single_piece(self, piece: bytes) -> list[int]: ...
    def decode_bytes(self, tokens: Sequence[int]) -> bytes: ...
    def decode_replace(self, tokens: Sequence[int]) -> str: ...
    def decode_single_token_bytes(self, token: int) -> bytes: ...
    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]: ...
    def decode_bytes_batch(
        self, batch: Sequence[Sequence[int]], num_threads: int = 0
    ) -> list[bytes]: ...
    def token_byte_values(self) -> list[bytes]: ...

# ---- data path: word tokenizer and sliding windows (rust/py/data.rs) ----

SIMPLE_SPLIT_PATTERN: str

class SimpleTokenizerCore:
    def __init__(self, vocab: dict[str, int], unk_token: str | None = None) -> None: ...
    @staticmethod
    def from_text(
        text: str, special_tokens: Sequence[str], unk_token: str | None = None
    ) -> SimpleTokenizerCore: ...
    @property
    def unk_token(self) -> str | None: ...
    def __len__(self) -> int: ...
    def vocab(self) -> dict[str, int]: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str | None: ...
    def encode(self, text: str) -> list[int]: ...
    def encode_to_numpy(self, text: str) -> npt.NDArray[np.uint32]: ...
    def decode(self, ids: Iterable[int]) -> str: ...

def token_buffer(ids: Iterable[int]) -> npt.NDArray[np.uint32]: ...
def window_count(n_tokens: int, max_length: int, stride: int) -> int: ...

# ---- BPE training (rust/py/train.rs) ----

from collections.abc import Callable as _Callable  # noqa: E402 (this section's own import)

class BpeTrainer:
    def __init__(
        self, vocab_size: int, pat_str: str, special_tokens: Sequence[str], num_threads: int = 0
    ) -> None: ...
    @property
    def pattern(self) -> str: ...
    @property
    def num_threads(self) -> int: ...
    def stats(self) -> tuple[int, int, int]: ...
    def add_texts(self, texts: Sequence[str]) -> None: ...
    def add_files(
        self,
        paths: Sequence[str | PathLike[str]],
        progress: _Callable[[int, int], object] | None = None,
    ) -> None: ...
    def train(
        self, progress: _Callable[[int, int], object] | None = None
    ) -> tuple[list[bytes], int]: ...

def split_pieces(
    pat_str: str, text: str, special_tokens: Sequence[str] = ...
) -> list[tuple[str, bool]]: ...

# ---- corpus tokenization to token files (rust/py/corpus.rs) ----

from collections.abc import Callable as _ProgressCallable  # noqa: E402
from collections.abc import Sequence as _PathSequence  # noqa: E402

class CorpusEncoder:
    def __init__(
        self, name: str, tiktoken_bytes: bytes, special_tokens: dict[str, int], pat_str: str
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def vocab_sha256(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def eot_token(self) -> int | None: ...

def tokenize_files(
    encoder: CorpusEncoder,
    paths: _PathSequence[str],
    formats: _PathSequence[str],
    out: str,
    *,
    field: str,
    eot: bool,
    errors: str,
    num_threads: int,
    resume: bool,
    checkpoint_interval: float,
    job_bytes: int,
    progress: _ProgressCallable[[int, int, int, int], object] | None = None,
) -> str: ...
def count_files(
    encoder: CorpusEncoder,
    paths: _PathSequence[str],
    formats: _PathSequence[str],
    *,
    field: str,
    eot: bool,
    errors: str,
    num_threads: int,
    job_bytes: int,
    progress: _ProgressCallable[[int, int, int, int], object] | None = None,
) -> str: ...

# ---- Arrow columns in (rust/py/arrow.rs) ----
from typing import Any as _ArrowAny  # noqa: E402 (this section's own import)

def encode_ordinary_arrow(
    core_bpe: CoreBPE,
    column: _ArrowAny,
    eot: int | None = None,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], int]: ...
