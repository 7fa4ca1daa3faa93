//! The token file, its document index and JSON sidecar; the journal that makes a run resumable.
//!
//! For `OUT` a run writes `OUT.partial` (tokens) and `OUT.idx.partial` (document starts), and
//! every few seconds a checkpoint: both files flushed and synced, then `OUT.partial.json` (the
//! journal: what the run reads and how far its written output goes) replaced atomically. A run
//! that stops for any reason leaves these three, never `OUT`: only a complete run renames them
//! to `OUT` and `OUT.idx`, and writes `OUT.json` last. A rerun with the same encoding and
//! settings whose inputs up to the checkpoint are unchanged (path, size, mtime) truncates the
//! partial files to the checkpoint and reads on from there.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};

use super::source::Identity;
use super::work::FileCount;
use super::{Dtype, Encoder, Input, Position, Settings};

pub const SIDECAR_KIND: &str = "fastllm-token-file";
/// Tokens written between background syncs (see [`Writer::write`]).
const SYNC_EVERY: u64 = 16 << 20;
const JOURNAL_KIND: &str = "fastllm-tokenize-journal";
const VERSION: u64 = 1;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The files of one output.
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

/// How a run starts.
pub enum Start {
    /// `OUT.json` describes the same inputs, encoding and settings: nothing to do.
    UpToDate(Value),
    /// Reuse the partial output up to this checkpoint.
    Resume(Position, Counts),
    /// From the beginning; the reason when earlier work exists but cannot be reused.
    Fresh(Option<String>),
}

