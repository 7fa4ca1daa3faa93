//! The one way the bindings call into Python from Rust work that runs with the GIL released
//! (progress callbacks of corpus runs and training, and Ctrl-C).
//!
//! [`run_detached`] releases the GIL and hands the work a [`Caller`]; each [`Caller::call`] takes
//! the GIL back, checks for signals (so Ctrl-C raises `KeyboardInterrupt`), and calls the
//! callback, if there is one. A Python exception from either is kept and stops the work with
//! [`Error::Interrupted`]; `run_detached` then raises that exception, not the placeholder.

use pyo3::call::PyCallArgs;
use pyo3::prelude::*;

use crate::error::{Error, Result};

/// Calls back into Python from detached work; see the module notes.
pub(super) struct Caller<'a> {
    callback: Option<&'a Py<PyAny>>,
    raised: Option<PyErr>,
}

impl Caller<'_> {
    /// Takes the GIL, checks for Ctrl-C and calls the callback with `args`.
    pub(super) fn call<A>(&mut self, args: A) -> Result<()>
    where
        A: for<'py> PyCallArgs<'py>,
    {
        let callback = self.callback;
        Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(callback) = callback {
                callback.call1(py, args)?;
            }
            Ok(())
        })
        .map_err(|err| {
            self.raised = Some(err);
            Error::Interrupted
        })
    }
}

/// Runs `work` with the GIL released, giving it a [`Caller`] for `callback`. A Python exception
/// raised through the caller is raised here; otherwise the work's own error is.
pub(super) fn run_detached<T: Send>(
    py: Python<'_>,
    callback: Option<&Py<PyAny>>,
    work: impl FnOnce(&mut Caller<'_>) -> Result<T> + Send,
) -> PyResult<T> {
    let mut caller = Caller {
        callback,
        raised: None,
    };
    let result = py.detach(|| work(&mut caller));
    match caller.raised {
        Some(err) => Err(err),
        None => Ok(result?),
    }
}
