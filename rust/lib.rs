//! fastllm's Rust core: exact tiktoken-compatible byte-pair encoding and the data path of a
//! GPT-style LLM built from scratch. Nothing here depends on Python; `py` (behind the `python`
//! feature) is the one module that talks to pyo3.

pub mod bpe;
pub mod corpus;
pub mod encoding;
pub mod error;
pub mod flat;
pub mod hint;
pub mod parallel;
pub mod pretok;
pub mod simple;
pub mod train;
pub mod vocab;
pub mod windows;

#[cfg(feature = "python")]
mod py;

pub use encoding::CoreBpe;
pub use error::{Error, Result};
pub use vocab::{Rank, Ranks};
