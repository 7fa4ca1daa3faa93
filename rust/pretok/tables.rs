//! Character classes of the pre-tokenizer patterns: `\p{L}`, `\p{N}`, `\s` (White_Space) and
//! everything else, exactly as the `regex` engine that fancy-regex delegates to classifies them.
//!
//! ASCII goes through a 256-entry byte table (bytes >= 0x80 map to [`NA`], "decode me"); other
//! code points through a two-stage table generated into `ucd.rs`: `STAGE1[cp >> 8]` names a
//! block of 256 code points and `STAGE2` holds the blocks' classes, 2 bits per code point.
//! Code points past `STAGE1` are all [`O`].

use super::ucd::{STAGE1, STAGE2};

/// `\p{L}`.
pub(super) const L: u8 = 0;
/// `\p{N}`.
pub(super) const N: u8 = 1;
/// `\s`: Unicode White_Space.
pub(super) const W: u8 = 2;
/// Anything else (`[^\s\p{L}\p{N}]`).
pub(super) const O: u8 = 3;
/// In [`BYTE_CLASS`] only: a byte >= 0x80, part of a multi-byte UTF-8 sequence.
pub(super) const NA: u8 = 4;

/// The class of each ASCII byte; [`NA`] for bytes >= 0x80.
pub(super) static BYTE_CLASS: [u8; 256] = build_byte_class();

const fn build_byte_class() -> [u8; 256] {
    let mut t = [NA; 256];
    let mut b = 0u8;
    while b < 0x80 {
        t[b as usize] = match b {
            b'a'..=b'z' | b'A'..=b'Z' => L,
            b'0'..=b'9' => N,
            b'\t'..=b'\r' | b' ' => W,
            _ => O,
        };
        b += 1;
    }
    t
}

/// The class ([`L`], [`N`], [`W`] or [`O`]) of a code point.
#[inline(always)]
pub(super) fn class_of(cp: u32) -> u8 {
    let Some(&block) = STAGE1.get((cp >> 8) as usize) else {
        return O;
    };
    let byte = STAGE2
        .get(((block as usize) << 6) | ((cp as usize & 0xFF) >> 2))
        .copied()
        .unwrap_or(0xFF);
    (byte >> ((cp & 3) << 1)) & 3
}

