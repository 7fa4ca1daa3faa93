//! Vocabulary files: tiktoken's `.tiktoken` rank files and GPT-2's `encoder.json` + `vocab.bpe`
//! pair, plus the sha256 check used for the bundled files.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::error::{clip, Error, Result};

/// A token id. The BPE merge priority of a mergeable token equals its id (tiktoken's convention).
pub type Rank = u32;

/// Mergeable token bytes to rank.
pub type Ranks = FxHashMap<Vec<u8>, Rank>;

/// The largest token id any tokenizer of the crate accepts (`CoreBpe`, `SimpleTokenizer`, the
/// trainer's vocabulary size): decoders are flat tables indexed by id, so an id costs memory.
pub const MAX_ID: Rank = (1 << 26) - 1;

pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Reads a vocabulary file, decompressing it when it is zstd-compressed (the bundled rank files
/// are stored so: o200k_base's 3.6 MB are 1.3 MB). Checksums are of the decompressed bytes.
pub fn read_vocab_file(path: &str) -> Result<Vec<u8>> {
    let data = read_file(path)?;
    if !data.starts_with(&ZSTD_MAGIC) {
        return Ok(data);
    }
    zstd::stream::decode_all(data.as_slice()).map_err(|e| Error::InvalidVocab {
        source: path.to_string(),
        reason: format!("the file starts like zstd but does not decompress ({e})"),
    })
}

/// Fails unless `data` hashes to `expected` (lower-case hex sha256).
pub fn verify_sha256(data: &[u8], expected: &str, source: &str) -> Result<()> {
    let actual = sha256_hex(data);
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            source: source.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Parses a `.tiktoken` file: one `<base64 token> <rank>` per line, blank lines ignored.
/// `source` names the file in error messages.
///
/// Accepted as tiktoken's `load_tiktoken_bpe` accepts them (`line.split()` on each of
/// `contents.splitlines()`): the two fields may be separated by any run of ASCII whitespace
/// (spaces, tabs), lines may end in `\n`, `\r\n` or `\r`, and a leading UTF-8 byte order mark is
/// skipped (tiktoken's lenient base64 decoder drops it). Ranks must be at most [`MAX_ID`]
/// (2**26 - 1): the error names the file, the line and the token.
/// Linear in the file's size; messages quote at most 80 characters of a line.
pub fn parse_tiktoken(data: &[u8], source: &str) -> Result<Ranks> {
    const QUOTE: usize = 80;
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut ranks = Ranks::default();
    ranks.reserve(data.len() / 12);
    let mut line_of_rank: FxHashMap<Rank, usize> = FxHashMap::default();
    let lines = data
        .split(|&b| b == b'\n')
        .flat_map(|l| l.strip_suffix(b"\r").unwrap_or(l).split(|&b| b == b'\r'));
    for (index, line) in lines.enumerate() {
        let line_no = index + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |reason: String| Error::VocabFormat {
            source: source.to_string(),
            line: line_no,
            reason,
        };
        let text = std::str::from_utf8(line)
            .map_err(|_| bad("line is not ASCII; expected '<base64 token> <rank>'".into()))?;
        let mut fields = text.split_ascii_whitespace();
        let (Some(token_b64), Some(rank_text), None) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(format!(
                "expected '<base64 token> <rank>', found {:?}",
                clip(text, QUOTE)
            )));
        };
        let quoted = clip(token_b64, QUOTE);
        let token = STANDARD
            .decode(token_b64)
            .map_err(|e| bad(format!("invalid base64 token {quoted:?}: {e}")))?;
        let rank: Rank = rank_text.parse().map_err(|_| {
            bad(format!(
                "invalid rank {:?}: expected an integer below 2**26",
                clip(rank_text, QUOTE)
            ))
        })?;
        if rank > MAX_ID {
            return Err(bad(format!(
                "token {quoted:?} has id {rank}, which is too large: fastllm's token ids must be \
                 below 2**26 = {}",
                u64::from(MAX_ID) + 1
            )));
        }
        if let Some(first) = line_of_rank.insert(rank, line_no) {
            return Err(bad(format!("rank {rank} already given on line {first}")));
        }
        if ranks.insert(token, rank).is_some() {
            return Err(bad(format!("token {quoted:?} appears twice")));
        }
    }
    if ranks.is_empty() {
        return Err(Error::InvalidVocab {
            source: source.to_string(),
            reason: "no tokens found; is this a .tiktoken file?".into(),
        });
    }
    Ok(ranks)
}

