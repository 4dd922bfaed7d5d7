//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The model cache directory, by the rule in DEVELOPERS.md.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GGUFEMBED_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("ggufembed");
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache").join("ggufembed")
}

/// The unpacked checkpoint directory; panics with instructions when it is missing.
pub fn checkpoint_dir() -> PathBuf {
    let dir = cache_dir().join("embeddinggemma-300m");
    let model = dir.join("tokenizer.model");
    assert!(
        model.is_file(),
        "{} is missing: run `cargo xtask fetch-model` (or set GGUFEMBED_CACHE)",
        model.display()
    );
    dir
}

/// `<checkpoint>/tokenizer.model`.
pub fn tokenizer_model_path() -> PathBuf {
    checkpoint_dir().join("tokenizer.model")
}

/// Path of a file under the repository's `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(rel)
}

/// The vocabulary as llama.cpp's `convert_hf_to_gguf.py` (`_create_vocab_sentencepiece`) writes it
/// to GGUF: the `tokenizer.model` pieces, then `added_tokens.json` (ids inside the vocabulary become
/// USER_DEFINED with score -1000), then `tokenizer_config.json`'s `added_tokens_decoder` (CONTROL when
/// `special`, else USER_DEFINED with `▁` replaced by a space; score -1000).
pub fn gguf_style_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let dir = checkpoint_dir();
    let bytes = std::fs::read(dir.join("tokenizer.model")).unwrap();
    let m = spm_tokenizer::proto::parse_model_proto(&bytes).unwrap();
    let n = m.pieces.len();
    let mut tokens: Vec<String> = m.pieces.iter().map(|p| p.piece.clone()).collect();
    let mut scores: Vec<f32> = m.pieces.iter().map(|p| p.score).collect();
    let mut types: Vec<i32> = m.pieces.iter().map(|p| p.kind.as_i32()).collect();
    if let Ok(s) = std::fs::read_to_string(dir.join("added_tokens.json")) {
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        for (k, id) in v.as_object().unwrap() {
            let id = id.as_u64().unwrap() as usize;
            if id < n {
                tokens[id] = k.clone();
                scores[id] = -1000.0;
                types[id] = 4;
            }
        }
    }
    if let Ok(s) = std::fs::read_to_string(dir.join("tokenizer_config.json")) {
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        if let Some(dec) = v.get("added_tokens_decoder").and_then(|d| d.as_object()) {
            for (id, data) in dec {
                let id: usize = id.parse().unwrap();
                if id >= n {
                    continue;
                }
                let mut content = data["content"].as_str().unwrap().to_owned();
                let special = data
                    .get("special")
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false);
                let looks_special =
                    matches!(content.as_str(), "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
                        || (content.starts_with("<|") && content.ends_with("|>"))
                        || (content.starts_with("<\u{ff5c}") && content.ends_with("\u{ff5c}>"))
                        || (content.starts_with("<unused") && content.ends_with('>'));
                if special || looks_special {
                    types[id] = 3;
                } else {
                    content = content.replace('\u{2581}', " ");
                    types[id] = 4;
                }
                scores[id] = -1000.0;
                tokens[id] = content;
            }
        }
    }
    (tokens, scores, types)
}
