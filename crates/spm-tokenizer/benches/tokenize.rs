//! Tokenizer throughput over the project corpus (`testdata/corpus`, ~156 KB, ten languages) and the
//! cost of building the 262,144-piece Gemma vocabulary.
//!
//! Needs the checkpoint in the model cache (`cargo xtask fetch-model`). Run with
//! `cargo bench -p spm-tokenizer --bench tokenize`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use spm_tokenizer::{EncodeOptions, Tokenizer};
use std::path::PathBuf;

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GGUFEMBED_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("ggufembed");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ggufembed")
}

fn model_bytes() -> Vec<u8> {
    let p = cache_dir().join("embeddinggemma-300m/tokenizer.model");
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask fetch-model` (or set GGUFEMBED_CACHE)",
            p.display()
        )
    })
}

fn corpus() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/corpus");
    let mut out = Vec::new();
    for f in ["lines.jsonl", "docs.jsonl"] {
        let text = std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
        for l in text.lines() {
            out.push(serde_json::from_str::<String>(l).unwrap());
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let bytes = model_bytes();
    let tok = Tokenizer::from_model_proto(&bytes)
        .unwrap()
        .with_add_eos(true);
    let texts = corpus();
    let total: usize = texts.iter().map(|t| t.len()).sum();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(total as u64));
    // Cold: the per-thread word cache is emptied before every pass, so each pass sees the corpus for
    // the first time (only repeats within the pass hit the cache).
    g.bench_function("corpus_1_thread_cold", |b| {
        b.iter(|| {
            Tokenizer::clear_thread_cache();
            let mut n = 0usize;
            for t in &texts {
                n += tok.encode(black_box(t)).len();
            }
            n
        })
    });
    // Warm: the cache keeps the words of earlier passes (a long-running process on similar text).
    g.bench_function("corpus_1_thread_warm", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for t in &texts {
                n += tok.encode(black_box(t)).len();
            }
            n
        })
    });
    let opts = EncodeOptions::default();
    g.bench_function("corpus_batch_all_threads_warm", |b| {
        b.iter(|| tok.encode_batch(black_box(&texts), &opts).unwrap().len())
    });
    g.finish();

    // Build from plain arrays, as the runtime does from GGUF metadata (strings borrowed).
    let n = tok.vocab_size() as u32;
    let pieces: Vec<&str> = (0..n).map(|i| tok.id_to_piece(i).unwrap()).collect();
    let scores: Vec<f32> = (0..n).map(|i| tok.score(i).unwrap()).collect();
    let types: Vec<i32> = (0..n)
        .map(|i| tok.token_type(i).unwrap().as_i32())
        .collect();
    let config = *tok.config();
    let mut g = c.benchmark_group("build");
    g.sample_size(20);
    g.bench_function("from_parts_262144", |b| {
        b.iter(|| {
            Tokenizer::from_parts(
                black_box(&pieces),
                scores.iter().copied(),
                types.iter().copied(),
                config,
            )
            .unwrap()
        })
    });
    g.bench_function("from_model_proto_262144", |b| {
        b.iter(|| Tokenizer::from_model_proto(black_box(&bytes)).unwrap())
    });
    g.finish();
}

criterion_group!(tokenize, benches);
criterion_main!(tokenize);
