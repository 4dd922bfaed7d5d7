//! Generated text (mixed scripts, whitespace runs, emoji, control characters, special-token strings)
//! on the real Gemma vocabulary: never a panic, the fast tokenizer equals a naive reference
//! (SentencePiece/llama.cpp BPE written plainly: no word splitting, no tables, no caches), and
//! decoding gives the text back.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use spm_tokenizer::{DecodeOptions, EncodeOptions, PieceType, Tokenizer, Truncation};

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        Tokenizer::from_model_file(common::tokenizer_model_path())
            .unwrap()
            .with_add_eos(true)
    })
}

/// The plain reference.
struct Reference {
    normal: HashMap<String, (u32, f32)>,
    /// (normalized text, id, user-defined?)
    specials: Vec<(String, u32, bool)>,
    bytes: HashMap<u8, u32>,
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let t = tok();
        let mut r = Reference {
            normal: HashMap::new(),
            specials: Vec::new(),
            bytes: HashMap::new(),
        };
        for id in 0..t.vocab_size() as u32 {
            let p = t.id_to_piece(id).unwrap().to_owned();
            match t.token_type(id).unwrap() {
                PieceType::Normal => {
                    r.normal.insert(p, (id, t.score(id).unwrap()));
                }
                PieceType::Byte => {
                    let b = u8::from_str_radix(&p[3..5], 16).unwrap();
                    r.bytes.insert(b, id);
                }
                PieceType::Control | PieceType::Unknown => r.specials.push((p, id, false)),
                PieceType::UserDefined => r.specials.push((p, id, true)),
                PieceType::Unused => {}
            }
        }
        r
    })
}

impl Reference {
    fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let norm = text.replace(' ', "\u{2581}");
        let mut out = vec![2];
        let mut seg = String::new();
        let mut i = 0;
        while i < norm.len() {
            let rest = &norm[i..];
            let best = self
                .specials
                .iter()
                .filter(|(s, _, ud)| (*ud || parse_special) && rest.starts_with(s.as_str()))
                .max_by_key(|(s, _, _)| s.len());
            if let Some((s, id, _)) = best {
                self.bpe(&seg, &mut out);
                seg.clear();
                out.push(*id);
                i += s.len();
            } else {
                let c = rest.chars().next().unwrap();
                seg.push(c);
                i += c.len_utf8();
            }
        }
        self.bpe(&seg, &mut out);
        out.push(1);
        out
    }

    fn bpe(&self, seg: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<String> = seg.chars().map(String::from).collect();
        loop {
            let mut best: Option<(usize, f32)> = None;
            for k in 0..syms.len().saturating_sub(1) {
                let cat = format!("{}{}", syms[k], syms[k + 1]);
                if let Some(&(_, score)) = self.normal.get(&cat) {
                    if best.is_none_or(|(_, b)| score > b) {
                        best = Some((k, score));
                    }
                }
            }
            let Some((k, _)) = best else { break };
            let right = syms.remove(k + 1);
            syms[k].push_str(&right);
        }
        for s in syms {
            match self.normal.get(&s) {
                Some(&(id, _)) => out.push(id),
                None => out.extend(s.bytes().map(|b| self.bytes[&b])),
            }
        }
    }
}

