//! Behaviour on small hand-made vocabularies: errors, byte fallback, `unk`, space prefix,
//! truncation, decoding.

use spm_tokenizer::{
    DecodeOptions, EncodeOptions, PieceType, Tokenizer, TokenizerError, Truncation, VocabConfig,
};

fn vocab(with_bytes: bool) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let p: Vec<(&str, f32, i32)> = vec![
        ("<pad>", 0.0, 3),
        ("<eos>", 0.0, 3),
        ("<bos>", 0.0, 3),
        ("<unk>", 0.0, 2),
        ("<turn>", 0.0, 3),
        ("  ", 0.0, 4), // user-defined with spaces, as llama.cpp's converter writes it
        ("▁", -1.0, 1),
        ("a", -2.0, 1),
        ("b", -3.0, 1),
        ("ab", -0.5, 1),
        ("▁ab", -0.25, 1),
        ("ba", -0.1, 1),
    ];
    let mut pieces: Vec<String> = p.iter().map(|x| x.0.to_owned()).collect();
    let mut scores: Vec<f32> = p.iter().map(|x| x.1).collect();
    let mut types: Vec<i32> = p.iter().map(|x| x.2).collect();
    if with_bytes {
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            scores.push(0.0);
            types.push(6);
        }
    }
    (pieces, scores, types)
}

fn config() -> VocabConfig {
    VocabConfig {
        bos: Some(2),
        eos: Some(1),
        unk: Some(3),
        pad: Some(0),
        add_bos: true,
        add_eos: true,
        add_space_prefix: false,
    }
}

fn tok(with_bytes: bool, config: VocabConfig) -> Tokenizer {
    let (p, s, t) = vocab(with_bytes);
    Tokenizer::from_parts(&p, s, t, config).unwrap()
}

#[test]
fn merges_by_score_leftmost_first() {
    let t = tok(true, config());
    // "aba": pairs "ab" (-0.5) and "ba" (-0.1): "ba" wins.
    assert_eq!(t.encode("aba"), vec![2, 7, 11, 1]);
    // "abab": "ba" in the middle first, then nothing else merges.
    assert_eq!(t.encode("abab"), vec![2, 7, 11, 8, 1]);
    // " ab": "▁a"? not a piece; "ab" merges then "▁ab".
    assert_eq!(t.encode(" ab"), vec![2, 10, 1]);
}

#[test]
fn byte_fallback_and_unk() {
    let t = tok(true, config());
    let ids = t.encode("é");
    let b = t.piece_to_id("<0xC3>").unwrap();
    let b2 = t.piece_to_id("<0xA9>").unwrap();
    assert_eq!(ids, vec![2, b, b2, 1]);
    assert_eq!(t.decode(&ids).unwrap(), "é");
    let t = tok(false, config());
    assert_eq!(t.encode("éa"), vec![2, 3, 7, 1]);
}

#[test]
fn user_defined_with_spaces_matches_spaces() {
    let t = tok(true, config());
    assert_eq!(t.encode("a  b"), vec![2, 7, 5, 8, 1]);
    assert_eq!(t.decode(&[7, 5, 8]).unwrap(), "a  b");
}

#[test]
fn control_text_only_with_parse_special() {
    let t = tok(true, config());
    assert_eq!(t.encode("<turn>"), vec![2, 4, 1]);
    let plain = EncodeOptions {
        parse_special: false,
        add_special_tokens: false,
        ..EncodeOptions::default()
    };
    let ids = t.encode_with("<turn>", &plain).unwrap();
    assert!(!ids.contains(&4));
    assert_eq!(t.decode(&ids).unwrap(), "<turn>");
    let keep = DecodeOptions {
        skip_special_tokens: false,
    };
    assert_eq!(
        t.decode_with(&[2, 4, 7, 1], &keep).unwrap(),
        "<bos><turn>a<eos>"
    );
    assert_eq!(t.decode(&[2, 4, 7, 1]).unwrap(), "a");
}

#[test]
fn space_prefix() {
    let mut c = config();
    c.add_space_prefix = true;
    let t = tok(true, c);
    assert_eq!(t.encode("ab"), vec![2, 10, 1]);
    assert_eq!(t.decode(&[2, 10, 1]).unwrap(), "ab");
    assert_eq!(t.encode(""), vec![2, 1]);
}

