use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::*;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Fails the test with `what` unless `ok` (the crate's tests avoid `assert!`).
fn check(ok: bool, what: impl std::fmt::Display) -> TestResult {
    if ok {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

fn gpt2() -> Result<Encoder> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/fastllm/vocab/gpt2.tiktoken.zst"
    );
    let ranks = vocab::parse_tiktoken(&vocab::read_vocab_file(path)?, path)?;
    let mut specials = FxHashMap::default();
    specials.insert("<|endoftext|>".to_string(), 50256);
    Ok(Encoder::new(
        CoreBpe::new(ranks, specials, "r50k")?,
        "gpt2".into(),
    ))
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("fastllm-corpus-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn file(&self, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.0.join(name);
        fs::write(&path, data)?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn settings(eot: Option<Rank>, replace: bool) -> Settings {
    Settings {
        field: "text".into(),
        eot,
        replace_errors: replace,
    }
}

fn options(threads: usize, job_bytes: usize) -> RunOptions {
    RunOptions {
        threads,
        job_bytes,
        ..RunOptions::default()
    }
}

fn text_input(path: PathBuf) -> Input {
    Input {
        path,
        format: Format::Text,
    }
}

fn jsonl_input(path: PathBuf) -> Input {
    Input {
        path,
        format: Format::Jsonl,
    }
}

fn no_progress() -> impl FnMut(&Progress) -> Result<()> {
    |_| Ok(())
}

fn read_u16(path: &Path) -> std::io::Result<Vec<u32>> {
    Ok(fs::read(path)?
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect())
}

fn read_u64(path: &Path) -> std::io::Result<Vec<u64>> {
    Ok(fs::read(path)?
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}

/// A text with long lines, short lines, code, unicode and whitespace runs.
fn sample_text(seed: usize, size: usize) -> String {
    let parts = [
        "The quick brown fox jumps over the lazy dog. ",
        "It's 2024 and they'll say: \"don't stop\".\n",
        "def f(x):\n    return x  \n\n",
        "  \t indented line\r\n",
        "Ünïcödé wörds, 中文字符, emoji 😀!\n",
        "x\ny\n.\n",
        "word word word word ",
        "\n\n\n",
    ];
    let mut out = String::with_capacity(size + 64);
    let mut i = seed;
    while out.len() < size {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(parts[(i >> 33) % parts.len()]);
    }
    out
}

fn expected(encoder: &Encoder, docs: &[String], eot: Option<Rank>) -> Result<(Vec<u32>, Vec<u64>)> {
    let mut tokens = Vec::new();
    let mut starts = Vec::new();
    for doc in docs {
        starts.push(tokens.len() as u64);
        tokens.extend(encoder.bpe.encode_ordinary(doc)?);
        tokens.extend(eot);
    }
    starts.push(tokens.len() as u64);
    Ok((tokens, starts))
}

fn jsonl_of(docs: &[String]) -> String {
    docs.iter()
        .map(|d| format!("{}\n", serde_json::json!({"id": 1, "text": d})))
        .collect()
}

#[test]
fn tokens_equal_encode_ordinary_per_document() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let a = sample_text(1, 20_000);
    let b = sample_text(2, 3_000);
    let records: Vec<String> = (0..30).map(|i| sample_text(10 + i, 50 + 37 * i)).collect();
    let c = sample_text(3, 0);
    let inputs = vec![
        text_input(dir.file("a.txt", a.as_bytes())?),
        jsonl_input(dir.file(
            "r.jsonl",
            format!("{}\n  \n", jsonl_of(&records)).as_bytes(),
        )?),
        text_input(dir.file("b.txt", b.as_bytes())?),
        text_input(dir.file("empty.txt", c.as_bytes())?),
    ];
    let mut docs = vec![a];
    docs.extend(records.iter().cloned());
    docs.push(b);
    docs.push(c);
    let eot = encoder.eot_token();
    let (want_tokens, want_starts) = expected(&encoder, &docs, eot)?;
    for (threads, job_bytes) in [(1, 1 << 20), (3, 300), (2, 64), (4, 4096)] {
        let out = dir.0.join(format!("out-{threads}-{job_bytes}.bin"));
        let meta = tokenize_files(
            &encoder,
            &inputs,
            &out,
            &settings(eot, false),
            &options(threads, job_bytes),
            &mut no_progress(),
        )?;
        assert_eq!(
            read_u16(&out)?,
            want_tokens,
            "threads {threads} job {job_bytes}"
        );
        assert_eq!(read_u64(&Paths::new(&out).idx)?, want_starts);
        assert_eq!(meta.meta["token_count"], want_tokens.len() as u64);
        assert_eq!(meta.meta["document_count"], docs.len() as u64);
        assert_eq!(meta.meta["dtype"], "uint16");
        let on_disk: Value = serde_json::from_slice(&fs::read(Paths::new(&out).meta)?)?;
        assert_eq!(on_disk["token_count"], meta.meta["token_count"]);
        assert_eq!(on_disk["inputs"][1]["documents"], 30);
        check(
            !Paths::new(&out).partial_bin.exists(),
            "!Paths::new(&out).partial_bin.exists()",
        )?;
        check(
            !Paths::new(&out).journal.exists(),
            "!Paths::new(&out).journal.exists()",
        )?;
    }
    Ok(())
}

#[test]
fn long_documents_are_cut_without_changing_tokens() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let text = sample_text(7, 300_000);
    let inputs = vec![text_input(dir.file("long.txt", text.as_bytes())?)];
    let out = dir.0.join("long.bin");
    tokenize_files(
        &encoder,
        &inputs,
        &out,
        &settings(None, false),
        &options(3, 1000),
        &mut no_progress(),
    )?;
    assert_eq!(read_u16(&out)?, encoder.bpe.encode_ordinary(&text)?);
    Ok(())
}

#[test]
fn compressed_inputs_read_transparently() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let text = sample_text(5, 50_000);
    let records: Vec<String> = (0..10).map(|i| sample_text(i, 500)).collect();
    let jsonl = jsonl_of(&records);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())?;
    let gz = gz.finish()?;
    let zst = zstd::stream::encode_all(jsonl.as_bytes(), 3)?;
    let inputs = vec![
        text_input(dir.file("a.txt.gz", &gz)?),
        jsonl_input(dir.file("r.jsonl.zst", &zst)?),
    ];
    let mut docs = vec![text];
    docs.extend(records);
    let (want, _) = expected(&encoder, &docs, encoder.eot_token())?;
    let out = dir.0.join("c.bin");
    tokenize_files(
        &encoder,
        &inputs,
        &out,
        &settings(encoder.eot_token(), false),
        &options(2, 2000),
        &mut no_progress(),
    )?;
    assert_eq!(read_u16(&out)?, want);
    let counted = count_files(
        &encoder,
        &inputs,
        &settings(encoder.eot_token(), false),
        &options(2, 2000),
        &mut no_progress(),
    )?;
    assert_eq!(counted.totals.tokens, want.len() as u64);
    assert_eq!(counted.files[1].count.documents, 10);
    Ok(())
}