pub(super) fn read_json(path: &Path) -> Option<Value> {
    let data = fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Decides how a run writing `paths` starts.
pub fn plan_start(
    paths: &Paths,
    identity: &Value,
    inputs: &[Value],
    resume: bool,
    itemsize: u64,
) -> Start {
    if let Some(meta) = resume.then(|| read_json(&paths.meta)).flatten() {
        let same = meta.get("kind").and_then(Value::as_str) == Some(SIDECAR_KIND)
            && ["encoding", "settings", "dtype"]
                .iter()
                .all(|k| meta.get(k) == identity.get(k))
            && meta
                .get("inputs")
                .and_then(Value::as_array)
                .is_some_and(|old| {
                    old.len() == inputs.len()
                        && old
                            .iter()
                            .zip(inputs)
                            .all(|(a, b)| same_input(Some(a), Some(b)))
                });
        let tokens = meta.get("token_count").and_then(Value::as_u64);
        let docs = meta.get("document_count").and_then(Value::as_u64);
        if let (true, Some(tokens), Some(docs)) = (same, tokens, docs) {
            if file_len(&paths.bin) == Some(tokens * itemsize)
                && file_len(&paths.idx) == Some((docs + 1) * 8)
            {
                return Start::UpToDate(meta);
            }
        }
    }
    if !resume {
        return Start::Fresh(None);
    }
    let Some(journal) = read_json(&paths.journal) else {
        return Start::Fresh(paths.partial_bin.exists().then(|| {
            format!(
                "{} has no journal (the run was stopped before its first checkpoint)",
                paths.partial_bin.display()
            )
        }));
    };
    let cannot = |why: String| Start::Fresh(Some(format!("cannot resume the earlier run: {why}")));
    let (position, counts) =
        match resume_point(&journal, &paths.journal, JOURNAL_KIND, identity, inputs) {
            Ok(point) => point,
            Err(why) => return cannot(why),
        };
    let need_bin = counts.tokens * itemsize;
    let need_idx = counts.documents * 8;
    if file_len(&paths.partial_bin).unwrap_or(0) < need_bin
        || file_len(&paths.partial_idx).unwrap_or(0) < need_idx
    {
        return cannot("the partial files are shorter than its last checkpoint".into());
    }
    Start::Resume(position, counts)
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

/// Writes tokens and document starts in order, with checkpoints.
pub struct Writer {
    paths: Paths,
    bin: File,
    idx: BufWriter<File>,
    itemsize: u64,
    pub counts: Counts,
    pub position: Position,
    pub raw_done: u64,
    journal_head: Value,
    last_checkpoint: Instant,
    every: Duration,
    /// A thread syncing the token file while encoding goes on, so the syncs that must wait
    /// (checkpoints, the end) find little left to write.
    syncing: Option<std::thread::JoinHandle<()>>,
    unsynced: u64,
}

impl Writer {
    /// Opens the partial files: empty, or truncated to the checkpoint when resuming.
    pub fn open(
        paths: Paths,
        identity: &Value,
        inputs: &[Value],
        dtype: Dtype,
        every: Duration,
        resume: Option<(Position, Counts)>,
    ) -> Result<Self> {
        let itemsize = dtype.itemsize();
        let (position, counts) = resume.unwrap_or_else(|| {
            (
                Position::default(),
                Counts {
                    per_file: vec![FileCount::default(); inputs.len()],
                    ..Counts::default()
                },
            )
        });
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
        let bin = open(&paths.partial_bin, counts.tokens * itemsize)?;
        let idx = open(&paths.partial_idx, counts.documents * 8)?;
        let mut head = identity.clone();
        if let Value::Object(map) = &mut head {
            map.insert("kind".into(), JOURNAL_KIND.into());
            map.insert("version".into(), VERSION.into());
            map.insert("inputs".into(), Value::Array(inputs.to_vec()));
        }
        let mut writer = Writer {
            paths,
            bin,
            idx: BufWriter::with_capacity(64 << 10, idx),
            itemsize,
            counts,
            position,
            raw_done: 0,
            journal_head: head,
            last_checkpoint: Instant::now(),
            every,
            syncing: None,
            unsynced: 0,
        };
        writer.checkpoint()?;
        Ok(writer)
    }

    pub fn write(&mut self, encoded: &super::work::Encoded, end: &Position) -> Result<()> {
        self.bin
            .write_all(&encoded.bytes)
            .map_err(|e| write_error(&self.paths.partial_bin, &e))?;
        for &start in &encoded.doc_starts {
            self.idx
                .write_all(&(self.counts.tokens + start).to_le_bytes())
                .map_err(|e| write_error(&self.paths.partial_idx, &e))?;
        }
        self.counts.add(encoded);
        self.position = end.clone();
        self.unsynced += encoded.bytes.len() as u64;
        if self.last_checkpoint.elapsed() >= self.every {
            self.checkpoint()?;
        } else if self.unsynced >= SYNC_EVERY {
            self.sync_in_background();
        }
        Ok(())
    }

    /// Starts writing the token file's dirty pages to disk on another thread (errors are left
    /// to the syncs that wait).
    fn sync_in_background(&mut self) {
        if self.syncing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.wait_for_sync();
        if let Ok(file) = self.bin.try_clone() {
            self.unsynced = 0;
            self.syncing = Some(std::thread::spawn(move || {
                let _ = file.sync_data();
            }));
        }
    }

    fn wait_for_sync(&mut self) {
        if let Some(handle) = self.syncing.take() {
            let _ = handle.join();
        }
    }

    /// Flushes and syncs the partial files, then records how far they go.
    pub fn checkpoint(&mut self) -> Result<()> {
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
        let mut journal = self.journal_head.clone();
        if let Value::Object(map) = &mut journal {
            map.insert("position".into(), position_json(&self.position));
            map.insert("counts".into(), self.counts.to_json());
        }
        let data = serde_json::to_vec(&journal)
            .map_err(|e| Error::InvalidArgument(format!("journal: {e}")))?;
        write_atomic(&self.paths.journal, &data)?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Completes the output: final index entry, sync, renames, and the sidecar last.
    pub fn finish(mut self, sidecar: &Value) -> Result<()> {
        self.wait_for_sync();
        let end = self.counts.tokens.to_le_bytes();
        self.idx
            .write_all(&end)
            .and_then(|()| self.idx.flush())
            .and_then(|()| self.idx.get_ref().sync_all())
            .map_err(|e| write_error(&self.paths.partial_idx, &e))?;
        self.bin
            .sync_all()
            .map_err(|e| write_error(&self.paths.partial_bin, &e))?;
        let expected = self.counts.tokens * self.itemsize;
        let actual = file_len(&self.paths.partial_bin).unwrap_or(0);
        if actual != expected {
            return Err(Error::Write {
                path: self.paths.partial_bin.display().to_string(),
                reason: format!("holds {actual} bytes, expected {expected}"),
            });
        }
        let data = serde_json::to_vec_pretty(sidecar)
            .map_err(|e| Error::InvalidArgument(format!("sidecar: {e}")))?;
        let p = &self.paths;
        // The sidecar is written and synced before anything is renamed; the token file is
        // renamed last, so the three files appear together or the token file not at all (a
        // failure here, a full disk included, leaves the partial files and the journal, and a
        // rerun resumes at the end).
        let meta_tmp = with_suffix(&p.meta, ".tmp");
        let written = (|| {
            let mut file = File::create(&meta_tmp)?;
            file.write_all(&data)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&meta_tmp);
            return Err(write_error(&p.meta, &e));
        }
        // An old token file must not be seen with the new sidecar.
        for old in [&p.bin, &p.idx] {
            match fs::remove_file(old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(write_error(old, &e)),
            }
        }
        fs::rename(&p.partial_idx, &p.idx).map_err(|e| write_error(&p.idx, &e))?;
        fs::rename(&meta_tmp, &p.meta).map_err(|e| write_error(&p.meta, &e))?;
        fs::rename(&p.partial_bin, &p.bin).map_err(|e| write_error(&p.bin, &e))?;
        if let Some(dir) = p.bin.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let _ = fs::remove_file(&p.journal);
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.wait_for_sync();
    }
}

/// Removes what an earlier run left (partial files, journal), when not resuming from them, and
/// a token file without its sidecar (an orphan of an older fastllm that would only take space).
pub fn remove_partials(paths: &Paths) -> Result<()> {
    let orphan = !paths.meta.exists() && paths.idx.exists();
    let mut doomed = vec![&paths.partial_bin, &paths.partial_idx, &paths.journal];
    if orphan {
        doomed.extend([&paths.bin, &paths.idx]);
    }
    for path in doomed {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(path, &e)),
        }
    }
    Ok(())
}
