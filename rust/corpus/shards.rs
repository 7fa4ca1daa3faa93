//! Trainer-ready output: numbered token shards (flat, or llm.c's 256-int32 header) and a
//! manifest. One [`ShardWriter`] writes them for the local pipeline (`fastllm tokenize
//! --shard-tokens/--val-tokens/--layout`) and for Python callers (`fastllm._fastllm.ShardWriter`,
//! fed whole documents, e.g. by a Ray Data pipeline), so both give the same bytes.
//!
//! For the output `DIR/NAME.bin` the shards are `DIR/NAME_val_000000.bin` (with a validation
//! shard), then `DIR/NAME_train_00000k.bin`, each with an index `SHARD.idx` (`uint64` token
//! offsets where each document starting in the shard starts, then the shard's token count),
//! and the manifest `DIR/NAME.manifest.json`: the shards in order with their token and document
//! counts and sha256, the encoding's identity and the settings.
//!
//! llm.c layout (`dev/data/data_common.py`): a header of 256 little-endian int32, `header[0]` the
//! magic (20240520 for uint16 tokens, version 1; 20240801 for uint32 tokens, version 7),
//! `header[1]` the version, `header[2]` the token count; the tokens follow.
//!
//! A document is not split across shards unless it is longer than a shard: when one would
//! overflow the current shard, the shard ends before it and its tokens written so far move to
//! the next one (copied from the file, so memory stays bounded); a document longer than a shard
//! fills shards from the start of a fresh one (the next shard's index then has no entry for the
//! continued document's tokens at its start).
//!
//! Each shard is written as `SHARD.partial`; when complete, its header is patched, it is synced,
//! hashed, its index is written and synced, and only then is it renamed into place (index first,
//! token file last: a token file under its final name always has its index). The manifest is
//! written last, when every shard is complete.
//!
//! Design notes: [`Sharded`] is this output for the run driver (`super::drive`, shared with the
//! single token file), [`ShardWriter`] its sink; the journal (`NAME.manifest.partial.json`)
//! adds the complete shards and the state of the open one to the driver's position and counts.
//! The sizes are checked here once (`ShardSpec::check`, `bad_size`); the bindings only convert.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{py_repr, Error, Result};
use crate::vocab::Rank;

use super::output::{self, sync_dir, with_suffix, write_error, Counts};
use super::{Dtype, Encoder, Settings};

/// llm.c's header: 256 int32.
pub const LLMC_HEADER_BYTES: u64 = 256 * 4;
pub const LLMC_MAGIC_U16: i32 = 20240520;
pub const LLMC_VERSION_U16: i32 = 1;
pub const LLMC_MAGIC_U32: i32 = 20240801;
pub const LLMC_VERSION_U32: i32 = 7;
pub const MANIFEST_KIND: &str = "fastllm-token-shards";

/// How each shard file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Tokens only, little-endian (nanoGPT's `.bin`).
    Flat,
    /// llm.c's 256-int32 header, then the tokens.
    Llmc,
}

impl Layout {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "flat" => Ok(Layout::Flat),
            "llmc" => Ok(Layout::Llmc),
            other => Err(Error::InvalidArgument(format!(
                "layout must be one of 'flat', 'llmc', got {}",
                py_repr(other)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Flat => "flat",
            Layout::Llmc => "llmc",
        }
    }

    fn header_bytes(self) -> u64 {
        match self {
            Layout::Flat => 0,
            Layout::Llmc => LLMC_HEADER_BYTES,
        }
    }
}

/// How the output is cut into shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub layout: Layout,
    /// Tokens per shard (None: one train shard).
    pub shard_tokens: Option<u64>,
    /// Tokens of the first shard, the validation shard (None: no validation shard).
    pub val_tokens: Option<u64>,
}