#[test]
fn invalid_utf8_strict_names_file_and_offset_replace_counts() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let mut data = sample_text(1, 5000).into_bytes();
    let bad_at = data.len();
    data.extend_from_slice(b"abc\xff\xfe def \xe2\x82 tail");
    let bad = dir.file("bad.txt", &data)?;
    let inputs = vec![text_input(bad.clone())];
    let out = dir.0.join("u.bin");
    let err = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &settings(None, false),
        &options(2, 700),
        &mut no_progress(),
    );
    assert_eq!(
        err.err(),
        Some(Error::InvalidUtf8 {
            path: bad.display().to_string(),
            offset: bad_at as u64 + 3
        })
    );
    check(!out.exists(), "!out.exists()")?;
    let meta = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &settings(None, true),
        &options(2, 700),
        &mut no_progress(),
    )?;
    // \xff and \xfe are one replacement each, the truncated \xe2\x82 one more (as Python).
    assert_eq!(meta.meta["replaced_invalid_utf8"], 3);
    let text = String::from_utf8_lossy(&data).into_owned();
    assert_eq!(read_u16(&out)?, encoder.bpe.encode_ordinary(&text)?);
    Ok(())
}

#[test]
fn bad_jsonl_lines_name_file_and_line() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let cases: [(&str, &str); 5] = [
        (
            "{\"text\": \"a\"}\n{\"body\": \"b\", \"id\": 3}\n",
            "no \"text\" field",
        ),
        ("{\"text\": \"a\"}\n\n{not json\n", "not valid JSON"),
        ("[1, 2]\n", "found an array"),
        ("{\"text\": 5}\n", "field \"text\" is a number"),
        ("{}\n", "the object is empty"),
    ];
    for (i, (content, message)) in cases.iter().enumerate() {
        let path = dir.file(&format!("bad{i}.jsonl"), content.as_bytes())?;
        let line = content.lines().count() as u64;
        let result = count_files(
            &encoder,
            &[jsonl_input(path.clone())],
            &settings(None, false),
            &options(1, 1 << 20),
            &mut no_progress(),
        );
        match result {
            Err(Error::BadRecord {
                path: p,
                line: l,
                reason,
            }) => {
                assert_eq!((p, l), (path.display().to_string(), line));
                check(reason.contains(message), &reason)?;
            }
            other => return Err(format!("expected a BadRecord error, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn errors_for_missing_inputs_and_output_dirs() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let missing = dir.0.join("missing.txt");
    let s = settings(None, false);
    let out = dir.0.join("o.bin");
    let r = tokenize_files(
        &encoder,
        &[text_input(missing)],
        &out,
        &s,
        &options(1, 100),
        &mut no_progress(),
    );
    check(matches!(r, Err(Error::Io { .. })), format!("{r:?}"))?;
    let r = tokenize_files(
        &encoder,
        &[],
        &out,
        &s,
        &options(1, 100),
        &mut no_progress(),
    );
    check(
        matches!(r, Err(Error::InvalidArgument(_))),
        format!("{r:?}"),
    )?;
    let a = dir.file("a.txt", b"hello")?;
    let nowhere = dir.0.join("no/such/dir/o.bin");
    let r = tokenize_files(
        &encoder,
        &[text_input(a)],
        &nowhere,
        &s,
        &options(1, 100),
        &mut no_progress(),
    );
    match r {
        Err(e @ Error::OutputDirMissing { .. }) => {
            check(e.to_string().contains("does not exist"), e.to_string())?
        }
        other => return Err(format!("expected OutputDirMissing, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn resumes_after_a_failure_and_skips_up_to_date_output() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let eot = encoder.eot_token();
    let texts: Vec<String> = (0..6).map(|i| sample_text(20 + i, 4000)).collect();
    let mut inputs: Vec<Input> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        inputs.push(text_input(dir.file(&format!("{i}.txt"), t.as_bytes())?));
    }
    // File 4 is broken: the run stops there, keeping files 0-3 (checkpointed on the error).
    let broken = inputs[4].path.clone();
    fs::write(&broken, b"good start \xff broken")?;
    let out = dir.0.join("r.bin");
    let s = settings(eot, false);
    let r = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &s,
        &options(2, 1500),
        &mut no_progress(),
    );
    check(
        matches!(r, Err(Error::InvalidUtf8 { .. })),
        format!("{r:?}"),
    )?;
    let paths = Paths::new(&out);
    check(
        !out.exists() && !paths.meta.exists(),
        "!out.exists() && !paths.meta.exists()",
    )?;
    check(
        paths.partial_bin.exists() && paths.journal.exists(),
        "paths.partial_bin.exists() && paths.journal.exists()",
    )?;
    let written = fs::metadata(&paths.partial_bin)?.len();
    check(written > 0, "written > 0")?;

    // Fix the file: the rerun keeps the work before it.
    fs::write(&broken, texts[4].as_bytes())?;
    let mut reported = Vec::new();
    let meta = tokenize_files(&encoder, &inputs, &out, &s, &options(2, 1500), &mut |p| {
        reported.push(*p);
        Ok(())
    })?;
    assert!(meta.run.resumed, "{:?}", meta.run);
    check(
        meta.run.resumed_bytes >= 3 * 4000,
        "meta.run.resumed_bytes >= 3 * 4000",
    )?;
    let (want, starts) = expected(&encoder, &texts, eot)?;
    assert_eq!(read_u16(&out)?, want);
    assert_eq!(read_u64(&paths.idx)?, starts);
    assert_eq!(meta.meta["inputs"][0]["tokens"], starts[1]);
    check(
        reported
            .last()
            .is_some_and(|p| p.bytes_done == p.bytes_total),
        "reported.last().is_some_and(|p| p.bytes_done == p.bytes_total)",
    )?;

    // Same inputs again: nothing to do.
    let again = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &s,
        &options(2, 1500),
        &mut no_progress(),
    )?;
    assert!(again.run.up_to_date);
    // Another setting: redone, and the old output replaced.
    let no_eot = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &settings(None, false),
        &options(2, 1500),
        &mut no_progress(),
    )?;
    assert!(!no_eot.run.up_to_date);
    assert_eq!(read_u16(&out)?.len() as u64, want.len() as u64 - 6);
    Ok(())
}

#[test]
fn a_changed_input_before_the_checkpoint_starts_over_and_says_why() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let a = dir.file("a.txt", sample_text(1, 3000).as_bytes())?;
    let b = dir.file("b.txt", b"bad \xff")?;
    let inputs = vec![text_input(a.clone()), text_input(b.clone())];
    let out = dir.0.join("c.bin");
    let s = settings(None, false);
    let r = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &s,
        &options(1, 500),
        &mut no_progress(),
    );
    check(r.is_err(), "r.is_err()")?;
    fs::write(&a, sample_text(2, 3100).as_bytes())?;
    fs::write(&b, b"fixed")?;
    let meta = tokenize_files(
        &encoder,
        &inputs,
        &out,
        &s,
        &options(1, 500),
        &mut no_progress(),
    )?;
    assert!(!meta.run.resumed);
    let note = meta.run.note.as_deref().unwrap_or_default();
    check(note.contains("input 1") && note.contains("a.txt"), note)?;
    let mut want = encoder.bpe.encode_ordinary(&sample_text(2, 3100))?;
    want.extend(encoder.bpe.encode_ordinary("fixed")?);
    assert_eq!(read_u16(&out)?, want);
    Ok(())
}

