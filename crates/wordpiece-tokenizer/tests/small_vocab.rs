//! Behaviour on small hand-made vocabularies: errors, special ids, both vocabulary styles,
//! normalization settings, `[UNK]` rules, special-token text, truncation, decoding.

use wordpiece_tokenizer::{
    DecodeOptions, EncodeOptions, Normalization, Tokenizer, TokenizerError, Truncation,
    VocabConfig, VocabStyle,
};

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", // 0..=4
    "un", "##aff", "##able", "hello", ",", // 5..=9
    "!", ".", "a", "##a", "cafe", // 10..=14
    "café", "日", "本", "x", "##x", // 15..=19
    "ab", "##b", "'", "s", "do", // 20..=24
];

fn tok(config: VocabConfig) -> Tokenizer {
    Tokenizer::from_parts(VOCAB, config).unwrap()
}

fn plain() -> EncodeOptions {
    EncodeOptions {
        add_special_tokens: false,
        ..EncodeOptions::default()
    }
}

#[test]
fn greedy_longest_match_and_unk() {
    let t = tok(VocabConfig::default());
    assert_eq!(t.encode("unaffable"), vec![2, 5, 6, 7, 3]);
    // Longest first: "ab" then "##b"; "##a" after "ab" would need "##ab".
    assert_eq!(t.encode_with("abb", &plain()).unwrap(), vec![20, 21]);
    assert_eq!(t.encode_with("aaa", &plain()).unwrap(), vec![12, 13, 13]);
    // A word with an uncovered part is one [UNK], whatever matched before it.
    assert_eq!(
        t.encode_with("unaffablez hello", &plain()).unwrap(),
        vec![1, 8]
    );
    // Continuation-only text cannot start a word.
    assert_eq!(t.encode_with("b", &plain()).unwrap(), vec![1]);
}

#[test]
fn words_over_the_char_limit_are_unk() {
    let t = tok(VocabConfig::default());
    let at = |n: usize| t.encode_with(&"x".repeat(n), &plain()).unwrap();
    assert_eq!(at(100).len(), 100);
    assert_eq!(at(101), vec![1]);
    let short = tok(VocabConfig {
        max_input_chars_per_word: 3,
        ..VocabConfig::default()
    });
    assert_eq!(
        short.encode_with("xxx xxxx", &plain()).unwrap(),
        vec![18, 19, 19, 1]
    );
    // Characters, not bytes: three two-byte characters are three.
    let t2 = Tokenizer::from_parts(
        ["[UNK]", "[CLS]", "[SEP]", "é", "##é"],
        VocabConfig {
            max_input_chars_per_word: 3,
            normalization: Normalization::CASED,
            ..VocabConfig::default()
        },
    )
    .unwrap();
    assert_eq!(t2.encode_with("ééé", &plain()).unwrap(), vec![3, 4, 4]);
}

#[test]
fn normalization_settings() {
    let uncased = tok(VocabConfig::default());
    // Accents stripped, lower-cased, punctuation split, CJK split, controls removed.
    assert_eq!(
        uncased
            .encode_with("Café,日本\u{200b}!\u{7}", &plain())
            .unwrap(),
        vec![14, 9, 16, 17, 10]
    );
    let cased = tok(VocabConfig {
        normalization: Normalization::CASED,
        ..VocabConfig::default()
    });
    assert_eq!(
        cased.encode_with("café Hello", &plain()).unwrap(),
        vec![15, 1]
    );
    // Lower-casing without stripping accents.
    let keep_accents = tok(VocabConfig {
        normalization: Normalization {
            strip_accents: Some(false),
            ..Normalization::UNCASED
        },
        ..VocabConfig::default()
    });
    assert_eq!(
        keep_accents.encode_with("CAFÉ", &plain()).unwrap(),
        vec![15]
    );
    // Without CJK handling, ideographs stay in the word.
    let no_cjk = tok(VocabConfig {
        normalization: Normalization {
            handle_chinese_chars: false,
            ..Normalization::UNCASED
        },
        ..VocabConfig::default()
    });
    assert_eq!(no_cjk.encode_with("日本", &plain()).unwrap(), vec![1]);
    // Without cleaning, a control character stays inside the word.
    let dirty = tok(VocabConfig {
        normalization: Normalization {
            clean_text: false,
            ..Normalization::UNCASED
        },
        ..VocabConfig::default()
    });
    assert_eq!(dirty.encode_with("a\u{7}a", &plain()).unwrap(), vec![1]);
    assert_eq!(
        uncased.encode_with("a\u{7}a", &plain()).unwrap(),
        vec![12, 13]
    );
}

