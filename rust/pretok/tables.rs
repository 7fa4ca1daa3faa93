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

/// A class table: ASCII through a 256-entry byte table ([`Classes::NA`] for bytes >= 0x80),
/// other code points through a two-stage table generated into a `ucd*.rs` file:
/// `STAGE1[cp >> 8]` names a block of 256 code points and `STAGE2` holds the blocks' classes,
/// [`Classes::BITS`] bits per code point. The lookups below are generic over it, so that each
/// scanner gets them monomorphised (and inlined) for its own table.
pub(super) trait Classes {
    /// Bits per code point in `STAGE2` (2 or 4).
    const BITS: u32;
    /// The class of every code point past `STAGE1`.
    const PAST: u8;
    /// In the byte table only: a byte >= 0x80.
    const NA: u8;
    /// The class of whitespace (`\s`).
    const SPACE: u8;
    /// The class of `\p{N}`.
    const NUM: u8;
    /// The byte table.
    fn byte_class() -> &'static [u8; 256];
    /// `STAGE1` and `STAGE2`.
    fn stages() -> (&'static [u8], &'static [u8]);
}

/// The r50k / cl100k table: [`L`], [`N`], [`W`], [`O`] at 2 bits (`ucd.rs`).
pub(super) struct Coarse;

impl Classes for Coarse {
    const BITS: u32 = 2;
    const PAST: u8 = O;
    const NA: u8 = NA;
    const SPACE: u8 = W;
    const NUM: u8 = N;
    #[inline(always)]
    fn byte_class() -> &'static [u8; 256] {
        &BYTE_CLASS
    }
    #[inline(always)]
    fn stages() -> (&'static [u8], &'static [u8]) {
        (&STAGE1, &STAGE2)
    }
}

/// The class of a code point in table `T`.
#[inline(always)]
pub(super) fn lookup<T: Classes>(cp: u32) -> u8 {
    let (stage1, stage2) = T::stages();
    let Some(&block) = stage1.get((cp >> 8) as usize) else {
        return T::PAST;
    };
    // Code points per byte of `STAGE2`, and so bytes per block.
    let per_byte = (8 / T::BITS) as usize;
    let index = (block as usize) * (256 / per_byte) + ((cp as usize & 0xFF) / per_byte);
    let Some(&byte) = stage2.get(index) else {
        return T::PAST;
    };
    (byte >> ((cp as usize % per_byte) as u32 * T::BITS)) & ((1 << T::BITS) - 1)
}