/// Decodes the multi-byte UTF-8 sequence at `i` (its lead byte is >= 0x80) and returns its class
/// and length. `bytes` must be the bytes of a `str` and `i` a char boundary; on anything else it
/// still returns without panicking, with a meaningless class.
#[inline(always)]
pub(super) fn class_non_ascii(bytes: &[u8], i: usize, b0: u8) -> (u8, usize) {
    let b1 = u32::from(bytes.get(i + 1).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xE0 {
        return (class_of((u32::from(b0 & 0x1F) << 6) | b1), 2);
    }
    let b2 = u32::from(bytes.get(i + 2).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xF0 {
        return (class_of((u32::from(b0 & 0x0F) << 12) | (b1 << 6) | b2), 3);
    }
    let b3 = u32::from(bytes.get(i + 3).copied().unwrap_or(0) & 0x3F);
    (
        class_of((u32::from(b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3),
        4,
    )
}

/// The class and UTF-8 length of the char at `i`, or `None` at the end.
#[inline(always)]
pub(super) fn class_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    let b0 = *bytes.get(i)?;
    let c = BYTE_CLASS[b0 as usize];
    if c != NA {
        return Some((c, 1));
    }
    Some(class_non_ascii(bytes, i, b0))
}

/// The end of the maximal run of chars of class `k` that starts at `i`.
#[inline(always)]
pub(super) fn run(bytes: &[u8], mut i: usize, k: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        let c = BYTE_CLASS[b as usize];
        if c == k {
            i += 1;
        } else if c == NA {
            let (c, len) = class_non_ascii(bytes, i, b);
            if c != k {
                return i;
            }
            i += len;
        } else {
            return i;
        }
    }
    i
}

/// [`run`] for letters: the same result, 8 ASCII bytes at a time (SWAR), so that a word of up to
/// 7 letters costs one well-predicted step instead of a branch per letter.
#[inline(always)]
pub(super) fn run_letters(bytes: &[u8], mut i: usize) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*chunk);
        // Fold ASCII upper case onto lower case; then, per byte (7 bits, so no carries), the
        // high bit of `ge` says ">= b'a'" and that of `gt` "> b'z'".
        let v = (x | 0x2020_2020_2020_2020) & !HIGH;
        let ge = v + 0x1f1f_1f1f_1f1f_1f1f;
        let gt = v + 0x0505_0505_0505_0505;
        let stop = !(ge & !gt & !x) & HIGH;
        if stop == 0 {
            i += 8;
            continue;
        }
        i += (stop.trailing_zeros() / 8) as usize;
        return match bytes.get(i) {
            // A non-ASCII char may still be a letter.
            Some(&b) if b >= 0x80 => run(bytes, i, L),
            _ => i,
        };
    }
    run(bytes, i, L)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fancy_regex::Regex;

    /// Every Unicode scalar value, in order, as one string.
    fn all_chars() -> String {
        (0u32..=0x10FFFF).filter_map(char::from_u32).collect()
    }

    /// The class of every code point (surrogates: [`O`]) according to the regex engine itself.
    pub(crate) fn engine_classes() -> Result<Vec<u8>, String> {
        let all = all_chars();
        let mut classes = vec![O; 0x110000];
        for (pat, k) in [(r"\p{L}", L), (r"\p{N}", N), (r"\s", W)] {
            let re = Regex::new(pat).map_err(|e| e.to_string())?;
            for m in re.find_iter(&all) {
                let m = m.map_err(|e| e.to_string())?;
                let mut chars = m.as_str().chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(format!("{pat} matched {:?}", m.as_str()));
                };
                let slot = classes
                    .get_mut(c as usize)
                    .ok_or_else(|| format!("{c:?} out of range"))?;
                if *slot != O {
                    return Err(format!("{c:?} is in two classes"));
                }
                *slot = k;
            }
        }
        Ok(classes)
    }

    /// Renders `ucd.rs` from the classes of all code points.
    fn render_ucd(classes: &[u8]) -> String {
        let last = classes.iter().rposition(|&c| c != O).unwrap_or(0);
        let n_blocks = (last >> 8) + 1;
        let mut blocks: Vec<[u8; 64]> = Vec::new();
        let mut stage1 = Vec::with_capacity(n_blocks);
        for chunk in classes.chunks(256).take(n_blocks) {
            let mut packed = [0u8; 64];
            for (p, quad) in packed.iter_mut().zip(chunk.chunks(4)) {
                *p = quad
                    .iter()
                    .enumerate()
                    .fold(0u8, |acc, (k, &c)| acc | (c << (2 * k)));
            }
            let id = match blocks.iter().position(|b| *b == packed) {
                Some(id) => id,
                None => {
                    blocks.push(packed);
                    blocks.len() - 1
                }
            };
            stage1.push(u8::try_from(id).unwrap_or(u8::MAX));
        }
        let mut out = String::new();
        out.push_str(
            "// @generated by `FASTLLM_REGEN_UCD=1 cargo test --lib pretok::tables::tests::ucd_is_up_to_date`\n\
             // from the classification of every code point by the regex engine in Cargo.lock\n\
             // (fancy-regex 0.20 delegating to regex-syntax 0.8.12, Unicode 16.0.0): DO NOT EDIT.\n\
             // Classes, 2 bits per code point: 0 = \\p{L}, 1 = \\p{N}, 2 = \\s, 3 = other.\n\n",
        );
        out.push_str(&format!(
            "/// `STAGE1[cp >> 8]`: the block of code points `cp & !0xFF ..= cp | 0xFF` in `STAGE2`.\n\
             #[rustfmt::skip]\npub(super) static STAGE1: [u8; {}] = [\n",
            stage1.len()
        ));
        for line in stage1.chunks(16) {
            let items: Vec<String> = line.iter().map(|b| format!("{b:3}")).collect();
            out.push_str(&format!("    {},\n", items.join(", ")));
        }
        out.push_str(&format!(
            "];\n\n/// 64 bytes per block: code point `cp` is at bits `2 * (cp & 3)` of byte \
             `(cp & 0xFF) >> 2`.\n#[rustfmt::skip]\npub(super) static STAGE2: [u8; {}] = [\n",
            blocks.len() * 64
        ));
        for block in &blocks {
            for line in block.chunks(16) {
                let items: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
                out.push_str(&format!("    {},\n", items.join(", ")));
            }
        }
        out.push_str("];\n");
        out
    }

    #[test]
    fn tables_match_the_regex_engine_for_every_code_point() -> Result<(), String> {
        let classes = engine_classes()?;
        let mut wrong = Vec::new();
        for (cp, &want) in (0u32..).zip(classes.iter()) {
            if class_of(cp) != want {
                wrong.push(cp);
            }
        }
        assert_eq!(
            wrong,
            Vec::<u32>::new(),
            "code points classified differently"
        );
        // The byte table and the decoder agree with the engine too.
        let mut buf = [0u8; 4];
        let mut checked = 0usize;
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
            let s = c.encode_utf8(&mut buf);
            let want = classes.get(c as usize).copied();
            if class_at(s.as_bytes(), 0) != want.map(|k| (k, s.len())) {
                wrong.push(c as u32);
            }
            checked += 1;
        }
        assert_eq!(wrong, Vec::<u32>::new(), "decoded classes differ");
        assert_eq!(checked, 0x110000 - 0x800);
        Ok(())
    }

    /// Checks that `ucd.rs` is what the generator makes from the engine's classes today; with
    /// `FASTLLM_REGEN_UCD=1` it rewrites the file instead.
    #[test]
    fn ucd_is_up_to_date() -> Result<(), String> {
        let text = render_ucd(&engine_classes()?);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/", file!());
        let path = std::path::Path::new(path).with_file_name("ucd.rs");
        if std::env::var_os("FASTLLM_REGEN_UCD").is_some() {
            std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        }
        let on_disk = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if on_disk != text {
            return Err(format!("{} is stale: regenerate it", path.display()));
        }
        Ok(())
    }

    #[test]
    fn runs() {
        let s = "héllo wörld";
        assert_eq!(run(s.as_bytes(), 0, L), "héllo".len());
        assert_eq!(run(s.as_bytes(), 0, N), 0);
        assert_eq!(run("٣１2x".as_bytes(), 0, N), "٣１2".len());
        assert_eq!(class_at(b"", 0), None);
        for text in [
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh1",
            "abcdefgh é",
            "ab@[`{Zz",
            "AZaz",
            "abcdefgXYZéèñ中x",
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-",
            "x\u{80}",
            "xy\u{301}",
            "abcdefg\u{7f}",
        ] {
            for i in 0..text.len() {
                if text.is_char_boundary(i) {
                    assert_eq!(
                        run_letters(text.as_bytes(), i),
                        run(text.as_bytes(), i, L),
                        "{text:?} {i}"
                    );
                }
            }
        }
        for b in 0..0x80u8 {
            let text = [b'a', b'b', b'c', b, b'd', b'e', b'f', b'g', b'h', b'i'];
            assert_eq!(
                run_letters(&text, 0),
                if b.is_ascii_alphabetic() { 10 } else { 3 },
                "{b}"
            );
        }
    }
}