/// The first 4 KiB of the real `tokenizer.model`.
fn model_head() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let mut b = std::fs::read(common::tokenizer_model_path()).unwrap();
        b.truncate(4096);
        b
    })
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,12}",
        "[0-9]{1,6}",
        "[ ]{1,5}",
        "[\t\n\r ]{1,4}",
        "[.,;:!?'\"()\\-]{1,3}",
        "[àéîõüßçñÀÉ]{1,4}",
        "[а-яА-Я]{1,10}",
        "[α-ωΑ-Ω]{1,8}",
        "[一-龥]{1,10}",
        "[ぁ-ゖァ-ヺ]{1,10}",
        "[가-힣]{1,6}",
        "[ء-ي]{1,8}",
        "[ऀ-ॿ]{1,6}",
        "[😀-🙏🚀-🛿]{1,3}",
        "[\u{0}-\u{1f}\u{7f}-\u{9f}]{1,3}",
        "[\u{10000}-\u{10ffff}]{1,2}",
        Just("<start_of_turn>".to_owned()),
        Just("<end_of_turn>".to_owned()),
        Just("<bos>".to_owned()),
        Just("<eos>".to_owned()),
        Just("<unk>".to_owned()),
        Just("<mask>".to_owned()),
        Just("<unused17>".to_owned()),
        Just("<b>".to_owned()),
        Just("</table>".to_owned()),
        Just("[multimodal]".to_owned()),
        Just("<0x41>".to_owned()),
        Just("<".to_owned()),
        Just(">▁</".to_owned()),
        Just("▁".to_owned()),
        any::<char>().prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn equals_reference(s in text()) {
        let r = reference();
        let t = tok();
        prop_assert_eq!(t.encode(&s), r.encode(&s, true));
        let plain = EncodeOptions { parse_special: false, ..EncodeOptions::default() };
        prop_assert_eq!(t.encode_with(&s, &plain).unwrap(), r.encode(&s, false));
    }

    /// Words longer than 48 characters take the priority-queue path.
    #[test]
    fn long_words_equal_reference(s in "[一-龥ぁ-ゖa-zа-я0-9.]{40,160}") {
        prop_assert_eq!(tok().encode(&s), reference().encode(&s, true));
    }

    #[test]
    fn decode_round_trip(s in text()) {
        let t = tok();
        let keep = DecodeOptions { skip_special_tokens: false };
        // `▁` in the input is read as a space (as SentencePiece and Hugging Face do).
        let want = s.replace('\u{2581}', " ");
        for parse_special in [false, true] {
            let opts = EncodeOptions { add_special_tokens: false, parse_special, ..EncodeOptions::default() };
            let ids = t.encode_with(&s, &opts).unwrap();
            prop_assert_eq!(t.decode_with(&ids, &keep).unwrap(), want.clone());
        }
        // With special tokens added and skipped in decoding, text without control-token strings
        // comes back too.
        let plain = EncodeOptions { parse_special: false, ..EncodeOptions::default() };
        let ids = t.encode_with(&s, &plain).unwrap();
        prop_assert_eq!(t.decode(&ids).unwrap(), want);
    }

    #[test]
    fn any_string_any_options_never_panics(
        s in any::<String>(),
        add in any::<bool>(),
        parse in any::<bool>(),
        max in proptest::option::of(0usize..40),
        err in any::<bool>(),
    ) {
        let t = tok();
        let opts = EncodeOptions {
            add_special_tokens: add,
            parse_special: parse,
            max_length: max,
            truncation: if err { Truncation::Error } else { Truncation::Truncate },
        };
        if let Ok(ids) = t.encode_with(&s, &opts) {
            if let Some(m) = max {
                prop_assert!(ids.len() <= m);
            }
            let _ = t.decode(&ids).unwrap();
        }
    }

    /// Tokenizing with a length limit stops early; the kept tokens are those of the whole text
    /// cut to the limit (texts and single words longer than the limit).
    #[test]
    fn truncation_stops_early_with_the_same_tokens(
        s in text(),
        word in "[a-zа-я0-9.=一-龥]{0,400}",
        max in 2usize..48,
    ) {
        let t = tok();
        let opts = EncodeOptions { max_length: Some(max), ..EncodeOptions::default() };
        for text in [s.clone(), word.clone(), format!("{s}{word}{s}")] {
            let mut full = t.encode(&text);
            if full.len() > max {
                let eos = full.pop().unwrap();
                full.truncate(max - 1);
                full.push(eos);
            }
            prop_assert_eq!(t.encode_with(&text, &opts).unwrap(), full);
        }
    }

    /// Arbitrary and corrupted `tokenizer.model` bytes give a value or a typed error, never a panic.
    #[test]
    fn model_proto_never_panics(
        junk in prop::collection::vec(any::<u8>(), 0..256),
        cut in 0usize..4096,
        flips in prop::collection::vec((0usize..4096, any::<u8>()), 0..8),
    ) {
        let _ = spm_tokenizer::proto::parse_model_proto(&junk);
        let _ = Tokenizer::from_model_proto(&junk);
        let real = model_head();
        let mut bytes = real[..cut.min(real.len())].to_vec();
        for (at, x) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= x;
            }
        }
        let _ = spm_tokenizer::proto::parse_model_proto(&bytes);
        let _ = Tokenizer::from_model_proto(&bytes);
    }

    #[test]
    fn decode_any_ids_never_panics(ids in prop::collection::vec(0u32..300_000, 0..64)) {
        let t = tok();
        let r = t.decode(&ids);
        prop_assert_eq!(r.is_err(), ids.iter().any(|&i| i as usize >= t.vocab_size()));
    }
}
