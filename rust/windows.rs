//! Window arithmetic for the book's input/target pairs (chapter 2, `GPTDatasetV1`).
//!
//! The book makes one window per start in `range(0, len(ids) - max_length, stride)`: window `i`
//! is `ids[i*stride : i*stride + max_length]` and its target is the same slice shifted by one.
//! Every window is therefore full length, and the last target ends at most at `len(ids)`. The
//! Python side turns this arithmetic into two strided views on one buffer; nothing is copied.

use crate::error::{Error, Result};

/// The validated shape of a set of windows over `n_tokens` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub n_tokens: usize,
    pub max_length: usize,
    pub stride: usize,
    pub n_windows: usize,
}

/// The number of windows the book's `GPTDatasetV1` makes: `len(range(0, n_tokens - max_length,
/// stride))` (0 when `n_tokens <= max_length`).
pub fn book_window_count(n_tokens: usize, max_length: usize, stride: usize) -> usize {
    if stride == 0 || n_tokens <= max_length {
        return 0;
    }
    (n_tokens - max_length).div_ceil(stride)
}

/// Checks the arguments of `sliding_windows` and returns the windows' shape. Errors name the
/// argument, its value and what to do.
pub fn window_spec(n_tokens: usize, max_length: i64, stride: i64) -> Result<WindowSpec> {
    if max_length < 1 {
        return Err(Error::InvalidArgument(format!(
            "max_length must be a positive integer (the number of tokens per window), got \
             {max_length}"
        )));
    }
    if stride < 1 {
        return Err(Error::InvalidArgument(format!(
            "stride must be a positive integer (the step between window starts), got {stride}"
        )));
    }
    // Positive i64 values fit usize on 64-bit targets; saturate elsewhere.
    let max_length = usize::try_from(max_length).unwrap_or(usize::MAX);
    let stride = usize::try_from(stride).unwrap_or(usize::MAX);
    if n_tokens <= max_length {
        let needed = max_length.saturating_add(1);
        return Err(Error::InvalidArgument(format!(
            "ids has {n_tokens} tokens, too few for max_length={max_length}: one window and its \
             shifted target need max_length + 1 = {needed} tokens; use more text or a smaller \
             max_length"
        )));
    }
    Ok(WindowSpec {
        n_tokens,
        max_length,
        stride,
        n_windows: book_window_count(n_tokens, max_length, stride),
    })
}

/// A token id as a `u32` (the compact buffer a Python list becomes), or an error naming the
/// position and value.
pub fn token_u32(index: usize, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| token_out_of_range(index, &value.to_string(), value < 0))
}

/// The error for `ids[index] = value` outside `0..=u32::MAX` (`value` as Python prints it).
pub fn token_out_of_range(index: usize, value: &str, negative: bool) -> Error {
    if negative {
        Error::InvalidArgument(format!(
            "ids[{index}] = {value} is negative; token ids must be in 0..={}",
            u32::MAX
        ))
    } else {
        Error::InvalidArgument(format!(
            "ids[{index}] = {value} does not fit uint32 (token ids must be in 0..={}); pass a \
             NumPy int64 array if you really need such ids",
            u32::MAX
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len(range(0, n - max_length, stride))` the slow way.
    fn reference(n: usize, max_length: usize, stride: usize) -> usize {
        if n <= max_length {
            return 0;
        }
        (0..n - max_length).step_by(stride).count()
    }

    #[test]
    fn counts_like_the_book() {
        for n in 0..60 {
            for max_length in 1..12 {
                for stride in 1..15 {
                    assert_eq!(
                        book_window_count(n, max_length, stride),
                        reference(n, max_length, stride),
                        "n={n} max_length={max_length} stride={stride}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_window_and_target_fit() -> Result<()> {
        for n in 2..50 {
            for max_length in 1..n {
                for stride in 1..10 {
                    let spec = window_spec(n, max_length as i64, stride as i64)?;
                    let last = (spec.n_windows - 1) * stride;
                    // The last target fits; one more window would not.
                    assert_eq!((last + max_length + 1).max(n), n);
                    assert_eq!((last + stride + max_length).min(n), n);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bad_arguments_are_named() {
        let msg = |r: Result<WindowSpec>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(window_spec(10, 0, 1)),
            "max_length must be a positive integer (the number of tokens per window), got 0"
        );
        assert_eq!(
            msg(window_spec(10, 4, -2)),
            "stride must be a positive integer (the step between window starts), got -2"
        );
        assert_eq!(
            msg(window_spec(4, 4, 1)),
            "ids has 4 tokens, too few for max_length=4: one window and its shifted target need \
             max_length + 1 = 5 tokens; use more text or a smaller max_length"
        );
        assert_eq!(window_spec(5, 4, 1).map(|s| s.n_windows), Ok(1));
        assert_eq!(token_u32(3, -1).ok(), None);
        assert_eq!(token_u32(3, 1 << 32).ok(), None);
        assert_eq!(token_u32(3, 50256), Ok(50256));
    }
}
