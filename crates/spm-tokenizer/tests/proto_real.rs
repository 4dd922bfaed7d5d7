//! `proto::parse_model_proto` on the real EmbeddingGemma `tokenizer.model`, checked against the
//! reference GGUF manifest (what llama.cpp's converter wrote from the same checkpoint).

mod common;

use sha2::{Digest, Sha256};
use spm_tokenizer::proto::{parse_model_proto, ModelType, PieceType};

fn manifest() -> serde_json::Value {
    let p = common::testdata("golden/gguf/embeddinggemma-300m-f32.manifest.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// SHA-256 of a GGUF array value as stored: element type u32, count u64, elements.
fn gguf_array_sha(elem_type: u32, count: usize, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(elem_type.to_le_bytes());
    h.update((count as u64).to_le_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn real_model_header_fields() {
    let bytes = std::fs::read(common::tokenizer_model_path()).unwrap();
    let m = parse_model_proto(&bytes).unwrap();
    assert_eq!(m.pieces.len(), 262144);
    let t = &m.trainer_spec;
    assert_eq!(t.model_type, ModelType::Bpe);
    assert!(t.byte_fallback);
    assert_eq!((t.unk_id, t.bos_id, t.eos_id, t.pad_id), (3, 2, 1, 0));
    let n = &m.normalizer_spec;
    assert!(!n.add_dummy_prefix);
    assert!(!n.remove_extra_whitespaces);
    assert!(n.escape_whitespaces);
    assert_eq!(
        m.pieces[0x41 + 238].kind,
        PieceType::Byte,
        "{:?}",
        m.pieces[0x41 + 238]
    );
}

#[test]
fn real_model_matches_gguf_manifest() {
    let man = manifest();
    let md = &man["metadata"];
    let (tokens, scores, types) = common::gguf_style_vocab();

    let want_tokens = &md["tokenizer.ggml.tokens"];
    assert_eq!(want_tokens["len"].as_u64().unwrap() as usize, tokens.len());
    for (i, w) in want_tokens["head"].as_array().unwrap().iter().enumerate() {
        assert_eq!(tokens[i], w.as_str().unwrap(), "token {i}");
    }
    let mut body = Vec::new();
    for t in &tokens {
        body.extend_from_slice(&(t.len() as u64).to_le_bytes());
        body.extend_from_slice(t.as_bytes());
    }
    assert_eq!(
        gguf_array_sha(8, tokens.len(), &body),
        want_tokens["sha256_of_stored_bytes"].as_str().unwrap(),
        "tokens"
    );

    let want_scores = &md["tokenizer.ggml.scores"];
    for (i, w) in want_scores["head"].as_array().unwrap().iter().enumerate() {
        assert_eq!(scores[i], w.as_f64().unwrap() as f32, "score {i}");
    }
    let body: Vec<u8> = scores.iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(
        gguf_array_sha(6, scores.len(), &body),
        want_scores["sha256_of_stored_bytes"].as_str().unwrap(),
        "scores"
    );

    let want_types = &md["tokenizer.ggml.token_type"];
    for (i, w) in want_types["head"].as_array().unwrap().iter().enumerate() {
        assert_eq!(i64::from(types[i]), w.as_i64().unwrap(), "type {i}");
    }
    let body: Vec<u8> = types.iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(
        gguf_array_sha(5, types.len(), &body),
        want_types["sha256_of_stored_bytes"].as_str().unwrap(),
        "token types"
    );
}