/// Decodes the multi-byte UTF-8 sequence at `i` (its lead byte `b0` is >= 0x80) and returns its
/// class in `T` and its length. `bytes` must be the bytes of a `str` and `i` a char boundary; on
/// anything else it still returns without panicking, with a meaningless class.
#[inline(always)]
pub(super) fn decode_class<T: Classes>(bytes: &[u8], i: usize, b0: u8) -> (u8, usize) {
    let b1 = u32::from(bytes.get(i + 1).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xE0 {
        return (lookup::<T>((u32::from(b0 & 0x1F) << 6) | b1), 2);
    }
    let b2 = u32::from(bytes.get(i + 2).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xF0 {
        return (
            lookup::<T>((u32::from(b0 & 0x0F) << 12) | (b1 << 6) | b2),
            3,
        );
    }
    let b3 = u32::from(bytes.get(i + 3).copied().unwrap_or(0) & 0x3F);
    (
        lookup::<T>((u32::from(b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3),
        4,
    )
}

/// The class in `T` and the UTF-8 length of the char at `i`, or `None` at the end.
#[inline(always)]
pub(super) fn class_at_in<T: Classes>(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    let b0 = *bytes.get(i)?;
    let c = T::byte_class()[b0 as usize];
    if c != T::NA {
        return Some((c, 1));
    }
    Some(decode_class::<T>(bytes, i, b0))
}

/// The class ([`L`], [`N`], [`W`] or [`O`]) of a code point.
#[cfg(test)]
pub(super) fn class_of(cp: u32) -> u8 {
    lookup::<Coarse>(cp)
}

/// [`decode_class`] in the coarse table.
#[inline(always)]
pub(super) fn class_non_ascii(bytes: &[u8], i: usize, b0: u8) -> (u8, usize) {
    decode_class::<Coarse>(bytes, i, b0)
}

/// The class and UTF-8 length of the char at `i`, or `None` at the end.
#[inline(always)]
pub(super) fn class_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    class_at_in::<Coarse>(bytes, i)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use fancy_regex::Regex;

    /// The class of every code point according to the regex engine itself: `classes` names
    /// each class by a pattern that matches one char of it; code points that none matches
    /// (surrogates included) are `rest`. Errs if a code point is in two classes.
    pub(crate) fn engine_classes_of(classes: &[(&str, u8)], rest: u8) -> Result<Vec<u8>, String> {
        let all: String = (0u32..=0x10FFFF).filter_map(char::from_u32).collect();
        let mut out = vec![rest; 0x110000];
        for &(pat, k) in classes {
            let re = Regex::new(pat).map_err(|e| e.to_string())?;
            for m in re.find_iter(&all) {
                let m = m.map_err(|e| e.to_string())?;
                let mut chars = m.as_str().chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(format!("{pat} matched {:?}", m.as_str()));
                };
                let slot = out
                    .get_mut(c as usize)
                    .ok_or_else(|| format!("{c:?} out of range"))?;
                if *slot != rest {
                    return Err(format!("{c:?} is in two classes"));
                }
                *slot = k;
            }
        }
        Ok(out)
    }

    /// The class of every code point (surrogates: [`O`]) according to the regex engine itself.
    pub(crate) fn engine_classes() -> Result<Vec<u8>, String> {
        engine_classes_of(&[(r"\p{L}", L), (r"\p{N}", N), (r"\s", W)], O)
    }

    /// What one generated table file holds: its classes at `bits` bits per code point, those
    /// past the last block all `rest`; `test` (the test that regenerates it) and `legend` (the
    /// classes' numbers) go into its header.
    pub(crate) struct Layout<'a> {
        pub(crate) bits: u32,
        pub(crate) rest: u8,
        pub(crate) test: &'a str,
        pub(crate) legend: &'a str,
    }

    /// The one generator of the `ucd*.rs` files: renders the two-stage table (as [`lookup`]
    /// reads it) of the classes of all code points.
    pub(crate) fn render_ucd(classes: &[u8], layout: &Layout) -> Result<String, String> {
        let bits = layout.bits as usize;
        let per_byte = 8 / bits;
        let block_bytes = 256 / per_byte;
        let last = classes.iter().rposition(|&c| c != layout.rest).unwrap_or(0);
        let n_blocks = (last >> 8) + 1;
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut stage1 = Vec::with_capacity(n_blocks);
        for chunk in classes.chunks(256).take(n_blocks) {
            let mut packed = vec![0u8; block_bytes];
            for (p, group) in packed.iter_mut().zip(chunk.chunks(per_byte)) {
                *p = group
                    .iter()
                    .enumerate()
                    .fold(0u8, |acc, (k, &c)| acc | (c << (bits * k)));
            }
            let id = match blocks.iter().position(|b| *b == packed) {
                Some(id) => id,
                None => {
                    blocks.push(packed);
                    blocks.len() - 1
                }
            };
            stage1.push(u8::try_from(id).map_err(|_| "more than 256 blocks".to_string())?);
        }
        let mut out = String::new();
        out.push_str(&format!(
            "// @generated by `FASTLLM_REGEN_UCD=1 cargo test --lib {}`\n\
             // from the classification of every code point by the regex engine in Cargo.lock\n\
             // (fancy-regex 0.20 delegating to regex-syntax 0.8.12, Unicode 16.0.0): DO NOT EDIT.\n\
             // Classes, {bits} bits per code point{}\n\n",
            layout.test, layout.legend
        ));
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
            "];\n\n/// {block_bytes} bytes per block: code point `cp` is at bits `{bits} * (cp & {})` of \
             byte `(cp & 0xFF) >> {}`.\n#[rustfmt::skip]\npub(super) static STAGE2: [u8; {}] = [\n",
            per_byte - 1,
            per_byte.trailing_zeros(),
            blocks.len() * block_bytes
        ));
        for block in &blocks {
            for line in block.chunks(16) {
                let items: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
                out.push_str(&format!("    {},\n", items.join(", ")));
            }
        }
        out.push_str("];\n");
        Ok(out)
    }

    /// Checks that the generated file `name` (next to this one) is `text`, what the generator
    /// makes from the engine's classes today; with `FASTLLM_REGEN_UCD=1` it rewrites the file
    /// instead.
    pub(crate) fn check_generated(name: &str, text: &str) -> Result<(), String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/", file!());
        let path = std::path::Path::new(path).with_file_name(name);
        if std::env::var_os("FASTLLM_REGEN_UCD").is_some() {
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
        }
        let on_disk = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if on_disk != text {
            return Err(format!("{} is stale: regenerate it", path.display()));
        }
        Ok(())
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
        let layout = Layout {
            bits: 2,
            rest: O,
            test: "pretok::tables::tests::ucd_is_up_to_date",
            legend: ": 0 = \\p{L}, 1 = \\p{N}, 2 = \\s, 3 = other.",
        };
        check_generated("ucd.rs", &render_ucd(&engine_classes()?, &layout)?)
    }
}
