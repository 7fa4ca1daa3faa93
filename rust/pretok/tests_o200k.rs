//! Differential tests of the o200k splitter against fancy-regex `find_iter` on
//! [`patterns::O200K`] (the shared helpers are in `tests.rs`), and the generator of its class
//! table `ucd_o200k.rs`.

use super::o200k::{class_at, class_of, C_BOTH, C_LOWER, C_MARK, C_NUM, C_OTHER, C_SPACE, C_UPPER};
use super::tables::tests::{check_generated, engine_classes_of, render_ucd, Layout};
use super::tests::{
    adversarial, compare, compare_or_scale, english, exhaustive, mb_per_s, non_latin,
    on_python_sources, pathological, proptest_config, python_sources, Rng, ALPHABET, WORDS,
};
use super::Kind;
use crate::pretok::patterns;
use fancy_regex::Regex;
use proptest::prelude::*;
use std::time::{Duration, Instant};

const K: Kind = Kind::O200k;

fn check(text: &str) -> Result<usize, String> {
    compare(K, text)
}

#[test]
fn recognised() {
    assert_eq!(super::fast_splitter_for(patterns::O200K), Some(K));
    assert_eq!(K.pattern(), patterns::O200K);
    assert_eq!(K.pieces("").next(), None);
    assert_eq!(K.piece_end("ab", 5), 2);
}

// ----- the class table -----

/// The o200k class of every code point (surrogates: [`C_OTHER`]) according to the regex engine.
fn engine_classes() -> Result<Vec<u8>, String> {
    engine_classes_of(
        &[
            (r"[\p{Lu}\p{Lt}]", C_UPPER),
            (r"\p{Ll}", C_LOWER),
            (r"[\p{Lm}\p{Lo}]", C_BOTH),
            (r"\p{M}", C_MARK),
            (r"\p{N}", C_NUM),
            (r"\s", C_SPACE),
        ],
        C_OTHER,
    )
}

#[test]
fn classes_match_the_regex_engine_for_every_code_point() -> Result<(), String> {
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
    let mut buf = [0u8; 4];
    for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
        let s = c.encode_utf8(&mut buf);
        let want = classes.get(c as usize).copied();
        if class_at(s.as_bytes(), 0) != want.map(|k| (k, s.len())) {
            wrong.push(c as u32);
        }
    }
    assert_eq!(wrong, Vec::<u32>::new(), "decoded classes differ");
    // The same `\p{L}`, `\p{N}`, `\s` as the r50k/cl100k table (checked against the engine).
    for (cp, &fine) in (0u32..).zip(classes.iter()) {
        let want = match fine {
            C_UPPER | C_LOWER | C_BOTH => super::tables::L,
            C_NUM => super::tables::N,
            C_SPACE => super::tables::W,
            _ => super::tables::O,
        };
        if super::tables::class_of(cp) != want {
            wrong.push(cp);
        }
    }
    assert_eq!(wrong, Vec::<u32>::new(), "differs from the coarse table");
    Ok(())
}

/// Checks that `ucd_o200k.rs` is what the generator makes from the engine's classes today; with
/// `FASTLLM_REGEN_UCD=1` it rewrites the file instead.
#[test]
fn ucd_is_up_to_date() -> Result<(), String> {
    let layout = Layout {
        bits: 4,
        rest: C_OTHER,
        test: "pretok::tests_o200k::ucd_is_up_to_date",
        legend: " (see `o200k.rs`): 0 = \\s, 1 = Lu/Lt, 2 = Ll,\n\
                 // 3 = Lm/Lo, 7 = \\p{M}, 8 = \\p{N}, 4 = other.",
    };
    check_generated("ucd_o200k.rs", &render_ucd(&engine_classes()?, &layout)?)
}

// ----- the splitter against the regex -----

#[test]
fn python_standard_library_sources() -> Result<(), String> {
    on_python_sources(check)
}

/// Chars where o200k's corners turn, beyond the shared alphabet: each case class in and out of
/// ASCII (Lu, Lt, Ll, Lm, Lo), marks of the three kinds, the `/` of `[\r\n/]*`, and the case
/// folds of the contraction letters.
#[rustfmt::skip]
const O200K_ALPHABET: &[char] = &[
    'A', 'Z', 'a', 'z', 'É', 'é', 'Σ', 'ς', 'ǅ', 'ᾈ', 'ʰ', 'ー', 'ª', '中', 'ا', '\u{301}', '\u{94d}',
    'ा', '\u{20dd}', '\u{e0100}', '/', '/', '\'', '\'', 's', 'S', 'ſ', 't', 'T', 'l', 'L', 'e', 'E',
    'r', 'v', 'V', 'm', 'd', 'D', '\u{212a}', '\r', '\n', ' ', ' ', '\t', '\u{a0}', '1', '٣', '!',
];