#[test]
fn special_token_text_is_matched_before_normalization() {
    let t = tok(VocabConfig::default());
    assert_eq!(
        t.encode_with("hello[SEP]a", &plain()).unwrap(),
        vec![8, 3, 12]
    );
    // Not lower-cased first: "[sep]" is punctuation and a word.
    assert_eq!(t.encode_with("[sep]", &plain()).unwrap(), vec![1, 1, 1]);
    let no_parse = EncodeOptions {
        parse_special: false,
        ..plain()
    };
    assert_eq!(t.encode_with("[SEP]", &no_parse).unwrap(), vec![1, 1, 1]);
}

#[test]
fn special_ids_by_name_or_config_and_errors() {
    let t = tok(VocabConfig::default());
    assert_eq!(
        (t.unk_id(), t.cls_id(), t.sep_id(), t.pad_id(), t.mask_id()),
        (1, Some(2), Some(3), Some(0), Some(4))
    );
    assert!(t.is_special(4) && !t.is_special(5));
    let e = Tokenizer::from_parts(["a", "[CLS]", "[SEP]"], VocabConfig::default()).unwrap_err();
    assert!(
        matches!(e, TokenizerError::MissingSpecialToken { which: "unk", .. }),
        "{e}"
    );
    let e = Tokenizer::from_parts(["[UNK]", "[SEP]"], VocabConfig::default()).unwrap_err();
    assert!(
        matches!(e, TokenizerError::MissingSpecialToken { which: "cls", .. }),
        "{e}"
    );
    // Without [CLS]/[SEP] added, they are not needed.
    let bare = Tokenizer::from_parts(
        ["[UNK]", "a"],
        VocabConfig {
            add_cls: false,
            add_sep: false,
            ..VocabConfig::default()
        },
    )
    .unwrap();
    assert_eq!(bare.encode("a b"), vec![1, 0]);
    let e = Tokenizer::from_parts(
        VOCAB,
        VocabConfig {
            sep: Some(99),
            ..VocabConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::SpecialIdOutOfRange {
                which: "sep",
                id: 99,
                vocab_size: 25
            }
        ),
        "{e}"
    );
    let e = Tokenizer::from_parts(Vec::<String>::new(), VocabConfig::default()).unwrap_err();
    assert!(matches!(e, TokenizerError::BadVocabSize { size: 0 }), "{e}");
    // Configured ids win over names.
    let t = tok(VocabConfig {
        unk: Some(11),
        ..VocabConfig::default()
    });
    assert_eq!(t.encode_with("zzz", &plain()).unwrap(), vec![11]);
}

#[test]
fn phantom_space_vocabulary_equals_wordpiece_vocabulary() {
    let phantom: Vec<String> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i < 5 {
                (*t).to_owned()
            } else if let Some(rest) = t.strip_prefix("##") {
                rest.to_owned()
            } else {
                format!("▁{t}")
            }
        })
        .collect();
    let p = Tokenizer::from_parts(&phantom, VocabConfig::default()).unwrap();
    assert_eq!(p.config().style, VocabStyle::PhantomSpace);
    let w = tok(VocabConfig::default());
    assert_eq!(w.config().style, VocabStyle::WordPiece);
    for s in [
        "unaffable, hello!",
        "aaa abb xx",
        "Café 日本 [SEP]",
        "b",
        "",
    ] {
        assert_eq!(p.encode(s), w.encode(s), "{s:?}");
        assert_eq!(
            p.decode(&p.encode(s)).unwrap(),
            w.decode(&w.encode(s)).unwrap()
        );
    }
    // A continuation `##` token in the `▁` form (from `####`) does not fool the detection.
    let mut more = phantom.clone();
    more.push("##".to_owned());
    let q = Tokenizer::from_parts(&more, VocabConfig::default()).unwrap();
    assert_eq!(q.config().style, VocabStyle::PhantomSpace);
    assert_eq!(q.encode_with("a##", &plain()).unwrap(), vec![12, 1, 1]);
    // Forcing the other style reads the same tokens differently.
    let forced = Tokenizer::from_parts(
        &phantom,
        VocabConfig {
            style: VocabStyle::WordPiece,
            ..VocabConfig::default()
        },
    )
    .unwrap();
    assert_ne!(forced.encode("hello"), p.encode("hello"));
}