/// The error for a shard size `name` that is not a whole number of tokens >= 1 (`shown` as
/// given): the one text, for the core's check and the bindings' conversion.
pub fn bad_size(name: &str, shown: &str) -> Error {
    Error::InvalidArgument(format!(
        "{name} must be a whole number of tokens >= 1 (a shard holds whole tokens), got {shown}"
    ))
}

impl ShardSpec {
    /// No shards: one flat token file.
    pub fn unsharded() -> Self {
        ShardSpec {
            layout: Layout::Flat,
            shard_tokens: None,
            val_tokens: None,
        }
    }

    /// Whether this spec asks for shards at all (else: one flat token file).
    pub fn sharded(&self) -> bool {
        self.layout != Layout::Flat || self.shard_tokens.is_some() || self.val_tokens.is_some()
    }

    /// Checks the sizes against the layout and dtype; `out` names the output in messages.
    pub fn check(&self, out: &Path, dtype: Dtype, max_token: Rank) -> Result<()> {
        let bad = |what: String| Error::InvalidArgument(format!("{}: {what}", out.display()));
        for (name, value) in [
            ("shard_tokens", self.shard_tokens),
            ("val_tokens", self.val_tokens),
        ] {
            if value == Some(0) {
                return Err(bad(bad_size(name, "0").to_string()));
            }
            if self.layout == Layout::Llmc && value.is_some_and(|v| v > i32::MAX as u64) {
                return Err(bad(format!(
                    "{name} = {} does not fit llm.c's int32 token count in the shard header \
                     (at most {})",
                    value.unwrap_or(0),
                    i32::MAX
                )));
            }
        }
        let dtype_max = match dtype {
            Dtype::U16 => u16::MAX as u64,
            Dtype::U32 => u32::MAX as u64,
        };
        if u64::from(max_token) > dtype_max {
            return Err(bad(format!(
                "the vocabulary's largest token id {max_token} does not fit the {} tokens of \
                 the {} layout",
                dtype.name(),
                self.layout.name()
            )));
        }
        Ok(())
    }

    fn capacity(&self, shard: usize) -> u64 {
        match (shard, self.val_tokens) {
            (0, Some(val)) => val,
            _ => self.shard_tokens.unwrap_or(u64::MAX),
        }
    }

    fn split(&self, shard: usize) -> &'static str {
        if shard == 0 && self.val_tokens.is_some() {
            "val"
        } else {
            "train"
        }
    }
}

/// Where the shards of the output `out` go.
#[derive(Clone, Debug)]
pub struct ShardNames {
    dir: PathBuf,
    prefix: String,
    ext: String,
}

impl ShardNames {
    pub fn new(out: &Path) -> Self {
        let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (prefix, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
            _ => (name, ".bin".to_string()),
        };
        ShardNames { dir, prefix, ext }
    }

    pub fn shard(&self, index: usize, split: &str) -> PathBuf {
        self.dir
            .join(format!("{}_{split}_{index:06}{}", self.prefix, self.ext))
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest.json", self.prefix))
    }

    /// Partial shard files left in the directory under these names.
    pub fn partials(&self) -> Vec<PathBuf> {
        let dir = if self.dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.dir.as_path()
        };
        let start = format!("{}_", self.prefix);
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&start)
                    && (name.ends_with(".partial") || name.ends_with(".partial.move"))
            })
            .map(|e| self.dir.join(e.file_name()))
            .collect()
    }

    pub fn journal(&self) -> PathBuf {
        self.dir
            .join(format!("{}.manifest.partial.json", self.prefix))
    }
}

/// The index file of a shard.
pub fn index_of(shard: &Path) -> PathBuf {
    with_suffix(shard, ".idx")
}

