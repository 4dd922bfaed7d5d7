//! Exact-id parity with Hugging Face `tokenizers` (`testdata/golden/minilm/`, made by
//! `cargo xtask golden wordpiece` from all-MiniLM-L6-v2's `tokenizer.json`): every line and doc of
//! the corpus (ten languages) with the model's truncation to 256 tokens and without truncation,
//! and 3,000 generated strings full of the cases BERT's normalizer treats specially. Checked
//! from `vocab.txt` and from the same vocabulary in llama.cpp's GGUF form (`▁` on word-initial
//! tokens, no `##`). Decoding (special tokens skipped, cleanup on) gives Hugging Face's text.

use wordpiece_tokenizer::{EncodeOptions, Tokenizer, Truncation, VocabConfig, VocabStyle};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

struct Golden {
    text: String,
    ids: Vec<u32>,
    ids_full: Vec<u32>,
    decoded: String,
}

fn golden(file: &str) -> Vec<Golden> {
    let path = format!("{TESTDATA}/golden/minilm/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Golden {
                text: v["text"].as_str().unwrap().to_owned(),
                ids: ids(&v["ids"]),
                ids_full: ids(&v["ids_full"]),
                decoded: v["decoded"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

fn vocab_lines() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{TESTDATA}/golden/minilm/vocab.txt")).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn from_vocab_file() -> Tokenizer {
    Tokenizer::from_vocab_file(
        format!("{TESTDATA}/golden/minilm/vocab.txt"),
        VocabConfig::default(),
    )
    .unwrap()
}

/// The vocabulary as llama.cpp's `convert_hf_to_gguf.py` (`BertModel.set_vocab`) writes it: the
/// special tokens (CONTROL) as they are, `##x` as `x`, every other token `x` as `▁x`.
fn from_gguf_style() -> Tokenizer {
    let control = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let tokens: Vec<String> = vocab_lines()
        .into_iter()
        .map(|t| {
            if control.contains(&t.as_str()) {
                t
            } else if let Some(rest) = t.strip_prefix("##") {
                rest.to_owned()
            } else {
                format!("\u{2581}{t}")
            }
        })
        .collect();
    let config = VocabConfig {
        unk: Some(100),
        cls: Some(101),
        sep: Some(102),
        pad: Some(0),
        mask: Some(103),
        ..VocabConfig::default()
    };
    let tok = Tokenizer::from_parts(&tokens, config).unwrap();
    assert_eq!(tok.config().style, VocabStyle::PhantomSpace);
    tok
}

fn check(tok: &Tokenizer, file: &str, expected_count: usize, what: &str) {
    let g = golden(file);
    assert_eq!(g.len(), expected_count, "{file} entries");
    let cut = EncodeOptions {
        max_length: Some(256),
        ..EncodeOptions::default()
    };
    let mut bad = Vec::new();
    let mut truncated = 0;
    for e in &g {
        let full = tok.encode(&e.text);
        let got = tok.encode_with(&e.text, &cut).unwrap();
        truncated += usize::from(e.ids_full.len() > 256);
        if full != e.ids_full || got != e.ids {
            bad.push((e, full));
        } else if tok.decode(&full).unwrap() != e.decoded {
            eprintln!(
                "{what}: decode MISMATCH on {:?}: {:?}",
                e.text,
                tok.decode(&full)
            );
            bad.push((e, full));
        }
    }
    for (e, got) in bad.iter().take(5) {
        eprintln!(
            "{what}: MISMATCH on {:?}\n  want {:?}\n  got  {:?}",
            e.text, e.ids_full, got
        );
    }
    assert!(
        bad.is_empty(),
        "{what} {file}: {}/{} exact",
        g.len() - bad.len(),
        g.len()
    );
    eprintln!(
        "{what} {file}: {} texts exact, {truncated} of them truncated",
        g.len()
    );
    // The batch path gives the same ids, in order.
    let texts: Vec<&str> = g.iter().map(|e| e.text.as_str()).collect();
    let batch = tok.encode_batch(&texts, &cut).unwrap();
    for (e, got) in g.iter().zip(&batch) {
        assert_eq!(&e.ids, got);
    }
}

#[test]
fn corpus_parity_from_vocab_txt() {
    check(&from_vocab_file(), "tokens.jsonl", 1749, "vocab.txt");
}

#[test]
fn corpus_parity_from_gguf_style_tokens() {
    check(
        &from_gguf_style(),
        "tokens.jsonl",
        1749,
        "GGUF-style tokens",
    );
}

#[test]
fn generated_parity_from_vocab_txt() {
    check(&from_vocab_file(), "generated.jsonl", 3000, "vocab.txt");
}

#[test]
fn generated_parity_from_gguf_style_tokens() {
    check(
        &from_gguf_style(),
        "generated.jsonl",
        3000,
        "GGUF-style tokens",
    );
}

#[test]
fn vocab_txt_resolves_the_special_ids() {
    let tok = from_vocab_file();
    assert_eq!(tok.vocab_size(), 30522);
    assert_eq!(tok.unk_id(), 100);
    assert_eq!(
        (tok.cls_id(), tok.sep_id(), tok.pad_id(), tok.mask_id()),
        (Some(101), Some(102), Some(0), Some(103))
    );
    assert_eq!(tok.config().style, VocabStyle::WordPiece);
}

#[test]
fn truncation_keeps_cls_and_sep() {
    let tok = from_vocab_file();
    let g = golden("tokens.jsonl");
    let e = g.iter().max_by_key(|e| e.ids_full.len()).unwrap();
    assert!(
        e.ids_full.len() > 256,
        "longest doc has {} ids",
        e.ids_full.len()
    );
    let opts = EncodeOptions {
        max_length: Some(256),
        ..EncodeOptions::default()
    };
    let cut = tok.encode_with(&e.text, &opts).unwrap();
    assert_eq!(cut.len(), 256);
    assert_eq!((cut[0], cut[255]), (101, 102));
    assert_eq!(&cut[..255], &e.ids_full[..255]);
    let err = tok
        .encode_with(
            &e.text,
            &EncodeOptions {
                truncation: Truncation::Error,
                ..opts
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, wordpiece_tokenizer::TokenizerError::TooLong { tokens, max: 256 } if tokens == e.ids_full.len()),
        "{err}"
    );
}
