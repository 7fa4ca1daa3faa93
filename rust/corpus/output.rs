//! The token file, its document index and JSON sidecar; the journal that makes a run resumable.
//!
//! For `OUT` a run writes `OUT.partial` (tokens) and `OUT.idx.partial` (document starts), and
//! every few seconds a checkpoint: both files flushed and synced, then `OUT.partial.json` (the
//! journal: what the run reads and how far its written output goes) replaced atomically. A run
//! that stops for any reason leaves these three, never `OUT`: only a complete run renames them
//! to `OUT` and `OUT.idx`, and writes `OUT.json` last. A rerun with the same encoding and
//! settings whose inputs up to the checkpoint are unchanged (path, size, mtime) truncates the
//! partial files to the checkpoint and reads on from there.
//!
//! [`TokenFile`] is this output for the run driver (`super::drive`), which owns the journal
//! and the counts; [`Writer`] only writes and syncs the two partial files (a helper thread
//! syncs the token file every 4 MiB so the checkpoint's sync waits for little). The journal,
//! input identity and atomic-write helpers here serve the sharded output too.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};

use super::source::Identity;
use super::work::FileCount;
use super::{Dtype, Encoder, Input, Position, Settings};

pub const SIDECAR_KIND: &str = "fastllm-token-file";
/// Tokens written between background syncs (see [`Writer::write`]).
const SYNC_EVERY: u64 = 4 << 20;
const JOURNAL_KIND: &str = "fastllm-tokenize-journal";
const VERSION: u64 = 1;

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The files of one output.
#[derive(Clone, Debug)]
pub struct Paths {
    pub bin: PathBuf,
    pub idx: PathBuf,
    pub meta: PathBuf,
    pub partial_bin: PathBuf,
    pub partial_idx: PathBuf,
    pub journal: PathBuf,
}

impl Paths {
    pub fn new(out: &Path) -> Self {
        Paths {
            bin: out.to_path_buf(),
            idx: with_suffix(out, ".idx"),
            meta: with_suffix(out, ".json"),
            partial_bin: with_suffix(out, ".partial"),
            partial_idx: with_suffix(out, ".idx.partial"),
            journal: with_suffix(out, ".partial.json"),
        }
    }
}

pub fn write_error(path: &Path, e: &std::io::Error) -> Error {
    let mut reason = e.to_string();
    if e.kind() == std::io::ErrorKind::StorageFull {
        reason.push_str(
            "; the work done so far is kept: free some space and rerun the same command to resume",
        );
    }
    Error::Write {
        path: path.display().to_string(),
        reason,
    }
}

/// Writes `data` to `path` through a temporary file and a rename. Not synced: the journal and
/// the sidecar are written after the data they describe is synced, so losing them in a crash
/// only makes the output look less complete than it is, never more.
pub(super) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(data)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(path, &e));
    }
    fs::rename(&tmp, path).map_err(|e| write_error(path, &e))
}

/// Each input with its identity (`source::identify`): what decides whether a rerun may reuse work.
pub fn describe_inputs(inputs: &[Input], identities: &[Identity]) -> Vec<Value> {
    inputs
        .iter()
        .zip(identities)
        .map(|(input, id)| {
            json!({
                "path": input.display(),
                "format": input.format.name(),
                "bytes": id.size,
                "mtime_ns": id.mtime_ns,
                "head_tail_sha256": id.head_tail_sha256,
            })
        })
        .collect()
}

/// What must match for a rerun to reuse work: encoding, settings, dtype.
pub fn identity(encoder: &Encoder, settings: &Settings, dtype: Dtype) -> Value {
    json!({
        "encoding": encoder.describe(),
        "settings": settings.describe(),
        "dtype": dtype.name(),
    })
}

pub(super) fn same_input(a: Option<&Value>, b: Option<&Value>) -> bool {
    let key = |v: Option<&Value>| {
        v.map(|v| {
            (
                v.get("path").cloned(),
                v.get("format").cloned(),
                v.get("bytes").cloned(),
                v.get("mtime_ns").cloned(),
                v.get("head_tail_sha256").cloned(),
            )
        })
    };
    key(a).is_some() && key(a) == key(b)
}