/// One complete shard, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardEntry {
    pub path: PathBuf,
    pub split: &'static str,
    pub tokens: u64,
    pub documents: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl ShardEntry {
    pub fn to_json(&self) -> Value {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        json!({
            "file": name(&self.path),
            "index": name(&index_of(&self.path)),
            "split": self.split,
            "tokens": self.tokens,
            "documents": self.documents,
            "bytes": self.bytes,
            "sha256": self.sha256,
        })
    }

    fn from_json(v: &Value, names: &ShardNames, index: usize) -> Option<Self> {
        let split = match v.get("split")?.as_str()? {
            "val" => "val",
            _ => "train",
        };
        Some(ShardEntry {
            path: names.shard(index, split),
            split,
            tokens: v.get("tokens")?.as_u64()?,
            documents: v.get("documents")?.as_u64()?,
            bytes: v.get("bytes")?.as_u64()?,
            sha256: v.get("sha256")?.as_str()?.to_string(),
        })
    }
}

/// The shard being written.
struct Current {
    index: usize,
    path: PathBuf,
    partial: PathBuf,
    file: BufWriter<File>,
    tokens: u64,
    /// Where each document starting here starts (tokens from the shard's start).
    doc_starts: Vec<u64>,
    /// Where the document being written started here (None: it began in an earlier shard).
    open_doc: Option<u64>,
}

/// The state of the shard being written, as a checkpoint keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardState {
    pub tokens: u64,
    pub doc_starts: Vec<u64>,
    pub open_doc: Option<u64>,
}

/// Writes the token stream into shards; see the module notes.
pub struct ShardWriter {
    spec: ShardSpec,
    names: ShardNames,
    dtype: Dtype,
    done: Vec<ShardEntry>,
    current: Option<Current>,
    tokens: u64,
    documents: u64,
}

impl ShardWriter {
    /// A writer starting with shard 0 (earlier partial files of the same names are replaced).
    pub fn create(out: &Path, spec: ShardSpec, dtype: Dtype) -> Result<Self> {
        Self::resume(out, spec, dtype, Vec::new(), None)
    }

    /// A writer going on after the complete shards `done`, with the shard being written at
    /// `state` (its partial file truncated to it).
    pub fn resume(
        out: &Path,
        spec: ShardSpec,
        dtype: Dtype,
        done: Vec<ShardEntry>,
        state: Option<ShardState>,
    ) -> Result<Self> {
        let tokens = done.iter().map(|e| e.tokens).sum();
        let documents = done.iter().map(|e| e.documents).sum();
        let mut writer = ShardWriter {
            spec,
            names: ShardNames::new(out),
            dtype,
            done,
            current: None,
            tokens,
            documents,
        };
        if let Some(state) = state {
            writer.tokens += state.tokens;
            writer.documents += state.doc_starts.len() as u64;
            writer.open_shard(Some(state))?;
        }
        Ok(writer)
    }

    pub fn names(&self) -> &ShardNames {
        &self.names
    }

    pub fn spec(&self) -> &ShardSpec {
        &self.spec
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// The complete shards so far.
    pub fn done(&self) -> &[ShardEntry] {
        &self.done
    }

    fn itemsize(&self) -> u64 {
        self.dtype.itemsize()
    }

    fn open_shard(&mut self, state: Option<ShardState>) -> Result<()> {
        let index = self.done.len();
        let split = self.spec.split(index);
        let path = self.names.shard(index, split);
        let partial = with_suffix(&path, ".partial");
        let header = self.spec.layout.header_bytes();
        let state = state.unwrap_or_default();
        let len = header + state.tokens * self.itemsize();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&partial)
            .map_err(|e| write_error(&partial, &e))?;
        file.set_len(len).map_err(|e| write_error(&partial, &e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| write_error(&partial, &e))?;
        self.current = Some(Current {
            index,
            path,
            partial,
            file: BufWriter::with_capacity(1 << 20, file),
            tokens: state.tokens,
            doc_starts: state.doc_starts,
            open_doc: state.open_doc,
        });
        Ok(())
    }

    fn current(&mut self) -> Result<&mut Current> {
        if self.current.is_none() {
            self.open_shard(None)?;
        }
        self.current
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("internal error: no open shard".into()))
    }

