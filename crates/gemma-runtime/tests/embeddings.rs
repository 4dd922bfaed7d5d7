//! The real model against sentence-transformers (float32) and llama.cpp goldens.
//!
//! Needs `embeddinggemma-300m-{f32,q8_0}.gguf` in the model cache (`cargo xtask fetch-model`).
//! Run with `--release --nocapture` to see the statistics.

mod common;

use common::*;
use gemma_runtime::Precision;

const ST: &str = "st-f32/embeddings.jsonl";
const LLAMA: &str = "llama-cpp-q8_0/embeddings.jsonl";

#[test]
fn f32_gguf_matches_sentence_transformers() {
    let model = open_model("f32", Precision::default());
    let rows = read_rows(ST);
    assert_eq!(rows.len(), 108);
    let ours = embed_rows(model.as_ref(), &rows);
    let cos: Vec<f64> = ours
        .iter()
        .zip(&rows)
        .map(|(o, r)| cosine(o, &r.embedding))
        .collect();
    let (min, median, mean) = stats(&cos);
    println!("F32 GGUF vs sentence-transformers: {} rows, min {min:.8} median {median:.8} mean {mean:.8}", cos.len());
    for (c, r) in cos.iter().zip(&rows) {
        assert!(
            *c >= 0.99999,
            "cosine {c} < 0.99999 for {:?} (prompt {:?}, dim {})",
            r.text,
            r.prompt,
            r.dim
        );
    }
}

/// Q8_0 at the default precision (and the others, for the record).
#[test]
fn q8_0_gguf_matches_sentence_transformers() {
    let rows = read_rows(ST);
    let llama = read_rows(LLAMA);
    for precision in [Precision::default(), Precision::Int8, Precision::F32] {
        let model = open_model("q8_0", precision);
        let ours = embed_rows(model.as_ref(), &rows);
        let cos: Vec<f64> = ours
            .iter()
            .zip(&rows)
            .map(|(o, r)| cosine(o, &r.embedding))
            .collect();
        let (min, median, mean) = stats(&cos);
        println!(
            "Q8_0 GGUF ({precision:?}) vs sentence-transformers: {} rows, min {min:.6} median {median:.6} mean {mean:.6}",
            cos.len()
        );

        // llama.cpp's rows are the prompt-less 768-dim docs (those it could embed).
        let mut to_llama = Vec::new();
        let mut ours_st = Vec::new();
        let mut llama_st = Vec::new();
        for l in &llama {
            let i = rows
                .iter()
                .position(|r| r.text == l.text && r.prompt == l.prompt && r.dim == l.dim)
                .expect("llama.cpp row is in the sentence-transformers goldens");
            to_llama.push(cosine(&ours[i], &l.embedding));
            ours_st.push(cos[i]);
            llama_st.push(cosine(
                &truncate_normalize(&l.embedding, l.dim),
                &rows[i].embedding,
            ));
        }
        let (a, b, c) = stats(&to_llama);
        let (d, e, _) = stats(&ours_st);
        let (f, g, _) = stats(&llama_st);
        println!(
            "  on llama.cpp's {} rows: ours vs llama.cpp min {a:.6} median {b:.6} mean {c:.6}; \
             vs sentence-transformers: ours min {d:.6} median {e:.6}, llama.cpp min {f:.6} median {g:.6}",
            llama.len()
        );

        if precision == Precision::default() {
            assert!(median >= 0.9997, "median cosine {median} < 0.9997");
            assert!(min >= 0.996, "min cosine {min} < 0.996");
        }
        if precision == Precision::Int8 {
            // llama.cpp's own scheme; it must do at least as well as llama.cpp does.
            assert!(median >= 0.9995, "median cosine {median} < 0.9995");
            assert!(min >= 0.996, "min cosine {min} < 0.996");
        }
        if precision == Precision::F32 {
            assert!(median >= 0.9997, "median cosine {median} < 0.9997");
        }
    }
}