/// Stops a run from its progress callback once it has written something, then resumes it.
fn stop_and_resume(encoder: &Encoder, inputs: &[Input], out: &Path, want: &[u32]) -> TestResult {
    let s = settings(None, false);
    let r = tokenize_files(encoder, inputs, out, &s, &options(1, 20_000), &mut |p| {
        if p.tokens > 0 {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    });
    assert_eq!(r.err(), Some(Error::Interrupted));
    check(!out.exists(), "the output exists after a stop")?;
    let meta = tokenize_files(
        encoder,
        inputs,
        out,
        &s,
        &options(2, 20_000),
        &mut no_progress(),
    )?;
    assert!(meta.run.resumed);
    check(
        meta.run.resumed_bytes > 0,
        format!("resumed from the start: {:?}", meta.run),
    )?;
    assert_eq!(read_u16(out)?, want);
    Ok(())
}

#[test]
fn an_error_from_the_progress_callback_stops_the_run_resumably() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let text = sample_text(3, 2_000_000);
    let want = encoder.bpe.encode_ordinary(&text)?;
    let plain = vec![text_input(dir.file("big.txt", text.as_bytes())?)];
    stop_and_resume(&encoder, &plain, &dir.0.join("plain.bin"), &want)?;
    // Inside a compressed file: the rerun skips the decompressed bytes already done.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes())?;
    let gz = vec![text_input(dir.file("big.txt.gz", &gz.finish()?)?)];
    stop_and_resume(&encoder, &gz, &dir.0.join("gz.bin"), &want)
}