    /// Appends tokens laid out in the dtype (little-endian); a document starts at each of
    /// `doc_starts` (token offsets into `bytes`, increasing); tokens before the first one
    /// continue the document being written.
    pub fn write(&mut self, bytes: &[u8], doc_starts: &[u64]) -> Result<()> {
        let size = self.itemsize() as usize;
        let n = bytes.len() / size;
        let mut at = 0usize;
        for &start in doc_starts {
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            if start < at || start > n {
                return Err(Error::InvalidArgument(format!(
                    "document offsets must increase within 0..={n}, got {start} after {at}"
                )));
            }
            if start > at {
                self.push(&bytes[at * size..start * size])?;
            }
            self.start_document()?;
            at = start;
        }
        if n > at {
            self.push(&bytes[at * size..n * size])?;
        }
        Ok(())
    }

    /// Starts a document at the current position.
    pub fn start_document(&mut self) -> Result<()> {
        let cur = self.current()?;
        cur.open_doc = Some(cur.tokens);
        cur.doc_starts.push(cur.tokens);
        self.documents += 1;
        Ok(())
    }

    /// Appends tokens of the document being written.
    pub fn push(&mut self, mut data: &[u8]) -> Result<()> {
        let size = self.itemsize();
        while !data.is_empty() {
            let index = self.current()?.index;
            let capacity = self.spec.capacity(index);
            let cur = self.current()?;
            let room = capacity.saturating_sub(cur.tokens);
            let n = data.len() as u64 / size;
            if n <= room {
                cur.file
                    .write_all(data)
                    .map_err(|e| write_error(&cur.partial, &e))?;
                cur.tokens += n;
                self.tokens += n;
                return Ok(());
            }
            match cur.open_doc {
                Some(start) if start > 0 => self.end_shard_before(start)?,
                _ => {
                    let (head, rest) = data.split_at((room * size) as usize);
                    cur.file
                        .write_all(head)
                        .map_err(|e| write_error(&cur.partial, &e))?;
                    cur.tokens += room;
                    self.tokens += room;
                    data = rest;
                    self.complete_shard()?;
                    self.open_shard(None)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the current shard before the open document starting at token `start`, moving that
    /// document's tokens written so far to the next shard.
    fn end_shard_before(&mut self, start: u64) -> Result<()> {
        let header = self.spec.layout.header_bytes();
        let size = self.itemsize();
        let (moved, partial) = {
            let cur = self.current()?;
            cur.file
                .flush()
                .map_err(|e| write_error(&cur.partial, &e))?;
            (cur.tokens - start, cur.partial.clone())
        };
        // Complete the shard at `start`, then copy the tail into the next one.
        let tmp_tail = with_suffix(&partial, ".move");
        {
            let cur = self.current()?;
            let mut out = File::create(&tmp_tail).map_err(|e| write_error(&tmp_tail, &e))?;
            let file = cur.file.get_mut();
            file.seek(SeekFrom::Start(header + start * size))
                .map_err(|e| write_error(&partial, &e))?;
            std::io::copy(&mut Read::take(&mut *file, moved * size), &mut out)
                .map_err(|e| write_error(&tmp_tail, &e))?;
            file.set_len(header + start * size)
                .map_err(|e| write_error(&partial, &e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| write_error(&partial, &e))?;
            cur.tokens = start;
            cur.doc_starts.pop();
            cur.open_doc = None;
        }
        self.tokens -= moved;
        self.documents -= 1;
        self.complete_shard()?;
        self.open_shard(None)?;
        self.start_document()?;
        let mut moved_file = File::open(&tmp_tail).map_err(|e| write_error(&tmp_tail, &e))?;
        {
            let cur = self.current()?;
            std::io::copy(&mut moved_file, &mut cur.file)
                .map_err(|e| write_error(&cur.partial, &e))?;
            cur.tokens += moved;
        }
        self.tokens += moved;
        let _ = fs::remove_file(&tmp_tail);
        Ok(())
    }

    /// Completes the current shard: header, sync, sha256, index, renames.
    fn complete_shard(&mut self) -> Result<()> {
        let Some(mut cur) = self.current.take() else {
            return Ok(());
        };
        cur.file
            .flush()
            .map_err(|e| write_error(&cur.partial, &e))?;
        let file = cur.file.get_mut();
        if self.spec.layout == Layout::Llmc {
            let header = llmc_header(self.dtype, cur.tokens)
                .map_err(|why| Error::InvalidArgument(format!("{}: {why}", cur.path.display())))?;
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&header))
                .map_err(|e| write_error(&cur.partial, &e))?;
        }
        file.sync_all().map_err(|e| write_error(&cur.partial, &e))?;
        let bytes = self.spec.layout.header_bytes() + cur.tokens * self.itemsize();
        let actual = file
            .metadata()
            .map_err(|e| write_error(&cur.partial, &e))?
            .len();
        if actual != bytes {
            return Err(Error::Write {
                path: cur.partial.display().to_string(),
                reason: format!("holds {actual} bytes, expected {bytes}"),
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| write_error(&cur.partial, &e))?;
        let sha256 = sha256_of(file).map_err(|e| write_error(&cur.partial, &e))?;
        let index = index_of(&cur.path);
        let index_partial = with_suffix(&index, ".partial");
        write_index(&index_partial, &cur.doc_starts, cur.tokens)?;
        fs::rename(&index_partial, &index).map_err(|e| write_error(&index, &e))?;
        fs::rename(&cur.partial, &cur.path).map_err(|e| write_error(&cur.path, &e))?;
        sync_dir(&cur.path);
        self.done.push(ShardEntry {
            path: cur.path,
            split: self.spec.split(cur.index),
            tokens: cur.tokens,
            documents: cur.doc_starts.len() as u64,
            bytes,
            sha256,
        });
        Ok(())
    }

    /// Syncs the shard being written; its state, for a checkpoint.
    pub fn checkpoint(&mut self) -> Result<Option<ShardState>> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(None);
        };
        cur.file
            .flush()
            .map_err(|e| write_error(&cur.partial, &e))?;
        cur.file
            .get_ref()
            .sync_data()
            .map_err(|e| write_error(&cur.partial, &e))?;
        Ok(Some(ShardState {
            tokens: cur.tokens,
            doc_starts: cur.doc_starts.clone(),
            open_doc: cur.open_doc,
        }))
    }

    /// Completes the last shard; the complete shards in order.
    pub fn finish(mut self) -> Result<Vec<ShardEntry>> {
        if self.current.is_none() && self.done.is_empty() {
            // Even an empty corpus has its (empty) first shard.
            self.open_shard(None)?;
        }
        self.complete_shard()?;
        Ok(std::mem::take(&mut self.done))
    }

    /// The manifest for `shards`, with the caller's identity fields (`encoding`, `settings`,
    /// `dtype`, ...) in `head`.
    pub fn manifest(&self, head: &Value, shards: &[ShardEntry]) -> Value {
        manifest(head, &self.spec, self.dtype, shards)
    }

    /// Removes the partial files of the shard being written (after an error, when nothing is
    /// to be resumed).
    pub fn discard(mut self) {
        if let Some(cur) = self.current.take() {
            drop(cur.file);
            let _ = fs::remove_file(&cur.partial);
            let _ = fs::remove_file(with_suffix(&cur.partial, ".move"));
        }
    }
}

/// The manifest of `shards` (see the module notes).
pub fn manifest(head: &Value, spec: &ShardSpec, dtype: Dtype, shards: &[ShardEntry]) -> Value {
    let mut m = head.clone();
    if let Value::Object(map) = &mut m {
        map.insert("kind".into(), MANIFEST_KIND.into());
        map.insert("version".into(), 1.into());
        map.insert("layout".into(), spec.layout.name().into());
        map.insert("dtype".into(), dtype.name().into());
        map.insert("header_bytes".into(), spec.layout.header_bytes().into());
        map.insert(
            "shard_tokens".into(),
            spec.shard_tokens.map_or(Value::Null, Value::from),
        );
        map.insert(
            "val_tokens".into(),
            spec.val_tokens.map_or(Value::Null, Value::from),
        );
        map.insert(
            "token_count".into(),
            shards.iter().map(|s| s.tokens).sum::<u64>().into(),
        );
        map.insert(
            "document_count".into(),
            shards.iter().map(|s| s.documents).sum::<u64>().into(),
        );
        map.insert(
            "shards".into(),
            Value::Array(shards.iter().map(ShardEntry::to_json).collect()),
        );
    }
    m
}

/// Whether a writer may go on from a checkpoint (`done`, then the shard being written at
/// `state`): each complete shard still has its size and sha256 and its index, and the partial
/// file of the shard being written holds at least `state`'s tokens (a checkpoint taken just
/// before that shard was completed and renamed is refused, never zero-filled). Returns that
/// partial file, else the reason. Used by callers resuming a [`ShardWriter`] of their own (the
/// Ray driver).
pub fn check_resumable(
    names: &ShardNames,
    spec: &ShardSpec,
    dtype: Dtype,
    done: &[ShardEntry],
    state: &ShardState,
) -> std::result::Result<PathBuf, String> {
    for entry in done {
        let name = entry.path.display();
        let mut file = File::open(&entry.path).map_err(|e| format!("{name}: {e}"))?;
        let same = file.metadata().is_ok_and(|m| m.len() == entry.bytes)
            && sha256_of(&mut file).is_ok_and(|sha| sha == entry.sha256);
        if !same {
            return Err(format!("the complete shard {name} failed its checksum"));
        }
        if !index_of(&entry.path).is_file() {
            return Err(format!("the index of the complete shard {name} is missing"));
        }
    }
    partial_holds(names, spec, dtype, done.len(), state)
}

/// The partial file of shard `index` if it holds at least `state`'s tokens, else the reason
/// (a run stopped after that shard was renamed into place but before its next checkpoint
/// leaves no partial file: going on would zero-fill it).
fn partial_holds(
    names: &ShardNames,
    spec: &ShardSpec,
    dtype: Dtype,
    index: usize,
    state: &ShardState,
) -> std::result::Result<PathBuf, String> {
    let partial = with_suffix(&names.shard(index, spec.split(index)), ".partial");
    let needed = spec.layout.header_bytes() + state.tokens * dtype.itemsize();
    let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if (state.tokens > 0 || !state.doc_starts.is_empty()) && have < needed {
        return Err(format!(
            "{} holds {have} bytes, fewer than the {needed} its checkpoint wrote",
            partial.display()
        ));
    }
    Ok(partial)
}

impl ShardState {
    /// The state as a journal keeps it (read back by [`state_from_json`]).
    pub fn to_json(&self) -> Value {
        json!({"tokens": self.tokens, "doc_starts": self.doc_starts, "open_doc": self.open_doc})
    }
}

/// The complete shards a journal or manifest lists, if each still has its size.
pub fn entries_from_json(v: &Value, names: &ShardNames) -> Option<Vec<ShardEntry>> {
    let list = v.as_array()?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let entry = ShardEntry::from_json(item, names, i)?;
        if fs::metadata(&entry.path).ok()?.len() != entry.bytes {
            return None;
        }
        out.push(entry);
    }
    Some(out)
}

/// llm.c's header for a shard of `tokens` tokens of `dtype`.
pub fn llmc_header(dtype: Dtype, tokens: u64) -> std::result::Result<Vec<u8>, String> {
    let count = i32::try_from(tokens).map_err(|_| {
        format!(
            "{tokens} tokens do not fit llm.c's int32 token count (at most {})",
            i32::MAX
        )
    })?;
    let (magic, version) = match dtype {
        Dtype::U16 => (LLMC_MAGIC_U16, LLMC_VERSION_U16),
        Dtype::U32 => (LLMC_MAGIC_U32, LLMC_VERSION_U32),
    };
    let mut header = vec![0u8; LLMC_HEADER_BYTES as usize];
    for (i, v) in [magic, version, count].into_iter().enumerate() {
        header[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(header)
}

fn sha256_of(file: &mut File) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn write_index(path: &Path, starts: &[u64], tokens: u64) -> Result<()> {
    let written = (|| {
        let mut f = BufWriter::new(File::create(path)?);
        for &s in starts.iter().chain(std::iter::once(&tokens)) {
            f.write_all(&s.to_le_bytes())?;
        }
        f.flush()?;
        f.get_ref().sync_all()
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(path);
        write_error(path, &e)
    })
}

/// Tokens of `tokens` (ids) laid out in `dtype`, or the first id that does not fit.
pub fn lay_out(tokens: &[Rank], dtype: Dtype, out: &mut Vec<u8>) -> std::result::Result<(), Rank> {
    match dtype {
        Dtype::U16 => {
            out.reserve(tokens.len() * 2);
            for &t in tokens {
                let v = u16::try_from(t).map_err(|_| t)?;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Dtype::U32 => {
            out.reserve(tokens.len() * 4);
            for &t in tokens {
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
    }
    Ok(())
}

const JOURNAL_KIND: &str = "fastllm-shards-journal";

/// What must match for a rerun of a sharded output to reuse work.
pub fn shard_identity(
    encoder: &Encoder,
    settings: &Settings,
    dtype: Dtype,
    spec: &ShardSpec,
) -> Value {
    let mut v = output::identity(encoder, settings, dtype);
    if let Value::Object(map) = &mut v {
        map.insert(
            "sharding".into(),
            json!({
                "layout": spec.layout.name(),
                "shard_tokens": spec.shard_tokens,
                "val_tokens": spec.val_tokens,
            }),
        );
    }
    v
}

/// Writes a shard manifest atomically.
pub fn write_manifest(path: &Path, manifest: &Value) -> Result<()> {
    let data = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::InvalidArgument(format!("manifest: {e}")))?;
    output::write_atomic(path, &data)
}

/// Removes what an earlier sharded run left under the names of `names` (partial shards, the
/// journal, and the shards an old manifest or journal lists), before starting over.
fn remove_old_shards(names: &ShardNames) -> Result<()> {
    let mut doomed = vec![names.journal(), names.manifest()];
    for (listing, key) in [(names.manifest(), "shards"), (names.journal(), "done")] {
        if let Some(v) = output::read_json(&listing) {
            for (i, item) in v
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let split = item.get("split").and_then(Value::as_str).unwrap_or("train");
                let path = names.shard(i, split);
                doomed.push(index_of(&path));
                doomed.push(path);
            }
        }
    }
    doomed.extend(names.partials());
    output::remove_files(doomed)
}

/// The shard being written, as a journal keeps it ([`ShardState::to_json`]); null: none.
pub fn state_from_json(v: &Value) -> Option<ShardState> {
    if v.is_null() {
        return Some(ShardState::default());
    }
    Some(ShardState {
        tokens: v.get("tokens")?.as_u64()?,
        doc_starts: v
            .get("doc_starts")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()?,
        open_doc: match v.get("open_doc")? {
            Value::Null => None,
            other => Some(other.as_u64()?),
        },
    })
}

/// Numbered shards and their manifest, as one of the run driver's outputs
/// ([`super::Output`]; the other is [`super::output::TokenFile`]).
pub struct Sharded {
    out: PathBuf,
    names: ShardNames,
    spec: ShardSpec,
    dtype: Dtype,
}

impl Sharded {
    /// The shards of `out` for `encoder`'s tokens; checks `spec` against its dtype.
    pub fn new(out: &Path, spec: ShardSpec, encoder: &Encoder) -> Result<Self> {
        let dtype = encoder.dtype();
        spec.check(out, dtype, encoder.core().max_token_value())?;
        Ok(Sharded {
            out: out.to_path_buf(),
            names: ShardNames::new(out),
            spec,
            dtype,
        })
    }
}

impl super::Output for Sharded {
    type Sink = ShardWriter;
    /// The complete shards, and the state of the one being written.
    type Resume = (Vec<ShardEntry>, ShardState);

    fn path(&self) -> PathBuf {
        self.names.manifest()
    }

    fn identity(&self, encoder: &Encoder, settings: &Settings) -> Value {
        shard_identity(encoder, settings, self.dtype, &self.spec)
    }

    fn journal(&self) -> (PathBuf, &'static str) {
        (self.names.journal(), JOURNAL_KIND)
    }

    fn up_to_date(&self, identity: &Value, inputs: &[Value]) -> Option<(Value, Vec<PathBuf>)> {
        let manifest = output::read_json(&self.names.manifest())?;
        if !output::same_run(&manifest, MANIFEST_KIND, identity, inputs) {
            return None;
        }
        let entries = entries_from_json(manifest.get("shards")?, &self.names)?;
        Some((manifest, entries.into_iter().map(|e| e.path).collect()))
    }

    fn resumable(
        &self,
        journal: &Value,
        _counts: &Counts,
    ) -> std::result::Result<Self::Resume, String> {
        let done = journal
            .get("done")
            .and_then(|d| entries_from_json(d, &self.names))
            .ok_or("a shard it completed is missing or changed")?;
        let state = journal
            .get("current")
            .and_then(state_from_json)
            .ok_or("its state of the shard being written is damaged")?;
        partial_holds(&self.names, &self.spec, self.dtype, done.len(), &state)?;
        Ok((done, state))
    }

    fn open(&self, resume: Option<Self::Resume>, _counts: &Counts) -> Result<ShardWriter> {
        match resume {
            Some((done, state)) => {
                ShardWriter::resume(&self.out, self.spec.clone(), self.dtype, done, Some(state))
            }
            None => {
                remove_old_shards(&self.names)?;
                ShardWriter::create(&self.out, self.spec.clone(), self.dtype)
            }
        }
    }

    fn finish(
        &self,
        writer: ShardWriter,
        head: Value,
        _counts: &Counts,
    ) -> Result<(Value, Vec<PathBuf>)> {
        let entries = writer.finish()?;
        let manifest = manifest(&head, &self.spec, self.dtype, &entries);
        write_manifest(&self.names.manifest(), &manifest)?;
        let _ = fs::remove_file(self.names.journal());
        Ok((manifest, entries.into_iter().map(|e| e.path).collect()))
    }
}

impl super::Sink for ShardWriter {
    fn write(&mut self, bytes: &[u8], doc_starts: &[u64]) -> Result<()> {
        ShardWriter::write(self, bytes, doc_starts)
    }

    fn pieces(&self) -> usize {
        self.done.len()
    }

    /// Syncs the shard being written; the journal lists the complete shards and that one's
    /// state.
    fn sync(&mut self) -> Result<Vec<(&'static str, Value)>> {
        let state = self.checkpoint()?;
        Ok(vec![
            (
                "done",
                Value::Array(self.done.iter().map(ShardEntry::to_json).collect()),
            ),
            (
                "current",
                state.map_or(Value::Null, |s| {
                    json!({"tokens": s.tokens, "doc_starts": s.doc_starts, "open_doc": s.open_doc})
                }),
            ),
        ])
    }
}
