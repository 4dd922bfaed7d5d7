//! Generated text (mixed scripts, whitespace and control characters, punctuation, accents, CJK,
//! special-token strings, long words) on the real all-MiniLM-L6-v2 vocabulary: never a panic, the
//! fast tokenizer equals a plain reference (Hugging Face's algorithm written directly: whole-text
//! normalization with the `unicode_categories` and `unicode-normalization` crates, a `HashMap`
//! vocabulary and a `String` per candidate) under every normalization setting, and decoding then
//! encoding again gives the same ids.

use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;
use wordpiece_tokenizer::{
    DecodeOptions, EncodeOptions, Normalization, Tokenizer, Truncation, VocabConfig,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

fn vocab_lines() -> &'static Vec<String> {
    static V: OnceLock<Vec<String>> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(format!("{TESTDATA}/golden/minilm/vocab.txt")).unwrap();
        text.lines().map(str::to_owned).collect()
    })
}

fn vocab_map() -> &'static HashMap<String, u32> {
    static M: OnceLock<HashMap<String, u32>> = OnceLock::new();
    M.get_or_init(|| {
        vocab_lines()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect()
    })
}

fn tok(norm: Normalization) -> Tokenizer {
    let config = VocabConfig {
        normalization: norm,
        ..VocabConfig::default()
    };
    Tokenizer::from_parts(vocab_lines(), config).unwrap()
}

fn uncased() -> &'static Tokenizer {
    cached(Normalization::UNCASED)
}

/// One tokenizer per normalization setting (24 of them), built on first use.
fn cached(norm: Normalization) -> &'static Tokenizer {
    static T: [OnceLock<Tokenizer>; 24] = [const { OnceLock::new() }; 24];
    let strip = match norm.strip_accents {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    let i = usize::from(norm.clean_text)
        + 2 * usize::from(norm.handle_chinese_chars)
        + 4 * usize::from(norm.lowercase)
        + 8 * strip;
    T[i].get_or_init(|| tok(norm))
}

/// Hugging Face's BERT pipeline, written plainly.
fn reference(text: &str, norm: Normalization, parse_special: bool) -> Vec<u32> {
    let vocab = vocab_map();
    let mut out = vec![101];
    let mut seg_start = 0;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let hit = SPECIALS
            .iter()
            .filter(|s| parse_special && rest.starts_with(**s))
            .max_by_key(|s| s.len());
        if let Some(s) = hit {
            reference_segment(&text[seg_start..i], norm, &mut out);
            out.push(vocab[*s]);
            i += s.len();
            seg_start = i;
        } else {
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    reference_segment(&text[seg_start..], norm, &mut out);
    out.push(102);
    out
}

fn reference_segment(text: &str, norm: Normalization, out: &mut Vec<u32>) {
    let mut s: String = text.to_owned();
    if norm.clean_text {
        s = s
            .chars()
            .filter(|&c| {
                !(c == '\0'
                    || c == '\u{fffd}'
                    || (!matches!(c, '\t' | '\n' | '\r') && c.is_other()))
            })
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
    }
    if norm.handle_chinese_chars {
        let mut t = String::new();
        for c in s.chars() {
            let cjk = matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF
                | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF
                | 0x2F800..=0x2FA1F);
            if cjk {
                t.push(' ');
                t.push(c);
                t.push(' ');
            } else {
                t.push(c);
            }
        }
        s = t;
    }
    if norm.strip_accents.unwrap_or(norm.lowercase) {
        s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
    }
    if norm.lowercase {
        s = s.chars().flat_map(char::to_lowercase).collect();
    }
    for chunk in s.split(char::is_whitespace) {
        let mut word = String::new();
        for c in chunk.chars() {
            if c.is_ascii_punctuation() || c.is_punctuation() {
                reference_word(&word, out);
                word.clear();
                reference_word(&c.to_string(), out);
            } else {
                word.push(c);
            }
        }
        reference_word(&word, out);
    }
}

fn reference_word(word: &str, out: &mut Vec<u32>) {
    if word.is_empty() {
        return;
    }
    let vocab = vocab_map();
    let chars: Vec<char> = word.chars().collect();
    if chars.len() > 100 {
        out.push(100);
        return;
    }
    let mut ids = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = chars.len();
        let mut found = None;
        while start < end {
            let mut sub: String = chars[start..end].iter().collect();
            if start > 0 {
                sub = format!("##{sub}");
            }
            if let Some(&id) = vocab.get(&sub) {
                found = Some(id);
                break;
            }
            end -= 1;
        }
        match found {
            Some(id) => ids.push(id),
            None => {
                out.push(100);
                return;
            }
        }
        start = end;
    }
    out.extend(ids);
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}",
        "[0-9]{1,6}",
        "[ \t\n\r\u{b}\u{c}\u{a0}\u{2003}\u{3000}\u{85}]{1,4}",
        "[!-/:-@\\[-`{-~]{1,3}",
        "[¡¿«»‘’“”–—…、。！⹏§¶]{1,3}",
        "[àéîõüßçñÀÉÅİıẞǅΣͅ]{1,4}",
        "[\u{300}-\u{36f}\u{903}\u{20dd}\u{488}]{1,3}",
        "[а-яА-ЯёЁ]{1,10}",
        "[α-ωΑ-Ωάώ]{1,8}",
        "[一-龥㐀-䶵豈-鶴]{1,6}",
        "[ぁ-ゖァ-ヺ가-힣]{1,6}",
        "[ء-ي]{1,8}",
        "[ऀ-ॿ]{1,6}",
        "[😀-🙏🚀-🛿🥺]{1,3}",
        "[\u{0}-\u{1f}\u{7f}-\u{9f}\u{ad}\u{200b}-\u{200f}\u{feff}\u{fffd}\u{e000}]{1,3}",
        "[\u{10000}-\u{10ffff}]{1,2}",
        "[ﬁ①½²Å Ωẛ]{1,3}",
        "[a-e]{95,110}",
        Just("[CLS]".to_owned()),
        Just("[SEP]".to_owned()),
        Just("[UNK]".to_owned()),
        Just("[MASK]".to_owned()),
        Just("[PAD]".to_owned()),
        Just("[cls]".to_owned()),
        Just("[unused0]".to_owned()),
        Just("##ing".to_owned()),
        any::<char>().prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..16).prop_map(|v| v.concat())
}

