//! What an encoder thread does with a job: decode the bytes (strict or with U+FFFD), pull the text
//! field out of JSONL records, encode, append end-of-text tokens, and lay the tokens out in the
//! output's dtype.

use std::borrow::Cow;

use crate::bpe::PieceMemo;
use crate::encoding::CoreBpe;
use crate::error::{Error, Result};
use crate::vocab::Rank;

use super::source::{Job, Segment};
use super::{Dtype, Format, Input, Settings};

/// Tokens, documents and text bytes of one file within a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCount {
    pub tokens: u64,
    pub documents: u64,
    pub text_bytes: u64,
}

/// An encoded job.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The tokens in the output dtype, little-endian (empty when only counting).
    pub bytes: Vec<u8>,
    pub tokens: u64,
    /// Where each document starts, in tokens from the job's first token.
    pub doc_starts: Vec<u64>,
    /// Per file, in order (a file can span jobs).
    pub files: Vec<(usize, FileCount)>,
    /// Invalid UTF-8 sequences replaced by U+FFFD.
    pub replaced: u64,
}

impl Encoded {
    fn add(&mut self, file: usize, add: FileCount) {
        match self.files.last_mut() {
            Some((f, count)) if *f == file => {
                count.tokens += add.tokens;
                count.documents += add.documents;
                count.text_bytes += add.text_bytes;
            }
            _ => self.files.push((file, add)),
        }
    }
}