#[test]
fn a_read_error_keeps_the_work_before_it_and_errors_stay_in_input_order() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let a = sample_text(1, 5000);
    let b = sample_text(2, 5000);
    let corrupt = b"\x1f\x8b\x08\x00 not a deflate stream".to_vec();
    let inputs = vec![
        text_input(dir.file("a.txt", a.as_bytes())?),
        text_input(dir.file("b.txt", b.as_bytes())?),
        text_input(dir.file("c.txt.gz", &corrupt)?),
    ];
    let out = dir.0.join("r.bin");
    let s = settings(None, false);
    let big_jobs = options(2, 1 << 20);
    let r = tokenize_files(&encoder, &inputs, &out, &s, &big_jobs, &mut no_progress());
    match r {
        Err(Error::Io { path, .. }) => check(path.ends_with("c.txt.gz"), path)?,
        other => return Err(format!("expected an Io error, got {other:?}").into()),
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"fixed")?;
    fs::write(&inputs[2].path, gz.finish()?)?;
    let meta = tokenize_files(&encoder, &inputs, &out, &s, &big_jobs, &mut no_progress())?;
    assert_eq!(meta.run.resumed_bytes, (a.len() + b.len()) as u64);
    let mut want = encoder.bpe.encode_ordinary(&a)?;
    want.extend(encoder.bpe.encode_ordinary(&b)?);
    want.extend(encoder.bpe.encode_ordinary("fixed")?);
    assert_eq!(read_u16(&out)?, want);

    // An invalid file before the unreadable one is the error reported.
    fs::write(&inputs[1].path, b"bad \xff")?;
    fs::write(&inputs[2].path, &corrupt)?;
    let r = tokenize_files(
        &encoder,
        &inputs,
        &dir.0.join("s.bin"),
        &s,
        &big_jobs,
        &mut no_progress(),
    );
    check(
        matches!(r, Err(Error::InvalidUtf8 { .. })),
        format!("{r:?}"),
    )
}

