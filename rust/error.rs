//! The one error type of the core, with its messages (tiktoken's texts, word for word, where
//! tiktoken has one) and `py_repr` for quoting values in them. A leaf: it imports nothing from
//! the crate, and it knows nothing of Python's exception classes (the bindings, `py/mod.rs`,
//! map each variant to one); nothing in the core panics on user input.

use std::fmt;

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
    /// An output path that names a directory (the OS's EISDIR).
    OutputIsDirectory(String),
    /// An output path in a directory that does not exist (the OS's ENOENT): the output, and
    /// the directory.
    OutputDirMissing { path: String, dir: String },
    /// A long run was stopped on request (Ctrl-C, SIGTERM, an exception in a progress callback).
    Interrupted,
    /// A buffer sized by the input could not be allocated (`try_reserve` failed): Python's
    /// `MemoryError`, never an abort. The text says what was being allocated.
    OutOfMemory(String),
    /// No thread could be started for a part of the work that needs one (a process or memory
    /// limit): Python's `OSError`. The text says which threads, and the OS's reason.
    ThreadStart(String),
}

pub type Result<T> = std::result::Result<T, Error>;

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
                py_repr(word)
            ),
            Error::DisallowedSpecial(token) => f.write_str(&disallowed_special_message(token)),
            Error::InvalidArgument(message) => f.write_str(message),
            Error::InvalidUtf8 { path, offset } => write!(
                f,
                "{path}: invalid UTF-8 at byte offset {offset}; fix the file, or pass \
                 errors=\"replace\" (--errors replace) to read invalid bytes as U+FFFD"
            ),
            Error::BadRecord { path, line, reason } => write!(f, "{path}, line {line}: {reason}"),
            Error::Write { path, reason } => write!(f, "cannot write {path}: {reason}"),
            Error::OutputIsDirectory(_) | Error::OutputDirMissing { .. } => {
                if let Some((_, reason, path)) = self.os_error() {
                    write!(f, "{path}: {reason}")?;
                }
                Ok(())
            }
            Error::Interrupted => f.write_str("interrupted"),
            Error::OutOfMemory(what) => write!(f, "out of memory: {what}"),
            Error::ThreadStart(what) => write!(
                f,
                "{what}; lower the thread count (set_num_threads, num_threads=, --threads) or \
                 raise the process limit"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The OS's numbers for the errors [`Error::os_error`] names (the same on Linux, macOS and
/// Windows' C runtime).
pub const ENOENT: i32 = 2;
pub const EISDIR: i32 = 21;

impl Error {
    /// For an error the OS would report with an errno about one path: the errno, the reason
    /// (without the path) and the path, so a binding can raise the OS error class it means.
    pub fn os_error(&self) -> Option<(i32, String, &str)> {
        match self {
            Error::OutputIsDirectory(path) => Some((
                EISDIR,
                "the output is a directory; name a file".into(),
                path.as_str(),
            )),
            Error::OutputDirMissing { path, dir } => Some((
                ENOENT,
                format!(
                    "the output directory {} does not exist; create it first",
                    py_repr(dir)
                ),
                path.as_str(),
            )),
            _ => None,
        }
    }
}

/// Python's `repr` of a string, for error messages that must read like tiktoken's.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// At most `max` characters of `s` (an ellipsis marks the cut), for quoting input in error
/// messages: a malformed 100 MB line must not become a 100 MB message.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}\u{2026} ({} bytes in all)", &s[..end], s.len()),
    }
}

/// Reserves room for `extra` more items in `v`, or [`Error::OutOfMemory`] naming `what`.
pub fn try_reserve<T>(v: &mut Vec<T>, extra: usize, what: &str) -> Result<()> {
    v.try_reserve_exact(extra).map_err(|_| {
        Error::OutOfMemory(format!(
            "cannot allocate {extra} x {} bytes for {what}",
            std::mem::size_of::<T>()
        ))
    })
}

/// tiktoken's message for a disallowed special token, word for word (the `Display` of
/// [`Error::DisallowedSpecial`]).
fn disallowed_special_message(token: &str) -> String {
    let r = py_repr(token);
    format!(
        "Encountered text corresponding to disallowed special token {r}.\n\
         If you want this text to be encoded as a special token, pass it to `allowed_special`, \
         e.g. `allowed_special={{{r}, ...}}`.\n\
         If you want this text to be encoded as normal text, disable the check for this token by \
         passing `disallowed_special=(enc.special_tokens_set - {{{r}}})`.\n\
         To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr("<|endoftext|>"), "'<|endoftext|>'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
    }

    #[test]
    fn clip_cuts_long_text() {
        assert_eq!(clip("abc", 3), "abc");
        let long = "x".repeat(1000);
        let clipped = clip(&long, 10);
        assert!(clipped.starts_with("xxxxxxxxxx\u{2026}"));
        assert!(clipped.ends_with("(1000 bytes in all)"));
        let mut v: Vec<u64> = Vec::new();
        assert!(matches!(
            try_reserve(&mut v, usize::MAX / 2, "test"),
            Err(Error::OutOfMemory(_))
        ));
    }

    #[test]
    fn disallowed_special_reads_like_tiktoken() {
        let message = Error::DisallowedSpecial("<|endoftext|>".into()).to_string();
        assert!(message.starts_with(
            "Encountered text corresponding to disallowed special token '<|endoftext|>'.\n"
        ));
        assert!(message.ends_with("pass `disallowed_special=()`.\n"));
    }
}