/// `bytes` as text: borrowed when valid UTF-8; otherwise an error naming the file and offset
/// (strict) or a copy with each invalid sequence replaced by U+FFFD, as Python's
/// `errors="replace"` does (counted in `replaced`).
fn decode<'a>(
    bytes: &'a [u8],
    replace: bool,
    input: &Input,
    offset: u64,
    replaced: &mut u64,
) -> Result<Cow<'a, str>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(e) if !replace => Err(Error::InvalidUtf8 {
            path: input.display(),
            offset: offset + e.valid_up_to() as u64,
        }),
        Err(_) => {
            *replaced += bytes
                .utf8_chunks()
                .filter(|chunk| !chunk.invalid().is_empty())
                .count() as u64;
            Ok(String::from_utf8_lossy(bytes))
        }
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The string `field` of the JSON object on one line.
fn record_text(line: &str, field: &str, input: &Input, line_no: u64) -> Result<String> {
    let bad = |reason: String| Error::BadRecord {
        path: input.display(),
        line: line_no,
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(bad(format!(
            "expected a JSON object with a {field:?} field, found {}",
            json_type(&value)
        )));
    };
    match map.remove(field) {
        Some(serde_json::Value::String(text)) => Ok(text),
        Some(other) => Err(bad(format!(
            "field {field:?} is {}, expected a string",
            json_type(&other)
        ))),
        None => {
            let mut keys: Vec<String> = map.keys().take(8).map(|k| format!("{k:?}")).collect();
            if map.len() > keys.len() {
                keys.push("...".into());
            }
            let found = if keys.is_empty() {
                "the object is empty".to_string()
            } else {
                format!("found {}", keys.join(", "))
            };
            Err(bad(format!(
                "no {field:?} field ({found}); pick the text field with --field / field="
            )))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn encode_segment(
    bpe: &CoreBpe,
    settings: &Settings,
    input: &Input,
    segment: &Segment,
    bytes: &[u8],
    tokens: &mut Vec<Rank>,
    memo: &mut PieceMemo,
    out: &mut Encoded,
) -> Result<()> {
    let replace = settings.replace_errors;
    let before = tokens.len();
    let mut documents = 0u64;
    match segment.format {
        Format::Text => {
            if segment.starts_doc {
                out.doc_starts.push(tokens.len() as u64);
                documents += 1;
            }
            let text = decode(bytes, replace, input, segment.offset, &mut out.replaced)?;
            bpe.encode_ordinary_with(&text, memo, tokens)?;
            if segment.ends_doc {
                tokens.extend(settings.eot);
            }
        }
        Format::Jsonl => {
            let mut offset = segment.offset;
            for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
                let line_offset = offset;
                offset += raw.len() as u64 + 1;
                if raw.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let line_no = segment.line + i as u64;
                let line = decode(raw, replace, input, line_offset, &mut out.replaced)?;
                // A byte order mark at the start of the file is not part of the JSON.
                let json = match line_offset {
                    0 => line.strip_prefix('\u{feff}').unwrap_or(&line),
                    _ => &line,
                };
                let text = record_text(json, &settings.field, input, line_no)?;
                out.doc_starts.push(tokens.len() as u64);
                documents += 1;
                bpe.encode_ordinary_with(&text, memo, tokens)?;
                tokens.extend(settings.eot);
            }
        }
        Format::Parquet => {
            let mut start = 0usize;
            for (i, &end) in segment.rows.iter().enumerate() {
                let doc = bytes.get(start..end).unwrap_or_default();
                let row = segment.offset + i as u64;
                // Arrow checked the column's UTF-8 when it was read; this only borrows it.
                let text = decode(doc, replace, input, row, &mut out.replaced)?;
                out.doc_starts.push(tokens.len() as u64);
                documents += 1;
                bpe.encode_ordinary_with(&text, memo, tokens)?;
                tokens.extend(settings.eot);
                start = end;
            }
        }
    }
    let count = FileCount {
        tokens: (tokens.len() - before) as u64,
        documents,
        text_bytes: bytes.len() as u64,
    };
    out.add(segment.file, count);
    Ok(())
}

/// Encodes a job; `dtype` None only counts. `tokens` is the thread's scratch buffer (kept
/// between jobs, so its pages are not faulted in again for every job).
pub fn encode_job(
    bpe: &CoreBpe,
    settings: &Settings,
    inputs: &[Input],
    job: &Job,
    dtype: Option<Dtype>,
    tokens: &mut Vec<Rank>,
) -> Result<Encoded> {
    let mut out = Encoded::default();
    tokens.clear();
    // One piece memo for the whole job, not one per document: a JSONL line or Parquet row of a
    // few KB would start it empty every time (non-Latin batches cost 1.4x the CPU that way).
    let mut memo = PieceMemo::default();
    for segment in &job.segments {
        let (Some(input), Some(bytes)) = (
            inputs.get(segment.file),
            job.data.get(segment.start..segment.end),
        ) else {
            return Err(Error::InvalidArgument(
                "internal error: a segment outside its job".into(),
            ));
        };
        encode_segment(
            bpe, settings, input, segment, bytes, tokens, &mut memo, &mut out,
        )?;
    }
    lay_out(tokens, dtype, &mut out)?;
    Ok(out)
}

/// Encodes one whole text or JSONL file whose (decompressed) bytes are `bytes`, as a run reading
/// the file encodes it (one segment: the same decode, records and errors; a text document cut at
/// safe cuts encodes to the same tokens): what a Ray actor does with a file read for it.
pub fn encode_file(
    bpe: &CoreBpe,
    settings: &Settings,
    input: &Input,
    bytes: &[u8],
    dtype: Dtype,
) -> Result<Encoded> {
    if input.format == Format::Parquet {
        return Err(Error::InvalidArgument(format!(
            "{}: a Parquet file is read by columns, not as one file's bytes",
            input.display()
        )));
    }
    let segment = Segment {
        file: 0,
        start: 0,
        end: bytes.len(),
        format: input.format,
        offset: 0,
        line: 1,
        starts_doc: true,
        ends_doc: true,
        rows: Vec::new(),
    };
    let mut out = Encoded::default();
    let mut tokens = Vec::new();
    let mut memo = PieceMemo::default();
    encode_segment(
        bpe,
        settings,
        input,
        &segment,
        bytes,
        &mut tokens,
        &mut memo,
        &mut out,
    )?;
    lay_out(&tokens, Some(dtype), &mut out)?;
    Ok(out)
}

/// `tokens` laid out in `dtype` (little-endian) into `out.bytes`; None only counts them.
fn lay_out(tokens: &[Rank], dtype: Option<Dtype>, out: &mut Encoded) -> Result<()> {
    out.tokens = tokens.len() as u64;
    // Fixed-size chunks: the compiler vectorizes these loops.
    let size = tokens.len() * dtype.map_or(0, |d| d.itemsize() as usize);
    out.bytes
        .try_reserve_exact(size)
        .map_err(|_| Error::OutOfMemory(format!("cannot allocate {size} bytes for tokens")))?;
    out.bytes.resize(size, 0);
    match dtype {
        Some(Dtype::U16) => {
            for (dst, &t) in out.bytes.chunks_exact_mut(2).zip(tokens.iter()) {
                dst.copy_from_slice(&(t as u16).to_le_bytes());
            }
        }
        Some(Dtype::U32) => {
            for (dst, &t) in out.bytes.chunks_exact_mut(4).zip(tokens.iter()) {
                dst.copy_from_slice(&t.to_le_bytes());
            }
        }
        None => {}
    }
    Ok(())
}
