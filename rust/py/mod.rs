//! The Python bindings: the only module that uses pyo3. It converts types (`convert`), releases
//! the GIL around the core's work and calls back into Python from it (`callback`), and maps the
//! core's one error type to Python exceptions (here); then one file per exposed concept.

mod arrow;
mod callback;
mod convert;
mod corpus;
mod data;
mod encoding;
mod train;

use pyo3::exceptions::{PyKeyError, PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

/// The one place where the core's errors become Python exceptions: `KeyError` for a token or
/// word that is not in a vocabulary (as tiktoken and the book's tokenizers raise), `OSError` for
/// reading and writing files (with its errno subclass where the core names one), `MemoryError` for a failed allocation, `ValueError` for everything else. The message is the error's
/// `Display`, except that tiktoken raises `KeyError(bytes)` with the bytes themselves.
impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        match error {
            Error::NotAToken(bytes) => PyKeyError::new_err(bytes),
            Error::InvalidToken(_) | Error::NoSuchToken(_) | Error::UnknownWord(_) => {
                PyKeyError::new_err(error.to_string())
            }
            Error::Io { .. } | Error::Write { .. } | Error::ThreadStart(_) => {
                PyOSError::new_err(error.to_string())
            }
            // OSError(errno, reason, path) is the subclass of the errno (FileNotFoundError,
            // IsADirectoryError), with `strerror` and `filename` set.
            Error::OutputIsDirectory(_) | Error::OutputDirMissing { .. } => {
                match error.os_error() {
                    Some((errno, reason, path)) => {
                        PyOSError::new_err((errno, reason, path.to_string()))
                    }
                    None => PyOSError::new_err(error.to_string()),
                }
            }
            Error::OutOfMemory(_) => PyMemoryError::new_err(error.to_string()),
            Error::InvalidPattern { .. }
            | Error::PatternFailed { .. }
            | Error::VocabFormat { .. }
            | Error::InvalidVocab { .. }
            | Error::ChecksumMismatch { .. }
            | Error::DisallowedSpecial(_)
            | Error::InvalidArgument(_)
            | Error::InvalidUtf8 { .. }
            | Error::BadRecord { .. }
            | Error::Interrupted => PyValueError::new_err(error.to_string()),
        }
    }
}

#[pymodule]
fn _fastllm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("R50K_PATTERN", crate::pretok::patterns::R50K)?;
    m.add("CL100K_PATTERN", crate::pretok::patterns::CL100K)?;
    m.add("O200K_PATTERN", crate::pretok::patterns::O200K)?;
    encoding::register(m)?;
    arrow::register(m)?;
    corpus::register(m)?;
    data::register(m)?;
    train::register(m)?;
    Ok(())
}