#[test]
fn truncation() {
    let t = tok(VocabConfig::default());
    let opts = |max, truncation| EncodeOptions {
        max_length: Some(max),
        truncation,
        ..EncodeOptions::default()
    };
    assert_eq!(
        t.encode_with("a a a a", &opts(4, Truncation::Truncate))
            .unwrap(),
        vec![2, 12, 12, 3]
    );
    assert_eq!(
        t.encode_with("a a a a", &opts(2, Truncation::Truncate))
            .unwrap(),
        vec![2, 3]
    );
    let e = t
        .encode_with("a a a a", &opts(5, Truncation::Error))
        .unwrap_err();
    assert!(
        matches!(e, TokenizerError::TooLong { tokens: 6, max: 5 }),
        "{e}"
    );
    let e = t
        .encode_with("a", &opts(1, Truncation::Truncate))
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::MaxLengthTooSmall {
                max: 1,
                specials: 2
            }
        ),
        "{e}"
    );
    let none = EncodeOptions {
        max_length: Some(2),
        ..plain()
    };
    assert_eq!(t.encode_with("a a a", &none).unwrap(), vec![12, 12]);
}

#[test]
fn decoding() {
    let t = tok(VocabConfig::default());
    let ids = t.encode("Unaffable, hello! a'S do");
    // Cleanup works token by token, as in Hugging Face: `a ' s` keeps its spaces.
    assert_eq!(t.decode(&ids).unwrap(), "unaffable, hello! a ' s do");
    let raw = DecodeOptions {
        skip_special_tokens: false,
        cleanup: false,
    };
    assert_eq!(
        t.decode_with(&ids, &raw).unwrap(),
        "[CLS] unaffable , hello ! a ' s do [SEP]"
    );
    // A continuation token first keeps its `##`, as in Hugging Face.
    assert_eq!(t.decode(&[13, 13]).unwrap(), "##aa");
    let e = t.decode(&[25]).unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::UnknownId {
                id: 25,
                vocab_size: 25
            }
        ),
        "{e}"
    );
    assert_eq!(t.id_to_token(6), Some("##aff"));
    assert_eq!(t.token_to_id("##aff"), Some(6));
    assert_eq!(t.id_to_token(25), None);
}

#[test]
fn vocab_text_and_files() {
    let text = "[PAD]\r\n[UNK]  \n[CLS]\n[SEP]\nhello\nhello\n";
    let t = Tokenizer::from_vocab_text(text, VocabConfig::default()).unwrap();
    assert_eq!(t.vocab_size(), 6);
    assert_eq!(t.unk_id(), 1);
    // Of two equal tokens the later id is produced.
    assert_eq!(t.encode("hello"), vec![2, 5, 3]);
    let dir = std::env::temp_dir().join(format!("wordpiece-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"[UNK]\n[CLS]\n\xff\xfe\n").unwrap();
    let e = Tokenizer::from_vocab_file(&bad, VocabConfig::default()).unwrap_err();
    assert!(matches!(e, TokenizerError::NotUtf8 { line: 3 }), "{e}");
    let e =
        Tokenizer::from_vocab_file(dir.join("missing.txt"), VocabConfig::default()).unwrap_err();
    assert!(matches!(e, TokenizerError::Io { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