/// Writes ranks in the `.tiktoken` format, sorted by rank.
pub fn format_tiktoken(ranks: &Ranks) -> Vec<u8> {
    let mut by_rank: Vec<(&Vec<u8>, Rank)> = ranks.iter().map(|(k, &v)| (k, v)).collect();
    by_rank.sort_unstable_by_key(|&(_, rank)| rank);
    let mut out = Vec::with_capacity(ranks.len() * 12);
    for (token, rank) in by_rank {
        out.extend_from_slice(STANDARD.encode(token).as_bytes());
        out.push(b' ');
        out.extend_from_slice(rank.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// GPT-2's reversible byte-to-unicode table (from its `encoder.py`): printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards in byte order. Returns the bytes in rank order
/// (printable first) and the char-to-byte map.
fn data_gym_bytes() -> (Vec<u8>, FxHashMap<char, u8>) {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    let mut order: Vec<u8> = (0..=255u8).filter(|&b| printable(b)).collect();
    let mut char_to_byte: FxHashMap<char, u8> = order.iter().map(|&b| (char::from(b), b)).collect();
    for (code, b) in (256u32..).zip((0..=255u8).filter(|&b| !printable(b))) {
        order.push(b);
        if let Some(c) = char::from_u32(code) {
            char_to_byte.insert(c, b);
        }
    }
    (order, char_to_byte)
}

/// Builds ranks from GPT-2's original `vocab.bpe` (merges) and checks them against
/// `encoder.json` (token to id), as tiktoken's `data_gym_to_mergeable_bpe_ranks` does.
pub fn parse_data_gym(
    vocab_bpe: &[u8],
    vocab_source: &str,
    encoder_json: &[u8],
    encoder_source: &str,
) -> Result<Ranks> {
    let (order, char_to_byte) = data_gym_bytes();
    let decode = |token: &str, line: usize, source: &str| -> Result<Vec<u8>> {
        token
            .chars()
            .map(|c| {
                char_to_byte
                    .get(&c)
                    .copied()
                    .ok_or_else(|| Error::VocabFormat {
                        source: source.to_string(),
                        line,
                        reason: format!("character {c:?} is not in GPT-2's byte-to-unicode table"),
                    })
            })
            .collect()
    };
    let mut ranks: Ranks = order
        .iter()
        .enumerate()
        .map(|(i, &b)| (vec![b], i as Rank))
        .collect();
    let text = std::str::from_utf8(vocab_bpe).map_err(|e| Error::InvalidVocab {
        source: vocab_source.to_string(),
        reason: format!("not UTF-8: {e}"),
    })?;
    let lines: Vec<&str> = text.split('\n').collect();
    // The first line is a version header; the last is empty after the final newline.
    let merges = lines.get(1..lines.len().saturating_sub(1)).unwrap_or(&[]);
    for (i, merge) in merges.iter().enumerate() {
        let line = i + 2;
        let mut parts = merge.split_whitespace();
        let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::VocabFormat {
                source: vocab_source.to_string(),
                line,
                reason: format!("expected two space-separated tokens, found {merge:?}"),
            });
        };
        let mut token = decode(first, line, vocab_source)?;
        token.extend(decode(second, line, vocab_source)?);
        let rank = ranks.len() as Rank;
        ranks.insert(token, rank);
    }

    let json: serde_json::Value =
        serde_json::from_slice(encoder_json).map_err(|e| Error::VocabFormat {
            source: encoder_source.to_string(),
            line: e.line(),
            reason: format!("invalid JSON: {e}"),
        })?;
    let Some(object) = json.as_object() else {
        return Err(Error::InvalidVocab {
            source: encoder_source.to_string(),
            reason: "expected a JSON object mapping tokens to ids".into(),
        });
    };
    let mut mergeable = 0usize;
    for (key, value) in object {
        if key == "<|endoftext|>" || key == "<|startoftext|>" {
            continue;
        }
        mergeable += 1;
        let token = decode(key, 0, encoder_source)?;
        let id = value.as_u64();
        if ranks.get(&token).map(|&r| u64::from(r)) != id {
            return Err(Error::InvalidVocab {
                source: encoder_source.to_string(),
                reason: format!(
                    "token {key:?} has id {value} but {vocab_source} gives it rank {:?}",
                    ranks.get(&token)
                ),
            });
        }
    }
    if mergeable != ranks.len() {
        return Err(Error::InvalidVocab {
            source: encoder_source.to_string(),
            reason: format!(
                "{mergeable} mergeable tokens, but {vocab_source} defines {}",
                ranks.len()
            ),
        });
    }
    Ok(ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiktoken_round_trip() -> Result<()> {
        let mut ranks = Ranks::default();
        ranks.insert(b"a".to_vec(), 0);
        ranks.insert(b"b".to_vec(), 1);
        ranks.insert(b"ab".to_vec(), 2);
        let text = format_tiktoken(&ranks);
        assert_eq!(text, b"YQ== 0\nYg== 1\nYWI= 2\n".to_vec());
        assert_eq!(parse_tiktoken(&text, "t")?, ranks);
        Ok(())
    }

    #[test]
    fn tiktoken_errors_name_line() {
        let err = parse_tiktoken(b"YQ== 0\nYg==\n", "v.tiktoken");
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("v.tiktoken, line 2: expected '<base64 token> <rank>', found \"Yg==\"".into())
        );
        let err = parse_tiktoken(b"YQ== 0\n!!!! 1\n", "v").map_err(|e| e.to_string());
        assert_eq!(
            err.as_ref()
                .map_err(|e| e.starts_with("v, line 2: invalid base64")),
            Err(true)
        );
        let err = parse_tiktoken(b"YQ== x\n", "v").map_err(|e| e.to_string());
        assert_eq!(
            err.as_ref().map_err(|e| e.contains("invalid rank \"x\"")),
            Err(true)
        );
        let err = parse_tiktoken(b"YQ== 67108864\n", "v.tiktoken").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "v.tiktoken, line 1: token \"YQ==\" has id 67108864, which is too large: \
                 fastllm's token ids must be below 2**26 = 67108864"
                    .into()
            )
        );
        let long = format!("{} 0 1\n", "Q".repeat(1 << 20));
        let err = parse_tiktoken(long.as_bytes(), "v").map_err(|e| e.to_string());
        assert!(err.as_ref().is_err_and(|e| e.len() < 300), "{err:?}");
        let err = parse_tiktoken(b"YQ== 0\nYg== 0\n", "v").map_err(|e| e.to_string());
        assert_eq!(err, Err("v, line 2: rank 0 already given on line 1".into()));
        assert!(matches!(
            parse_tiktoken(b"\n", "v"),
            Err(Error::InvalidVocab { .. })
        ));
    }

    #[test]
    fn tiktoken_separators_and_bom_like_tiktoken() -> Result<()> {
        let mut expected = Ranks::default();
        expected.insert(b"a".to_vec(), 0);
        expected.insert(b"b".to_vec(), 1);
        for text in [
            &b"YQ==\t0\nYg==  1\n"[..],
            b"\xef\xbb\xbfYQ== 0\r\nYg== 1\r\n",
            b"YQ== 0\rYg== 1",
            b" YQ== 0 \n\n \t\nYg==\t \t1\n",
        ] {
            assert_eq!(parse_tiktoken(text, "t")?, expected);
        }
        Ok(())
    }

    #[test]
    fn checksum() {
        let hex = sha256_hex(b"abc");
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(verify_sha256(b"abc", &hex, "x"), Ok(()));
        assert!(matches!(
            verify_sha256(b"abd", &hex, "x"),
            Err(Error::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn data_gym_matches_encoder() -> Result<()> {
        // 256 byte tokens, then one merge of "h" + "i".
        let (order, _) = data_gym_bytes();
        assert_eq!(order.len(), 256);
        let mut encoder = serde_json::Map::new();
        let (_, char_to_byte) = data_gym_bytes();
        for (c, b) in &char_to_byte {
            let rank = order.iter().position(|x| x == b).unwrap_or(0);
            encoder.insert(c.to_string(), serde_json::Value::from(rank));
        }
        encoder.insert("hi".into(), serde_json::Value::from(256));
        encoder.insert("<|endoftext|>".into(), serde_json::Value::from(257));
        let json = serde_json::Value::Object(encoder).to_string();
        let ranks = parse_data_gym(
            b"#version: 0.2\nh i\n",
            "vocab.bpe",
            json.as_bytes(),
            "e.json",
        )?;
        assert_eq!(ranks.len(), 257);
        assert_eq!(ranks.get(b"hi".as_slice()), Some(&256));
        assert_eq!(
            ranks.get(b" ".as_slice()),
            Some(&(order.iter().position(|&b| b == b' ').unwrap_or(0) as u32))
        );
        let bad = parse_data_gym(
            b"#version: 0.2\nh i\n",
            "vocab.bpe",
            b"{\"hi\": 3}",
            "e.json",
        );
        assert!(matches!(bad, Err(Error::InvalidVocab { .. })));
        Ok(())
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any bytes: a clean `Err` or ranks that format back to an equivalent file; never a
        /// panic, and a message of bounded length.
        #[test]
        fn tiktoken_parser_never_panics(data in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\n'), Just(b'\t'), Just(b'\r'), Just(b'='),
                        Just(b'Q'), Just(b'Y'), Just(b'1'), Just(b'0'), any::<u8>()],
            0..200,
        )) {
            match parse_tiktoken(&data, "fuzz") {
                Ok(ranks) => prop_assert_eq!(parse_tiktoken(&format_tiktoken(&ranks), "f")?, ranks),
                Err(e) => prop_assert!(e.to_string().len() < 600),
            }
        }

        /// Well-formed files in any separator layout parse to their ranks.
        #[test]
        fn tiktoken_parser_reads_any_layout(
            tokens in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..6), 1..20),
            sep in prop_oneof![Just(" "), Just("\t"), Just("  "), Just(" \t ")],
            end in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        ) {
            let mut text = String::new();
            let mut expected = Ranks::default();
            for (rank, token) in tokens.iter().enumerate() {
                text.push_str(&format!("{}{sep}{rank}{end}", STANDARD.encode(token)));
                expected.insert(token.clone(), rank as Rank);
            }
            prop_assert_eq!(parse_tiktoken(text.as_bytes(), "t")?, expected);
        }
    }
}