fn normalization() -> impl Strategy<Value = Normalization> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(
            |(clean_text, handle_chinese_chars, strip_accents, lowercase)| Normalization {
                clean_text,
                handle_chinese_chars,
                strip_accents,
                lowercase,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn equals_reference(s in text()) {
        let t = uncased();
        prop_assert_eq!(t.encode(&s), reference(&s, Normalization::UNCASED, true));
        let plain = EncodeOptions { parse_special: false, ..EncodeOptions::default() };
        prop_assert_eq!(t.encode_with(&s, &plain).unwrap(), reference(&s, Normalization::UNCASED, false));
    }

    #[test]
    fn equals_reference_any_normalization(s in text(), norm in normalization()) {
        prop_assert_eq!(cached(norm).encode(&s), reference(&s, norm, true));
    }

    #[test]
    fn equals_reference_on_any_string(s in any::<String>()) {
        prop_assert_eq!(uncased().encode(&s), reference(&s, Normalization::UNCASED, true));
    }

    /// Decoding (special tokens kept, no cleanup) and encoding again gives the same ids: the
    /// decoded text is normalized words and punctuation separated by spaces, and normalizing is
    /// idempotent on it. (Not for `İ`, whose lower case `i̇` carries a mark that a second pass
    /// strips, so the generator leaves it out.)
    #[test]
    fn decode_then_encode_round_trip(s in text().prop_filter("no İ", |s| !s.contains('İ'))) {
        let t = uncased();
        let raw = EncodeOptions { add_special_tokens: false, ..EncodeOptions::default() };
        let keep = DecodeOptions { skip_special_tokens: false, cleanup: false };
        let ids = t.encode_with(&s, &raw).unwrap();
        let text = t.decode_with(&ids, &keep).unwrap();
        prop_assert_eq!(t.encode_with(&text, &raw).unwrap(), ids, "decoded {:?}", text);
    }

    /// Whole in-vocabulary words separated by any whitespace decode to the words with single
    /// spaces.
    #[test]
    fn decode_gives_the_words_back(
        picks in prop::collection::vec((0usize..30522, "[ \t\n]{1,3}"), 1..12),
    ) {
        let lines = vocab_lines();
        let words: Vec<&str> = picks
            .iter()
            .map(|(i, _)| lines[*i].as_str())
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        let mut s = String::new();
        for (w, (_, ws)) in words.iter().zip(&picks) {
            s.push_str(w);
            s.push_str(ws);
        }
        let t = uncased();
        prop_assert_eq!(t.decode(&t.encode(&s)).unwrap(), words.join(" "));
    }

    #[test]
    fn any_string_any_options_never_panics(
        s in any::<String>(),
        add in any::<bool>(),
        parse in any::<bool>(),
        max in proptest::option::of(0usize..40),
        err in any::<bool>(),
    ) {
        let t = uncased();
        let opts = EncodeOptions {
            add_special_tokens: add,
            parse_special: parse,
            max_length: max,
            truncation: if err { Truncation::Error } else { Truncation::Truncate },
        };
        if let Ok(ids) = t.encode_with(&s, &opts) {
            if let Some(m) = max {
                prop_assert!(ids.len() <= m);
                if add && ids.len() == m && m >= 2 {
                    prop_assert_eq!((ids[0], ids[m - 1]), (101, 102));
                }
            }
            let _ = t.decode(&ids).unwrap();
        }
    }

    /// Any vocabulary lines (junk included) give a tokenizer or a typed error, never a panic;
    /// a tokenizer built from them encodes anything.
    #[test]
    fn any_vocabulary_never_panics(
        lines in prop::collection::vec("(##)?[a-c▁\\[\\]A-Z]{0,4}", 0..40),
        s in text(),
    ) {
        if let Ok(t) = Tokenizer::from_parts(&lines, VocabConfig::default()) {
            let _ = t.encode(&s);
        }
        let text = lines.join("\n");
        if let Ok(t) = Tokenizer::from_vocab_text(&text, VocabConfig::default()) {
            let ids = t.encode(&s);
            let _ = t.decode(&ids).unwrap();
        }
    }

    #[test]
    fn decode_any_ids_never_panics(ids in prop::collection::vec(0u32..40_000, 0..64)) {
        let t = uncased();
        let r = t.decode(&ids);
        prop_assert_eq!(r.is_err(), ids.iter().any(|&i| i as usize >= t.vocab_size()));
    }
}
