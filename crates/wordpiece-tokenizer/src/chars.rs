//! Character classes of Hugging Face's `BertNormalizer` and `BertPreTokenizer`, exactly as
//! `tokenizers` computes them: the general categories come from the `unicode_categories` crate's
//! tables (older than current Unicode: e.g. U+2E4F, punctuation since Unicode 11, is not
//! punctuation there), whitespace and lower-casing from Rust's `char`.

use crate::tables::{MARK_NONSPACING, OTHER, PUNCTUATION};

/// Whether `c` lies in one of the sorted, disjoint inclusive `ranges`.
#[inline]
fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    match ranges.binary_search_by(|&(lo, _)| lo.cmp(&c)) {
        Ok(_) => true,
        Err(0) => false,
        Err(i) => c <= ranges[i - 1].1,
    }
}

/// Categories Cc, Cf, Co: what `clean_text` removes (besides NUL and U+FFFD), except `\t`, `\n`,
/// `\r`, which count as whitespace.
#[inline]
pub(crate) fn is_control(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => false,
        '\0'..='\u{1f}' | '\u{7f}' => true,
        _ if c.is_ascii() => false,
        _ => in_ranges(OTHER, c),
    }
}

/// Whitespace as `BertNormalizer` and `BertPreTokenizer` see it (Rust's `char::is_whitespace`,
/// which includes `\t`, `\n`, `\r`).
#[inline]
pub(crate) fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// `BertPreTokenizer`'s punctuation: ASCII punctuation (symbols such as `$`, `+`, `^` included)
/// or any character of a P* category.
#[inline]
pub(crate) fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation()
    } else {
        in_ranges(PUNCTUATION, c)
    }
}

/// Category Mn: what `strip_accents` removes after NFD.
#[inline]
pub(crate) fn is_mark_nonspacing(c: char) -> bool {
    !c.is_ascii() && in_ranges(MARK_NONSPACING, c)
}

/// The "Chinese characters" that `handle_chinese_chars` surrounds with spaces: the CJK Unified
/// Ideographs blocks and extensions and the compatibility ideographs (not kana or hangul).
#[inline]
pub(crate) fn is_chinese(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// What the pre-tokenizer does with a normalized ASCII byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AsciiClass {
    /// Part of a word, as this (possibly lower-cased) byte.
    Word(u8),
    /// Ends the current word.
    Space,
    /// A word of its own.
    Punct,
    /// Removed by `clean_text`.
    Drop,
}

