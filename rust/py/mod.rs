//! The Python bindings: the only module that uses pyo3. It converts types, releases the GIL around
//! the core's work, and maps the core's one error type to Python exceptions.

mod arrow;
mod corpus;
mod data;
mod encoding;
mod train;

use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::encoding::disallowed_special_message;
use crate::error::{Error, ErrorKind};

impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        match error {
            Error::DisallowedSpecial(token) => {
                PyValueError::new_err(disallowed_special_message(&token))
            }
            // tiktoken raises KeyError(b"...") with the bytes themselves.
            Error::NotAToken(bytes) => PyKeyError::new_err(bytes),
            other => {
                let message = other.to_string();
                match other.kind() {
                    ErrorKind::Value => PyValueError::new_err(message),
                    ErrorKind::Key => PyKeyError::new_err(message),
                    ErrorKind::Os => PyOSError::new_err(message),
                }
            }
        }
    }
}

#[pymodule]
fn _fastllm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("R50K_PATTERN", crate::patterns::R50K)?;
    m.add("CL100K_PATTERN", crate::patterns::CL100K)?;
    m.add("O200K_PATTERN", crate::patterns::O200K)?;
    encoding::register(m)?;
    arrow::register(m)?;
    corpus::register(m)?;
    data::register(m)?;
    train::register(m)?;
    Ok(())
}