#[test]
fn truncation() {
    let t = tok(true, config());
    let text = "a a a a a a";
    let full = t.encode(text);
    assert_eq!(full.len(), 13);
    let opts = |max, truncation| EncodeOptions {
        max_length: Some(max),
        truncation,
        ..EncodeOptions::default()
    };
    let cut = t.encode_with(text, &opts(5, Truncation::Truncate)).unwrap();
    assert_eq!(cut, [&full[..4], &[1]].concat());
    assert_eq!(
        t.encode_with(text, &opts(2, Truncation::Truncate)).unwrap(),
        vec![2, 1]
    );
    assert_eq!(
        t.encode_with(text, &opts(13, Truncation::Error)).unwrap(),
        full
    );
    assert!(matches!(
        t.encode_with(text, &opts(12, Truncation::Error)),
        Err(TokenizerError::TooLong {
            tokens: 13,
            max: 12
        })
    ));
    assert!(matches!(
        t.encode_with(text, &opts(1, Truncation::Truncate)),
        Err(TokenizerError::MaxLengthTooSmall {
            max: 1,
            specials: 2
        })
    ));
    let no_special = EncodeOptions {
        add_special_tokens: false,
        max_length: Some(3),
        ..EncodeOptions::default()
    };
    assert_eq!(
        t.encode_with(text, &no_special).unwrap(),
        full[1..4].to_vec()
    );
}

#[test]
fn batch_keeps_order() {
    let t = tok(true, config());
    let texts: Vec<String> = (0..100).map(|i| "ab ".repeat(i % 7)).collect();
    let got = t.encode_batch(&texts, &EncodeOptions::default()).unwrap();
    for (s, ids) in texts.iter().zip(&got) {
        assert_eq!(&t.encode(s), ids);
    }
    let err = t.encode_batch(
        &texts,
        &EncodeOptions {
            max_length: Some(3),
            truncation: Truncation::Error,
            ..EncodeOptions::default()
        },
    );
    assert!(matches!(err, Err(TokenizerError::TooLong { .. })));
}

#[test]
fn accessors() {
    let t = tok(true, config());
    assert_eq!(t.vocab_size(), 12 + 256);
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.unk_id(), t.pad_id()),
        (Some(2), Some(1), Some(3), Some(0))
    );
    assert!(t.add_bos() && t.add_eos());
    assert_eq!(t.id_to_piece(10), Some("▁ab"));
    assert_eq!(t.id_to_piece(100_000), None);
    assert_eq!(t.piece_to_id("▁ab"), Some(10));
    assert_eq!(t.piece_to_id("zz"), None);
    assert_eq!(t.token_type(3), Some(PieceType::Unknown));
    assert_eq!(t.token_type(12), Some(PieceType::Byte));
    assert_eq!(t.score(9), Some(-0.5));
    assert!(matches!(
        t.decode(&[7, 9999]),
        Err(TokenizerError::UnknownId { id: 9999, .. })
    ));
    let t = t.with_add_bos(false).with_add_eos(false);
    assert_eq!(t.encode("a"), vec![7]);
}

#[test]
fn rejects_bad_vocabularies() {
    let (p, s, t) = vocab(false);
    let short_scores = &s[..s.len() - 1];
    assert!(matches!(
        Tokenizer::from_parts(&p, short_scores.iter().copied(), t.clone(), config()),
        Err(TokenizerError::LengthMismatch { .. })
    ));
    let mut bad_types = t.clone();
    bad_types[7] = 9;
    assert!(matches!(
        Tokenizer::from_parts(&p, s.clone(), bad_types, config()),
        Err(TokenizerError::InvalidTokenType { id: 7, value: 9 })
    ));
    let mut c = config();
    c.eos = Some(500);
    assert!(matches!(
        Tokenizer::from_parts(&p, s.clone(), t.clone(), c),
        Err(TokenizerError::SpecialIdOutOfRange {
            which: "eos",
            id: 500,
            ..
        })
    ));
    let empty: [&str; 0] = [];
    assert!(matches!(
        Tokenizer::from_parts(empty, [], [], VocabConfig::default()),
        Err(TokenizerError::BadVocabSize { size: 0 })
    ));
    assert!(matches!(
        Tokenizer::from_model_proto(&[0x0a, 0x05]),
        Err(TokenizerError::MalformedProto { .. })
    ));
    assert!(matches!(
        Tokenizer::from_model_file("/nonexistent/tokenizer.model"),
        Err(TokenizerError::Io { .. })
    ));
}

#[test]
fn word_cache_is_per_tokenizer() {
    let a = tok(true, config());
    let (mut p, s, t) = vocab(true);
    p[9] = "xy".to_owned(); // B has no "ab" piece
    let b = Tokenizer::from_parts(&p, s, t, config()).unwrap();
    for _ in 0..3 {
        assert_eq!(a.encode("abab abab"), vec![2, 7, 11, 8, 6, 7, 11, 8, 1]);
        assert_eq!(b.encode("abab abab"), vec![2, 7, 11, 8, 6, 7, 11, 8, 1]);
        assert_eq!(a.encode("ab"), vec![2, 9, 1]);
        assert_eq!(b.encode("ab"), vec![2, 7, 8, 1]);
        Tokenizer::clear_thread_cache();
    }
}