fn file_len(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

/// The counts a run has written, as kept in a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub tokens: u64,
    pub documents: u64,
    pub text_bytes: u64,
    pub replaced: u64,
    pub per_file: Vec<FileCount>,
}

impl Counts {
    /// Adds an encoded job's counts.
    pub fn add(&mut self, encoded: &super::work::Encoded) {
        self.tokens += encoded.tokens;
        self.documents += encoded.doc_starts.len() as u64;
        self.replaced += encoded.replaced;
        for &(file, add) in &encoded.files {
            if let Some(slot) = self.per_file.get_mut(file) {
                slot.tokens += add.tokens;
                slot.documents += add.documents;
                slot.text_bytes += add.text_bytes;
            }
            self.text_bytes += add.text_bytes;
        }
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "tokens": self.tokens,
            "documents": self.documents,
            "text_bytes": self.text_bytes,
            "replaced": self.replaced,
            "per_file": self
                .per_file
                .iter()
                .map(|c| [c.tokens, c.documents, c.text_bytes])
                .collect::<Vec<_>>(),
        })
    }

    pub(super) fn from_json(v: &Value, n_files: usize) -> Option<Self> {
        let int = |name: &str| v.get(name).and_then(Value::as_u64);
        let mut per_file = vec![FileCount::default(); n_files];
        for (slot, item) in per_file
            .iter_mut()
            .zip(v.get("per_file")?.as_array()?.iter())
        {
            let a = item.as_array()?;
            *slot = FileCount {
                tokens: a.first()?.as_u64()?,
                documents: a.get(1)?.as_u64()?,
                text_bytes: a.get(2)?.as_u64()?,
            };
        }
        Some(Counts {
            tokens: int("tokens")?,
            documents: int("documents")?,
            text_bytes: int("text_bytes")?,
            replaced: int("replaced")?,
            per_file,
        })
    }
}

pub(super) fn position_json(p: &Position) -> Value {
    json!({"file": p.file, "offset": p.offset, "line": p.line, "in_doc": p.in_doc})
}

pub(super) fn position_from_json(v: &Value) -> Option<Position> {
    Some(Position {
        file: usize::try_from(v.get("file")?.as_u64()?).ok()?,
        offset: v.get("offset")?.as_u64()?,
        line: v.get("line")?.as_u64()?,
        in_doc: v.get("in_doc")?.as_bool()?,
    })
}

