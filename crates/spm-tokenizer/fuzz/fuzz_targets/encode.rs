//! Any bytes as text (lossily UTF-8) through a small vocabulary with control, user-defined,
//! byte and multi-byte pieces: encoding with every option never panics, the length limit holds,
//! a truncated encoding is the start of the whole one, and decoding never panics.
#![no_main]

use std::sync::OnceLock;

use spm_tokenizer::{EncodeOptions, Tokenizer, Truncation, VocabConfig};

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let mut pieces: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<mask>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut types = vec![3, 3, 3, 2, 3, 4];
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for p in ["▁", "a", "b", "c", "ab", "bc", "abc", "▁a", "▁ab", "é", "日", "本", "日本", "▁▁", "=="] {
            pieces.push(p.to_string());
            types.push(1);
        }
        let scores: Vec<f32> = (0..pieces.len()).map(|i| -(i as f32)).collect();
        let config = VocabConfig {
            bos: Some(2),
            eos: Some(1),
            unk: Some(3),
            pad: Some(0),
            add_bos: true,
            add_eos: true,
            add_space_prefix: false,
        };
        Tokenizer::from_parts(pieces, scores, types, config).expect("vocabulary")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let t = tokenizer();
    let full = t.encode(&text);
    let _ = t.decode(&full);
    let max = usize::from(flags >> 2);
    let opts = EncodeOptions {
        add_special_tokens: flags & 1 == 0,
        parse_special: flags & 2 == 0,
        max_length: Some(max),
        truncation: Truncation::Truncate,
    };
    if let Ok(ids) = t.encode_with(&text, &opts) {
        assert!(ids.len() <= max);
        let whole = t
            .encode_with(&text, &EncodeOptions { max_length: None, ..opts })
            .expect("no limit");
        if whole.len() <= max {
            assert_eq!(ids, whole);
        } else if opts.add_special_tokens {
            assert_eq!(ids[..max - 1], whole[..max - 1]);
        } else {
            assert_eq!(ids[..], whole[..max]);
        }
        let _ = t.decode(&ids);
    }
    let err = EncodeOptions { truncation: Truncation::Error, ..opts };
    let _ = t.encode_with(&text, &err);
});