/// Multi-char atoms for o200k: contractions after words of each case shape, CamelCase, acronyms,
/// mixed scripts, punctuation before newlines and slashes.
#[rustfmt::skip]
const O200K_WORDS: &[&str] = &[
    "Hello", "HELLO", "hello", "iPhone", "McDonald", "ABCdef", "中文", "ǅa", "Aʰ", "A\u{301}",
    "don't", "DON'T", "we'LL", "I'm", "you'Re", "it'S", "x'ſ", "ABC'll", "中'd", "\u{301}'ve",
    "!\n/", "/\n/", ")\r\n//", " //\n", "\n/", "  \n/", "3/4", "中A中", "AAA中", "AB\u{301}C",
];

fn o200k_adversarial() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        6 => prop::sample::select(O200K_ALPHABET).prop_map(String::from),
        3 => prop::sample::select(ALPHABET).prop_map(String::from),
        2 => (prop::sample::select(O200K_ALPHABET), 2..10usize)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>()),
        3 => prop::sample::select(O200K_WORDS).prop_map(String::from),
        1 => prop::sample::select(WORDS).prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(atom, 0..40).prop_map(|atoms| atoms.concat())
}

proptest! {
    #![proptest_config(proptest_config(6000))]

    #[test]
    fn o200k_adversarial_strings(text in o200k_adversarial()) {
        check(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn shared_adversarial_strings(text in adversarial()) {
        check(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn arbitrary_unicode(text in any::<String>()) {
        check(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn ascii_soup(text in "[ \t\r\na-zA-Z0-9'!.,_()/]{0,80}") {
        check(&text).map_err(TestCaseError::fail)?;
    }
}

/// Every string of up to 5 chars over a small alphabet with one char of each class and the
/// chars the pattern names (`'`, `s`/`S`/`ſ`, `l`, `e`, `/`, ` `, `\n`).
#[test]
fn exhaustive_short_strings() -> Result<(), String> {
    const SMALL: &[char] = &[
        ' ', '\n', '\t', '\'', 's', 'ſ', 'L', 'l', 'e', 'ǅ', '中', '\u{301}', '1', '!', '/',
    ];
    exhaustive(SMALL, 5, check).map(|_| ())
}

/// The chars that `(?i:...)` lets stand for each letter of the contractions, by the engine, are
/// those the splitter accepts: `s`, `S`, U+017F for `s`; the ASCII pair for the others.
#[test]
fn contraction_case_folds() -> Result<(), String> {
    let all: String = (0u32..=0x10FFFF).filter_map(char::from_u32).collect();
    for letter in ['s', 't', 'r', 'e', 'v', 'm', 'l', 'd'] {
        let re = Regex::new(&format!("(?i:{letter})")).map_err(|e| e.to_string())?;
        let mut folds = Vec::new();
        for m in re.find_iter(&all) {
            folds.extend(m.map_err(|e| e.to_string())?.as_str().chars());
        }
        let mut want = vec![letter.to_ascii_uppercase(), letter];
        if letter == 's' {
            want.push('\u{17f}');
        }
        assert_eq!(folds, want, "{letter}");
    }
    Ok(())
}

/// Each code point `c` where the pattern looks at it, in one of five contexts in turn: as the
/// letters of a contraction after a word (`'c`, `'ce`, `'lc`, `'cl`, `'rc`), after an upper-case
/// letter and before a lower-case one (the `UP*`/`LOW+` split), in a lower-case run, after Lo
/// and before Lu (the back-off), after a space, an "other" char, U+00A0 and a newline (the
/// prefix), in punctuation before a newline and `/`, doubled, and between digits.
#[test]
fn every_code_point_in_context() -> Result<(), String> {
    let mut text = String::new();
    let mut n = 0usize;
    for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
        match n % 5 {
            0 => text.extend(['x', '\'', c, 'e', 'A', '\'', 'l', c, '.']),
            1 => text.extend(['x', '\'', c, 'l', 'a', '\'', 'r', c, '\n']),
            2 => text.extend(['A', c, 'a', ' ', 'a', c, 'b', '中', c, 'A']),
            3 => text.extend([' ', c, '!', c, '\u{a0}', c, '\n', c, c, '\'', 's']),
            _ => text.extend(['!', c, '\n', '/', '1', c, '2', c, ' ', ' ']),
        }
        n += 1;
        if text.len() > 1 << 20 {
            check(&text)?;
            text.clear();
        }
    }
    check(&text)?;
    assert_eq!(n, 0x110000 - 0x800);
    Ok(())
}

/// o200k's own pathological shapes, next to the shared ones: runs of each case class, a long
/// upper-case run after one Lo (the back-off rescans it once), marks, slashes after newlines.
fn o200k_pathological(n: usize) -> Vec<(&'static str, String)> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut random = |alphabet: &[char]| -> String {
        let mut s = String::with_capacity(n + 4);
        while s.len() < n {
            s.extend(rng.pick(alphabet));
        }
        s
    };
    let mut cases = pathological(n);
    cases.extend([
        ("upper-case letters", "A".repeat(n)),
        ("Lo then upper-case", format!("中{}", "A".repeat(n))),
        ("Lo and upper alternating", "中A".repeat(n / 4)),
        ("upper then lower", format!("{}a", "A".repeat(n))),
        ("titlecase", "ǅ".repeat(n / 2)),
        (
            "marks then apostrophe",
            format!("{}'s", "\u{301}".repeat(n / 2)),
        ),
        ("slashes", "/".repeat(n)),
        (
            "punctuation, newlines, slashes",
            random(&['!', '\n', '/', '\r']),
        ),
        (
            "whitespace mix",
            random(&[' ', '\t', '\n', '\r', '\u{a0}', '\u{3000}']),
        ),
        ("case mix", random(&['a', 'A', '中', '\u{301}', 'ǅ', '\''])),
    ]);
    cases
}

/// The 1 MB inputs against the regex; where fancy-regex gives up on 1 MB ("Max stack size
/// exceeded for backtracking", its fixed 1,000,000-entry stack: a long backtracking run), the
/// same input at 64 KB is compared with the regex, and the 1 MB pieces with the 64 KB ones: the
/// same pieces but one, which is longer by exactly the difference in size and has the same ends.
#[test]
fn pathological_inputs_match_the_regex() -> Result<(), String> {
    let small = o200k_pathological(1 << 16);
    let mut scaled = Vec::new();
    for ((name, text), (_, small_text)) in o200k_pathological(1 << 20).iter().zip(&small) {
        if compare_or_scale(K, name, text, small_text)? {
            scaled.push(*name);
        }
    }
    eprintln!("scaled from 64 KB: {scaled:?}");
    Ok(())
}

/// Timing of 1 MB and 4 MB pathological inputs (the o200k target: <= 20 ms per 1 MB, linear).
#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn bench_pathological() {
    let small = o200k_pathological(1 << 20);
    let large = o200k_pathological(1 << 22);
    for ((name, s), (_, l)) in small.iter().zip(&large) {
        let time = |text: &str| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    let mut n = 0usize;
                    K.split(text, |p| n += p.len());
                    std::hint::black_box(n);
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let (ts, tl) = (time(s), time(l));
        eprintln!(
            "{name:34} 1 MB {:6.2} ms, 4 MB {:6.2} ms ({:.1}x)",
            ts.as_secs_f64() * 1e3,
            tl.as_secs_f64() * 1e3,
            tl.as_secs_f64() / ts.as_secs_f64().max(1e-12)
        );
    }
}

/// Timing of the o200k splitter alone (see `tests::bench_against_fancy_regex` for all three).
#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn bench_o200k() {
    let python: String = python_sources().into_iter().map(|(_, t)| t).collect();
    for (name, text) in [
        ("English prose", english(4 << 20)),
        ("Python source", python),
        ("non-Latin", non_latin(4 << 20)),
    ] {
        let best = (0..15)
            .map(|_| {
                let t = Instant::now();
                let mut n = 0usize;
                K.split(&text, |p| n += 1 + p.len());
                std::hint::black_box(n);
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO);
        eprintln!("{name:14} ours {:7.1} MB/s", mb_per_s(text.len(), best));
    }
}
