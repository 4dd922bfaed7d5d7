//! Tokenizer throughput over the project corpus (`testdata/corpus`, ~175 KB, ten languages) with
//! the all-MiniLM-L6-v2 vocabulary (`testdata/golden/minilm/vocab.txt`), and the cost of building
//! the 30,522-token vocabulary.
//!
//! Run with `cargo bench -p wordpiece-tokenizer --bench tokenize`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use wordpiece_tokenizer::{EncodeOptions, Tokenizer, VocabConfig};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["lines.jsonl", "docs.jsonl"] {
        let text = std::fs::read_to_string(format!("{TESTDATA}/corpus/{f}")).unwrap();
        for l in text.lines() {
            out.push(serde_json::from_str::<String>(l).unwrap());
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let vocab = std::fs::read_to_string(format!("{TESTDATA}/golden/minilm/vocab.txt")).unwrap();
    let tok = Tokenizer::from_vocab_text(&vocab, VocabConfig::default()).unwrap();
    let texts = corpus();
    let total: usize = texts.iter().map(|t| t.len()).sum();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("corpus_1_thread", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for t in &texts {
                n += tok.encode(black_box(t)).len();
            }
            n
        })
    });
    let opts = EncodeOptions {
        max_length: Some(256),
        ..EncodeOptions::default()
    };
    g.bench_function("corpus_1_thread_max_256", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for t in &texts {
                n += tok.encode_with(black_box(t), &opts).unwrap().len();
            }
            n
        })
    });
    g.bench_function("corpus_batch_all_threads", |b| {
        b.iter(|| tok.encode_batch(black_box(&texts), &opts).unwrap().len())
    });
    g.finish();

    let tokens: Vec<&str> = vocab.lines().collect();
    let mut g = c.benchmark_group("build");
    g.sample_size(20);
    g.bench_function("from_parts_30522", |b| {
        b.iter(|| Tokenizer::from_parts(black_box(&tokens), VocabConfig::default()).unwrap())
    });
    g.finish();
}

criterion_group!(tokenize, benches);
criterion_main!(tokenize);