#[test]
fn a_jsonl_file_may_start_with_a_byte_order_mark() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let path = dir.file(
        "bom.jsonl",
        "\u{feff}{\"text\": \"a\"}\n{\"text\": \"b\"}\n".as_bytes(),
    )?;
    let counted = count_files(
        &encoder,
        &[jsonl_input(path)],
        &settings(None, false),
        &options(1, 1 << 20),
        &mut no_progress(),
    )?;
    assert_eq!(counted.totals.documents, 2);
    Ok(())
}

/// Writes `docs` (None = null) as the string column `text` of a Parquet file, next to an int
/// column, in row groups of `group_rows`.
fn write_parquet(
    path: &Path,
    docs: &[Option<String>],
    group_rows: usize,
    compression: parquet::basic::Compression,
) -> TestResult {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let ids: ArrayRef = std::sync::Arc::new(Int64Array::from_iter_values(0..docs.len() as i64));
    let text: ArrayRef = std::sync::Arc::new(StringArray::from(
        docs.iter().map(|d| d.as_deref()).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("text", text)])?;
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let mut writer = ArrowWriter::try_new(fs::File::create(path)?, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

fn parquet_input(path: PathBuf) -> Input {
    Input {
        path,
        format: Format::Parquet,
    }
}

#[test]
fn parquet_rows_are_documents_in_every_compression() -> TestResult {
    use parquet::basic::{Compression, GzipLevel, ZstdLevel};
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let docs: Vec<Option<String>> = (0..300)
        .map(|i| match i % 11 {
            3 => None,
            5 => Some(String::new()),
            _ => Some(sample_text(100 + i, 20 + (i * 37) % 900)),
        })
        .collect();
    let plain: Vec<String> = docs.iter().map(|d| d.clone().unwrap_or_default()).collect();
    let a = sample_text(7, 2_000);
    let mut all = vec![a.clone()];
    all.extend(plain.iter().cloned());
    let eot = encoder.eot_token();
    let (want, starts) = expected(&encoder, &all, eot)?;
    for (name, compression) in [
        ("snappy", Compression::SNAPPY),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("none", Compression::UNCOMPRESSED),
    ] {
        let pq = dir.0.join(format!("{name}.parquet"));
        write_parquet(&pq, &docs, 40, compression)?;
        let inputs = vec![
            text_input(dir.file("a.txt", a.as_bytes())?),
            parquet_input(pq),
        ];
        for (threads, job_bytes) in [(1, 1 << 20), (3, 500), (2, 4096)] {
            let out = dir.0.join(format!("{name}-{threads}-{job_bytes}.bin"));
            let meta = tokenize_files(
                &encoder,
                &inputs,
                &out,
                &settings(eot, false),
                &options(threads, job_bytes),
                &mut no_progress(),
            )?;
            assert_eq!(
                read_u16(&out)?,
                want,
                "{name} threads {threads} job {job_bytes}"
            );
            assert_eq!(read_u64(&Paths::new(&out).idx)?, starts);
            assert_eq!(meta.meta["document_count"], all.len() as u64);
            assert_eq!(meta.meta["inputs"][1]["format"], "parquet");
        }
    }
    Ok(())
}

#[test]
fn parquet_errors_name_the_file_and_the_columns() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let pq = dir.0.join("c.parquet");
    write_parquet(
        &pq,
        &[Some("x".into())],
        10,
        parquet::basic::Compression::SNAPPY,
    )?;
    let mut s = settings(None, false);
    s.field = "body".into();
    let r = count_files(
        &encoder,
        &[parquet_input(pq.clone())],
        &s,
        &options(1, 1 << 20),
        &mut no_progress(),
    );
    let message = format!("{:?}", r.as_ref().err());
    check(
        message.contains("no column \\\"body\\\"") && message.contains("\\\"id\\\", \\\"text\\\""),
        &message,
    )?;
    s.field = "id".into();
    let r = count_files(
        &encoder,
        &[parquet_input(pq.clone())],
        &s,
        &options(1, 1 << 20),
        &mut no_progress(),
    );
    let message = format!("{:?}", r.as_ref().err());
    check(message.contains("holds Int64"), &message)?;
    let data = fs::read(&pq)?;
    let cut = dir.file(
        "cut.parquet",
        data.get(..data.len() / 2).unwrap_or_default(),
    )?;
    let r = count_files(
        &encoder,
        &[parquet_input(cut)],
        &settings(None, false),
        &options(1, 1 << 20),
        &mut no_progress(),
    );
    check(
        matches!(&r, Err(Error::Io { path, .. }) if path.ends_with("cut.parquet")),
        format!("{r:?}"),
    )
}

#[cfg(unix)]
#[test]
fn inputs_must_be_regular_files_and_unchanged() -> TestResult {
    let encoder = gpt2()?;
    let r = count_files(
        &encoder,
        &[text_input(PathBuf::from("/dev/zero"))],
        &settings(None, false),
        &options(1, 1 << 20),
        &mut no_progress(),
    );
    check(
        format!("{r:?}").contains("character device"),
        format!("{r:?}"),
    )?;
    // A file that grows while read: the run stops with an error naming it.
    let dir = TempDir::new()?;
    let path = dir.file("grow.txt", sample_text(9, 400_000).as_bytes())?;
    let grow = path.clone();
    let mut appended = false;
    let r = count_files(
        &encoder,
        &[text_input(path)],
        &settings(None, false),
        &options(1, 4096),
        &mut |p: &Progress| {
            if !appended && p.bytes_done < p.bytes_total {
                appended = true;
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(&grow)
                    .map_err(|e| Error::Io {
                        path: "grow".into(),
                        reason: e.to_string(),
                    })?;
                let _ = f.write_all(b"appended");
            }
            Ok(())
        },
    );
    // The progress callback may come only at the end (a fast machine): then nothing changed.
    if appended {
        check(
            format!("{r:?}").contains("the file changed"),
            format!("{r:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn one_file_s_bytes_encode_as_the_run_reads_the_file() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let text = sample_text(7, 30_000);
    let records: Vec<String> = (0..12).map(|i| sample_text(i, 700)).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())?;
    let zst = zstd::stream::encode_all(jsonl_of(&records).as_bytes(), 3)?;
    let inputs = vec![
        text_input(dir.file("a.txt.gz", &gz.finish()?)?),
        jsonl_input(dir.file("r.jsonl.zst", &zst)?),
        text_input(dir.file("bad.txt", b"ok \xff then")?),
    ];
    let replace = settings(encoder.eot_token(), true);
    let out = dir.0.join("run.bin");
    // Small jobs: the run cuts the files; one file's bytes are one segment.
    tokenize_files(
        &encoder,
        &inputs,
        &out,
        &replace,
        &options(2, 2000),
        &mut no_progress(),
    )?;
    let mut tokens = Vec::new();
    let mut replaced = 0;
    for input in &inputs {
        let encoded = encode_file_bytes(&encoder, &replace, input, &fs::read(&input.path)?)?;
        check(
            encoded.doc_starts.first() == Some(&0),
            "a file starts a document",
        )?;
        tokens.extend(
            encoded
                .bytes
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
        );
        replaced += encoded.replaced;
    }
    check(tokens == read_u16(&out)?, "the run's tokens")?;
    check(replaced == 1, "one replaced sequence")?;
    // Strict: the run's own error.
    let strict = settings(encoder.eot_token(), false);
    let run = tokenize_files(
        &encoder,
        &inputs[2..],
        &dir.0.join("strict.bin"),
        &strict,
        &options(1, 2000),
        &mut no_progress(),
    );
    let one = encode_file_bytes(&encoder, &strict, &inputs[2], b"ok \xff then");
    match (run, one) {
        (Err(a), Err(b)) => check(a.to_string() == b.to_string(), format!("{a} vs {b}")),
        _ => check(false, "both fail"),
    }
}

/// Jobs shrink near the end of a run (`source::Reader::retarget`) and a rerun replaces an old
/// output whose files are let go on a helper thread: the tokens, index and sidecar are those of
/// the documents, whatever the job sizes, and nothing of the old output is left.
#[test]
fn tail_jobs_and_rerun_over_an_old_output() -> TestResult {
    let encoder = gpt2()?;
    let dir = TempDir::new()?;
    let docs: Vec<String> = (0..6).map(|i| sample_text(i, 60_000 + 5_000 * i)).collect();
    let inputs: Vec<Input> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| dir.file(&format!("{i}.txt"), d.as_bytes()).map(text_input))
        .collect::<std::io::Result<_>>()?;
    let eot = encoder.eot_token();
    let out = dir.0.join("out.bin");
    for (threads, job_bytes) in [(2, 128 << 10), (3, 100_000), (1, 1 << 20)] {
        let fresh = RunOptions {
            resume: false,
            ..options(threads, job_bytes)
        };
        let (want, starts) = expected(&encoder, &docs, eot)?;
        let run = tokenize_files(
            &encoder,
            &inputs,
            &out,
            &settings(eot, false),
            &fresh,
            &mut no_progress(),
        )?;
        check(
            read_u16(&out)? == want,
            format!("tokens, {threads} threads"),
        )?;
        check(read_u64(&Paths::new(&out).idx)? == starts, "index")?;
        check(run.meta["token_count"] == want.len() as u64, "sidecar")?;
        // A shorter rerun over it: only its own tokens remain.
        let (want, starts) = expected(&encoder, &docs[..1], eot)?;
        tokenize_files(
            &encoder,
            &inputs[..1],
            &out,
            &settings(eot, false),
            &fresh,
            &mut no_progress(),
        )?;
        check(read_u16(&out)? == want, "the rerun's tokens")?;
        check(
            read_u64(&Paths::new(&out).idx)? == starts,
            "the rerun's index",
        )?;
        let on_disk: Value = serde_json::from_slice(&fs::read(Paths::new(&out).meta)?)?;
        check(
            on_disk["token_count"] == want.len() as u64,
            "the rerun's sidecar",
        )?;
        check(!Paths::new(&out).journal.exists(), "no journal left")?;
    }
    Ok(())
}
