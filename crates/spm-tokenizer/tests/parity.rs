//! Exact-id parity with the golden Hugging Face ids (`testdata/golden/st-f32/tokens.jsonl`: every line
//! and doc of the corpus, ten languages, untruncated), from two independently built tokenizers:
//! the checkpoint's `tokenizer.model`, and the vocabulary arrays exactly as the reference GGUF stores
//! them (what the runtime builds from).

mod common;

use spm_tokenizer::{EncodeOptions, Tokenizer, Truncation, VocabConfig};

fn golden() -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(common::testdata("golden/st-f32/tokens.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            (v["text"].as_str().unwrap().to_owned(), ids)
        })
        .collect()
}

fn check(tok: &Tokenizer, what: &str) {
    let g = golden();
    assert_eq!(g.len(), 1749, "golden entries");
    let mut bad = Vec::new();
    for (text, want) in &g {
        let got = tok.encode(text);
        if &got != want {
            bad.push((text.clone(), want.clone(), got));
        }
    }
    for (text, want, got) in bad.iter().take(5) {
        eprintln!("{what}: MISMATCH on {text:?}\n  want {want:?}\n  got  {got:?}");
    }
    assert!(
        bad.is_empty(),
        "{what}: {}/{} exact",
        g.len() - bad.len(),
        g.len()
    );
    // The batch path gives the same ids, in order.
    let texts: Vec<&str> = g.iter().map(|(t, _)| t.as_str()).collect();
    let batch = tok.encode_batch(&texts, &EncodeOptions::default()).unwrap();
    for ((_, want), got) in g.iter().zip(&batch) {
        assert_eq!(want, got);
    }
}

fn gemma_config() -> VocabConfig {
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

#[test]
fn parity_from_tokenizer_model() {
    let tok = Tokenizer::from_model_file(common::tokenizer_model_path())
        .unwrap()
        .with_add_eos(true);
    assert_eq!(*tok.config(), gemma_config());
    check(&tok, "tokenizer.model");
}

#[test]
fn parity_from_gguf_style_vocab() {
    let (tokens, scores, types) = common::gguf_style_vocab();
    let tok = Tokenizer::from_parts(&tokens, scores, types, gemma_config()).unwrap();
    check(&tok, "GGUF-style vocabulary");
}

#[test]
fn both_builds_agree_with_and_without_special_parsing() {
    let a = Tokenizer::from_model_file(common::tokenizer_model_path())
        .unwrap()
        .with_add_eos(true);
    let (tokens, scores, types) = common::gguf_style_vocab();
    let b = Tokenizer::from_parts(&tokens, scores, types, gemma_config()).unwrap();
    let opts = EncodeOptions::default();
    for text in [
        "<start_of_turn>user\nHello  world<end_of_turn>\n",
        "<bos>x<eos><pad><unk><mask>[multimodal]",
        "\t\t  a<table><td>1</td></table>   \n\n\n",
        "literal ▁▁ marks ▁ and <0x41> text",
        "",
        " ",
        "😀🙈 \u{7}\u{0} ünïcödé 日本語のテキスト",
    ] {
        assert_eq!(
            a.encode_with(text, &opts).unwrap(),
            b.encode_with(text, &opts).unwrap(),
            "{text:?}"
        );
    }
    // <start_of_turn> is matched as one token; its text is not split.
    let ids = b.encode("<start_of_turn>");
    assert_eq!(ids, vec![2, 105, 1]);
    let plain = b
        .encode_with(
            "<start_of_turn>",
            &EncodeOptions {
                parse_special: false,
                ..opts
            },
        )
        .unwrap();
    assert!(plain.len() > 3 && !plain.contains(&105), "{plain:?}");
}

#[test]
fn truncation_keeps_bos_and_eos() {
    let tok = Tokenizer::from_model_file(common::tokenizer_model_path())
        .unwrap()
        .with_add_eos(true);
    let g = golden();
    let (text, full) = g.iter().max_by_key(|(_, ids)| ids.len()).unwrap();
    assert!(
        full.len() > 2048,
        "longest golden doc has {} ids",
        full.len()
    );
    let opts = EncodeOptions {
        max_length: Some(2048),
        ..EncodeOptions::default()
    };
    let cut = tok.encode_with(text, &opts).unwrap();
    assert_eq!(cut.len(), 2048);
    assert_eq!(cut[0], 2);
    assert_eq!(cut[2047], 1);
    assert_eq!(&cut[..2047], &full[..2047]);
    let err = tok
        .encode_with(
            text,
            &EncodeOptions {
                truncation: Truncation::Error,
                ..opts
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, spm_tokenizer::TokenizerError::TooLong { tokens, max: 2048 } if tokens == full.len()),
        "{err}"
    );
}
