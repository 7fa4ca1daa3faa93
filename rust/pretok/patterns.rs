//! The pre-tokenizer patterns of OpenAI's encodings, and their short names.

/// GPT-2 / r50k_base / p50k_base.
pub const R50K: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";

/// cl100k_base.
pub const CL100K: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// o200k_base.
pub const O200K: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+(?!\S)",
    r"|\s+",
);

/// Resolves a short name (`"r50k"`, `"gpt2"`, `"cl100k"`, `"o200k"`, with or without `_base`) to
/// its pattern; any other string is returned as given (a pattern in its own right).
pub fn resolve(name_or_pattern: &str) -> &str {
    match name_or_pattern {
        "r50k" | "r50k_base" | "gpt2" | "p50k" | "p50k_base" => R50K,
        "cl100k" | "cl100k_base" => CL100K,
        "o200k" | "o200k_base" => O200K,
        other => other,
    }
}
