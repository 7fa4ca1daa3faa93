//! The one error type of the core. The Python bindings map each variant to one exception class
//! (`ValueError`, `KeyError` or `OSError`); nothing in the core panics on user input.

use std::fmt;

/// Which Python exception class an [`Error`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Value,
    Key,
    Os,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `pat_str` does not compile.
    InvalidPattern { pattern: String, reason: String },
    /// The regex engine gave up on an input (backtracking limit).
    PatternFailed { pattern: String, reason: String },
    /// A vocabulary file has a malformed line.
    VocabFormat {
        source: String,
        line: usize,
        reason: String,
    },
    /// A vocabulary (from a file or from Python) is inconsistent as a whole.
    InvalidVocab { source: String, reason: String },
    /// A bundled or expected checksum does not match.
    ChecksumMismatch {
        source: String,
        expected: String,
        actual: String,
    },
    /// Reading a file failed.
    Io { path: String, reason: String },
    /// A token id that is not in the vocabulary was given to a decoder.
    InvalidToken(u32),
    /// A single token id that is not in the vocabulary (tiktoken's `KeyError(str(id))`).
    NoSuchToken(u32),
    /// `encode_single_token` was given bytes that are not one token.
    NotAToken(Vec<u8>),
    /// A word outside the vocabulary of a `SimpleTokenizer` without an unknown token (the book's
    /// `SimpleTokenizerV1` raises `KeyError` too).
    UnknownWord(String),
    /// Text contains a special token that the caller did not allow.
    DisallowedSpecial(String),
    /// Any other bad argument, with a message that names it.
    InvalidArgument(String),
    /// Input text that is not UTF-8 (with `errors="strict"`): the file and the byte offset of the
    /// first invalid byte (in the decompressed stream for `.gz`/`.zst` files).
    InvalidUtf8 { path: String, offset: u64 },
    /// A JSONL line that is not a JSON object with the wanted string field (line numbers from 1).
    BadRecord {
        path: String,
        line: u64,
        reason: String,
    },
    /// Writing a file failed (full disk, permissions, ...).
    Write { path: String, reason: String },
    /// A long run was stopped on request (Ctrl-C, SIGTERM, an exception in a progress callback).
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidToken(_)
            | Error::NoSuchToken(_)
            | Error::NotAToken(_)
            | Error::UnknownWord(_) => ErrorKind::Key,
            Error::Io { .. } => ErrorKind::Os,
            Error::Write { .. } => ErrorKind::Os,
            _ => ErrorKind::Value,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPattern { pattern, reason } => write!(
                f,
                "invalid pat_str {pattern:?}: {reason}. Pass a valid regular expression or one of \
                 the known pattern names 'r50k', 'cl100k', 'o200k'"
            ),
            Error::PatternFailed { pattern, reason } => {
                write!(
                    f,
                    "pre-tokenizer pattern {pattern:?} failed on this input: {reason}"
                )
            }
            Error::VocabFormat {
                source,
                line,
                reason,
            } => {
                write!(f, "{source}, line {line}: {reason}")
            }
            Error::InvalidVocab { source, reason } => write!(f, "{source}: {reason}"),
            Error::ChecksumMismatch {
                source,
                expected,
                actual,
            } => write!(
                f,
                "{source}: sha256 is {actual}, expected {expected}; the file is corrupt or not the \
                 vocabulary it claims to be (reinstall fastllm or pass the right file)"
            ),
            Error::Io { path, reason } => write!(f, "cannot read {path}: {reason}"),
            Error::InvalidToken(token) => write!(f, "Invalid token for decoding: {token}"),
            Error::NoSuchToken(token) => write!(f, "{token}"),
            Error::NotAToken(bytes) => write!(f, "{bytes:?} is not a single token"),
            Error::UnknownWord(word) => write!(
                f,
                "{} is not in the vocabulary and this SimpleTokenizer has unk_token=None; add the \
                 word to the vocabulary or build the tokenizer with unk_token='<|unk|>'",
                crate::encoding::py_repr(word)
            ),
            Error::DisallowedSpecial(token) => write!(
                f,
                "Encountered text corresponding to disallowed special token {token:?}"
            ),
            Error::InvalidArgument(message) => f.write_str(message),
            Error::InvalidUtf8 { path, offset } => write!(
                f,
                "{path}: invalid UTF-8 at byte offset {offset}; fix the file, or pass \
                 errors=\"replace\" (--errors replace) to read invalid bytes as U+FFFD"
            ),
            Error::BadRecord { path, line, reason } => write!(f, "{path}, line {line}: {reason}"),
            Error::Write { path, reason } => write!(f, "cannot write {path}: {reason}"),
            Error::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}