/// The class of every ASCII byte under the given normalizer flags.
pub(crate) fn ascii_classes(clean_text: bool, lowercase: bool) -> [AsciiClass; 128] {
    let mut t = [AsciiClass::Drop; 128];
    for (b, slot) in t.iter_mut().enumerate() {
        let c = char::from(b as u8);
        *slot = if clean_text && (b == 0 || is_control(c)) {
            AsciiClass::Drop
        } else if is_whitespace(c) {
            AsciiClass::Space
        } else if c.is_ascii_punctuation() {
            AsciiClass::Punct
        } else if lowercase {
            AsciiClass::Word(c.to_ascii_lowercase() as u8)
        } else {
            AsciiClass::Word(b as u8)
        };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_sorted_and_disjoint() {
        for table in [OTHER, PUNCTUATION, MARK_NONSPACING] {
            for w in table.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
            }
        }
    }

    #[test]
    fn known_classes() {
        assert!(is_control('\u{200b}') && is_control('\u{ad}') && is_control('\u{e000}'));
        assert!(!is_control('\t') && !is_control('a') && !is_control('\u{1f97a}'));
        assert!(is_punctuation('$') && is_punctuation('\u{3002}') && is_punctuation('\u{bf}'));
        assert!(!is_punctuation('\u{2e4f}') && !is_punctuation('a'));
        assert!(is_mark_nonspacing('\u{301}') && !is_mark_nonspacing('\u{903}'));
        assert!(is_chinese('\u{65e5}') && !is_chinese('\u{3042}'));
    }

    /// The generated tables give what the `unicode_categories` crate that `tokenizers` uses
    /// gives, on every code point.
    #[test]
    fn tables_equal_unicode_categories_everywhere() {
        use unicode_categories::UnicodeCategories;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let control = !matches!(c, '\t' | '\n' | '\r') && c.is_other();
            assert_eq!(is_control(c), control, "{c:?}");
            let punct = c.is_ascii_punctuation() || c.is_punctuation();
            assert_eq!(is_punctuation(c), punct, "{c:?}");
            assert_eq!(is_mark_nonspacing(c), c.is_mark_nonspacing(), "{c:?}");
        }
    }

    /// `tables.rs` is exactly what this generator writes from `unicode_categories`; with
    /// `WORDPIECE_WRITE_TABLES=1` the test rewrites the file instead of failing.
    #[test]
    fn tables_file_is_generated_from_unicode_categories() {
        use std::fmt::Write;
        use unicode_categories::UnicodeCategories;
        fn ranges(out: &mut String, name: &str, doc: &str, f: impl Fn(char) -> bool) {
            let mut rs: Vec<(u32, u32)> = Vec::new();
            for c in (0x80..=0x10FFFFu32).filter_map(char::from_u32) {
                let cp = c as u32;
                if f(c) {
                    match rs.last_mut() {
                        // Ranges run on across the surrogates, which are not chars.
                        Some(r) if r.1 + 1 == cp || (r.1 + 1 == 0xD800 && cp == 0xE000) => r.1 = cp,
                        _ => rs.push((cp, cp)),
                    }
                }
            }
            let _ = writeln!(out, "{doc}\npub(crate) static {name}: &[(u32, u32)] = &[");
            let mut line = String::from("   ");
            for (a, b) in rs {
                let item = format!(" (0x{a:X}, 0x{b:X}),");
                if line.len() + item.len() > 100 {
                    let _ = writeln!(out, "{line}");
                    line = String::from("   ");
                }
                line.push_str(&item);
            }
            let _ = writeln!(out, "{line}\n];\n");
        }
        let mut text = String::from(
            "//! Character classes of the `unicode_categories` crate (0.1.1) that Hugging Face's BERT\n\
             //! normalizer and pre-tokenizer use, as sorted inclusive ranges of code points above ASCII.\n\
             //! Generated by the test `chars::tests::tables_file_is_generated_from_unicode_categories`\n\
             //! (`WORDPIECE_WRITE_TABLES=1 cargo test -p wordpiece-tokenizer --lib tables_file`).\n\n",
        );
        ranges(&mut text, "OTHER", "/// General categories Cc, Cf and Co (`is_other`: the characters `clean_text` removes).", |c| c.is_other());
        ranges(
            &mut text,
            "PUNCTUATION",
            "/// General categories Pc, Pd, Pe, Pf, Pi, Po and Ps (`is_punctuation`).",
            |c| c.is_punctuation(),
        );
        ranges(
            &mut text,
            "MARK_NONSPACING",
            "/// General category Mn (`is_mark_nonspacing`: the marks `strip_accents` removes).",
            |c| c.is_mark_nonspacing(),
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tables.rs");
        if std::env::var_os("WORDPIECE_WRITE_TABLES").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        assert!(
            text == include_str!("tables.rs"),
            "{path} is stale: rerun with WORDPIECE_WRITE_TABLES=1"
        );
    }

    #[test]
    fn ascii_classes_follow_the_general_rules() {
        for (clean, lower) in [(true, true), (true, false), (false, true), (false, false)] {
            let t = ascii_classes(clean, lower);
            for b in 0u8..128 {
                let c = char::from(b);
                let want = if clean && (b == 0 || is_control(c)) {
                    AsciiClass::Drop
                } else if c.is_whitespace() {
                    AsciiClass::Space
                } else if is_punctuation(c) {
                    AsciiClass::Punct
                } else if lower {
                    AsciiClass::Word(c.to_lowercase().next().unwrap() as u8)
                } else {
                    AsciiClass::Word(b)
                };
                assert_eq!(t[usize::from(b)], want, "{c:?} clean {clean} lower {lower}");
            }
        }
        // Vertical tab and form feed are controls before they are whitespace.
        assert_eq!(ascii_classes(true, true)[0x0b], AsciiClass::Drop);
        assert_eq!(ascii_classes(false, true)[0x0c], AsciiClass::Space);
    }
}