pub(super) fn read_json(path: &Path) -> Option<Value> {
    let data = fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Whether `meta` (a sidecar or manifest of `kind`) records a run of this `identity` (every
/// field of it equal) over these `inputs` (each the same file as then).
pub(super) fn same_run(meta: &Value, kind: &str, identity: &Value, inputs: &[Value]) -> bool {
    meta.get("kind").and_then(Value::as_str) == Some(kind)
        && identity
            .as_object()
            .is_some_and(|fields| fields.iter().all(|(k, v)| meta.get(k) == Some(v)))
        && meta
            .get("inputs")
            .and_then(Value::as_array)
            .is_some_and(|old| {
                old.len() == inputs.len()
                    && old
                        .iter()
                        .zip(inputs)
                        .all(|(a, b)| same_input(Some(a), Some(b)))
            })
}

/// Where a journal of `kind` says its run got to, if this run (`identity`, `inputs`) may go on
/// from there; else why not.
pub fn resume_point(
    journal: &Value,
    journal_path: &Path,
    kind: &str,
    identity: &Value,
    inputs: &[Value],
) -> std::result::Result<(Position, Counts), String> {
    if journal.get("kind").and_then(Value::as_str) != Some(kind) {
        return Err(format!(
            "{} is not a fastllm journal",
            journal_path.display()
        ));
    }
    for (key, what) in [
        ("encoding", "the encoding differs"),
        ("settings", "the settings differ (eot, errors or field)"),
        ("dtype", "the token dtype differs"),
        (
            "sharding",
            "the shard settings differ (layout, shard or validation size)",
        ),
    ] {
        if journal.get(key) != identity.get(key) {
            return Err(format!("{what} from this run's"));
        }
    }
    let (Some(position), Some(counts)) = (
        journal.get("position").and_then(position_from_json),
        journal
            .get("counts")
            .and_then(|c| Counts::from_json(c, inputs.len())),
    ) else {
        return Err(format!("{} is damaged", journal_path.display()));
    };
    let old_inputs = journal
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Files fully read, plus the one being read at the checkpoint, must be unchanged.
    let needed = position.file + usize::from(position.offset > 0 || position.in_doc);
    if needed > inputs.len() {
        return Err("this run has fewer inputs".into());
    }
    for i in 0..needed {
        if !same_input(old_inputs.get(i), inputs.get(i)) {
            let path = inputs
                .get(i)
                .and_then(|v| v.get("path"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            return Err(format!(
                "input {} ({path}) is not the same file as then (path, size, mtime or content differ)",
                i + 1
            ));
        }
    }
    Ok((position, counts))
}

/// The single token file `OUT`, its index and sidecar: one of the run driver's outputs
/// ([`super::Output`]; the other is [`super::shards::Sharded`]).
pub struct TokenFile {
    paths: Paths,
    dtype: Dtype,
}

impl TokenFile {
    pub fn new(out: &Path, dtype: Dtype) -> Self {
        TokenFile {
            paths: Paths::new(out),
            dtype,
        }
    }
}

impl super::Output for TokenFile {
    type Sink = Writer;
    type Resume = ();

    fn path(&self) -> PathBuf {
        self.paths.bin.clone()
    }

    fn identity(&self, encoder: &Encoder, settings: &Settings) -> Value {
        identity(encoder, settings, self.dtype)
    }

    fn journal(&self) -> (PathBuf, &'static str) {
        (self.paths.journal.clone(), JOURNAL_KIND)
    }

    fn up_to_date(&self, identity: &Value, inputs: &[Value]) -> Option<(Value, Vec<PathBuf>)> {
        let meta = read_json(&self.paths.meta)?;
        if !same_run(&meta, SIDECAR_KIND, identity, inputs) {
            return None;
        }
        let tokens = meta.get("token_count").and_then(Value::as_u64)?;
        let docs = meta.get("document_count").and_then(Value::as_u64)?;
        let complete = file_len(&self.paths.bin) == Some(tokens * self.dtype.itemsize())
            && file_len(&self.paths.idx) == Some((docs + 1) * 8);
        complete.then(|| (meta, Vec::new()))
    }

    fn no_journal(&self) -> Option<String> {
        self.paths.partial_bin.exists().then(|| {
            format!(
                "{} has no journal (the run was stopped before its first checkpoint)",
                self.paths.partial_bin.display()
            )
        })
    }

    fn resumable(&self, _journal: &Value, counts: &Counts) -> std::result::Result<(), String> {
        let need_bin = counts.tokens * self.dtype.itemsize();
        let need_idx = counts.documents * 8;
        if file_len(&self.paths.partial_bin).unwrap_or(0) < need_bin
            || file_len(&self.paths.partial_idx).unwrap_or(0) < need_idx
        {
            return Err("the partial files are shorter than its last checkpoint".into());
        }
        Ok(())
    }

    fn open(&self, resume: Option<()>, counts: &Counts) -> Result<Writer> {
        if resume.is_none() {
            remove_partials(&self.paths)?;
        }
        Writer::open(
            self.paths.clone(),
            self.dtype,
            counts.tokens,
            counts.documents,
        )
    }

    fn finish(
        &self,
        writer: Writer,
        mut sidecar: Value,
        counts: &Counts,
    ) -> Result<(Value, Vec<PathBuf>)> {
        let file_name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if let Value::Object(map) = &mut sidecar {
            map.insert("kind".into(), SIDECAR_KIND.into());
            map.insert("version".into(), VERSION.into());
            map.insert("token_file".into(), file_name(&self.paths.bin).into());
            map.insert("token_count".into(), counts.tokens.into());
            map.insert("document_count".into(), counts.documents.into());
            map.insert(
                "index".into(),
                json!({
                    "file": file_name(&self.paths.idx),
                    "dtype": "uint64",
                    "entries": counts.documents + 1,
                    "meaning": "token offset where each document starts, then the token count: \
                                document i is tokens[index[i]:index[i + 1]]",
                }),
            );
        }
        writer.finish(&sidecar)?;
        Ok((sidecar, Vec::new()))
    }
}

/// Writes tokens and document starts in order into the partial files of a [`TokenFile`].
pub struct Writer {
    paths: Paths,
    bin: File,
    idx: BufWriter<File>,
    itemsize: u64,
    tokens: u64,
    /// A thread syncing the token file while encoding goes on, so the syncs that must wait
    /// (checkpoints, the end) find little left to write.
    syncing: Option<std::thread::JoinHandle<()>>,
    unsynced: u64,
    /// Written since the last [`super::Sink::sync`] (the first checkpoint, before any write,
    /// has nothing to sync).
    dirty: bool,
}

impl Writer {
    /// Opens the partial files, truncated to `tokens` tokens and `documents` index entries (0
    /// for a fresh run, the checkpoint's counts when resuming).
    fn open(paths: Paths, dtype: Dtype, tokens: u64, documents: u64) -> Result<Self> {
        let itemsize = dtype.itemsize();
        let open = |path: &Path, len: u64| -> Result<File> {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(path)
                .map_err(|e| write_error(path, &e))?;
            file.set_len(len).map_err(|e| write_error(path, &e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| write_error(path, &e))?;
            Ok(file)
        };
        let bin = open(&paths.partial_bin, tokens * itemsize)?;
        let idx = open(&paths.partial_idx, documents * 8)?;
        Ok(Writer {
            paths,
            bin,
            idx: BufWriter::with_capacity(64 << 10, idx),
            itemsize,
            tokens,
            syncing: None,
            unsynced: 0,
            dirty: false,
        })
    }

    /// Starts writing the token file's dirty pages to disk on another thread (errors are left
    /// to the syncs that wait).
    fn sync_in_background(&mut self) {
        if self.syncing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.wait_for_sync();
        if let Ok(file) = self.bin.try_clone() {
            // A thread that cannot be started (a process limit) leaves the pages to the syncs
            // that wait.
            let started = std::thread::Builder::new().spawn(move || {
                let _ = file.sync_data();
            });
            if let Ok(handle) = started {
                self.unsynced = 0;
                self.syncing = Some(handle);
            }
        }
    }

    fn wait_for_sync(&mut self) {
        if let Some(handle) = self.syncing.take() {
            let _ = handle.join();
        }
    }

    /// Completes the output: final index entry, sync, renames, and the sidecar last.
    fn finish(mut self, sidecar: &Value) -> Result<()> {
        // The token file's last pages are synced on another thread while the index and the
        // sidecar are written and synced here: the three syncs wait for the disk together
        // (one after another they were most of the run's idle end; see the design notes).
        let earlier = self.syncing.take();
        let bin_sync = self.bin.try_clone().ok().and_then(|file| {
            std::thread::Builder::new()
                .spawn(move || {
                    if let Some(handle) = earlier {
                        let _ = handle.join();
                    }
                    file.sync_all()
                })
                .ok()
        });
        let end = self.tokens.to_le_bytes();
        let idx_synced = self
            .idx
            .write_all(&end)
            .and_then(|()| self.idx.flush())
            .and_then(|()| self.idx.get_ref().sync_all())
            .map_err(|e| write_error(&self.paths.partial_idx, &e));
        let data = serde_json::to_vec_pretty(sidecar)
            .map_err(|e| Error::InvalidArgument(format!("sidecar: {e}")));
        let p = &self.paths;
        // The sidecar is written and synced before anything is renamed; the token file is
        // renamed last, so the three files appear together or the token file not at all (a
        // failure here, a full disk included, leaves the partial files and the journal, and a
        // rerun resumes at the end).
        let meta_tmp = with_suffix(&p.meta, ".tmp");
        let written = match (&idx_synced, &data) {
            (Ok(()), Ok(data)) => (|| {
                let mut file = File::create(&meta_tmp)?;
                file.write_all(data)?;
                file.sync_all()
            })()
            .map_err(|e| write_error(&p.meta, &e)),
            _ => Ok(()),
        };
        // Without the helper thread (it could not be started) the sync happens here.
        let bin_synced = match bin_sync.map(std::thread::JoinHandle::join) {
            Some(Ok(synced)) => synced,
            _ => self.bin.sync_all(),
        }
        .map_err(|e| write_error(&p.partial_bin, &e));
        if let Err(e) = idx_synced.and(data).and(written).and(bin_synced) {
            let _ = fs::remove_file(&meta_tmp);
            return Err(e);
        }
        let expected = self.tokens * self.itemsize;
        let actual = file_len(&p.partial_bin).unwrap_or(0);
        if actual != expected {
            let _ = fs::remove_file(&meta_tmp);
            return Err(Error::Write {
                path: p.partial_bin.display().to_string(),
                reason: format!("holds {actual} bytes, expected {expected}"),
            });
        }
        // The old output's files are held open while they are removed or replaced, and let go
        // on a helper thread: the kernel frees a file's pages when its last handle closes,
        // which for a token file of 20 MB took 16-28 ms of this thread (see the design notes).
        // (Unix only: elsewhere an open file may not be removable.)
        let held: Vec<File> = if cfg!(unix) {
            [&p.bin, &p.idx, &p.meta]
                .into_iter()
                .filter_map(|old| File::open(old).ok())
                .collect()
        } else {
            Vec::new()
        };
        // An old token file must not be seen with the new sidecar.
        for old in [&p.bin, &p.idx] {
            match fs::remove_file(old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(write_error(old, &e)),
            }
        }
        let renamed = fs::rename(&p.partial_idx, &p.idx)
            .map_err(|e| write_error(&p.idx, &e))
            .and_then(|()| fs::rename(&meta_tmp, &p.meta).map_err(|e| write_error(&p.meta, &e)))
            .and_then(|()| fs::rename(&p.partial_bin, &p.bin).map_err(|e| write_error(&p.bin, &e)));
        // Detached; a thread that cannot be started drops the handles here.
        let _ = std::thread::Builder::new().spawn(move || drop(held));
        renamed?;
        sync_dir(&p.bin);
        let _ = fs::remove_file(&p.journal);
        Ok(())
    }
}

impl super::Sink for Writer {
    fn write(&mut self, bytes: &[u8], doc_starts: &[u64]) -> Result<()> {
        self.bin
            .write_all(bytes)
            .map_err(|e| write_error(&self.paths.partial_bin, &e))?;
        for &start in doc_starts {
            self.idx
                .write_all(&(self.tokens + start).to_le_bytes())
                .map_err(|e| write_error(&self.paths.partial_idx, &e))?;
        }
        self.tokens += bytes.len() as u64 / self.itemsize;
        self.unsynced += bytes.len() as u64;
        self.dirty = true;
        if self.unsynced >= SYNC_EVERY {
            self.sync_in_background();
        }
        Ok(())
    }

    /// Flushes and syncs the partial files; the journal needs nothing more than the counts.
    fn sync(&mut self) -> Result<Vec<(&'static str, Value)>> {
        if !self.dirty {
            // Nothing written since the files were opened (truncated to the journal's counts)
            // or last synced: the journal about to be written describes them already.
            return Ok(Vec::new());
        }
        self.wait_for_sync();
        self.unsynced = 0;
        self.idx
            .flush()
            .map_err(|e| write_error(&self.paths.partial_idx, &e))?;
        self.idx
            .get_ref()
            .sync_data()
            .map_err(|e| write_error(&self.paths.partial_idx, &e))?;
        self.bin
            .sync_data()
            .map_err(|e| write_error(&self.paths.partial_bin, &e))?;
        self.dirty = false;
        Ok(Vec::new())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.wait_for_sync();
    }
}

/// Makes the renames in `path`'s directory durable (best effort).
pub(super) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Removes what an earlier run left (partial files, journal), when not resuming from them, and
/// a token file without its sidecar (an orphan of an older fastllm that would only take space).
fn remove_partials(paths: &Paths) -> Result<()> {
    let orphan = !paths.meta.exists() && paths.idx.exists();
    let mut doomed = vec![&paths.partial_bin, &paths.partial_idx, &paths.journal];
    if orphan {
        doomed.extend([&paths.bin, &paths.idx]);
    }
    remove_files(doomed)
}

/// Removes `paths` (those already gone are fine).
pub(super) fn remove_files<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<()> {
    for path in paths {
        let path = path.as_ref();
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(path, &e)),
        }
    }
    Ok(())
}
