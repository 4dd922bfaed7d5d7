//! Encodes a JSON-lines corpus (one JSON string a line) with a `vocab.txt` on one thread and
//! prints the throughput; for profiling (`valgrind --tool=cachegrind`, `perf record`).
//!
//! `cargo run --release -p wordpiece-tokenizer --example throughput -- VOCAB.txt PASSES FILE.jsonl...`
#![allow(missing_docs)]

use std::time::Instant;

use wordpiece_tokenizer::{EncodeOptions, Tokenizer, VocabConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [vocab, passes, files @ ..] = args.as_slice() else {
        return Err("usage: throughput VOCAB.txt PASSES FILE.jsonl...".into());
    };
    let passes: usize = passes.parse()?;
    let mut texts = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f)?.lines() {
            texts.push(serde_json::from_str::<String>(line)?);
        }
    }
    let t0 = Instant::now();
    let tok = Tokenizer::from_vocab_file(vocab, VocabConfig::default())?;
    let build = t0.elapsed();
    let opts = EncodeOptions {
        max_length: Some(256),
        ..EncodeOptions::default()
    };
    let bytes: usize = texts.iter().map(String::len).sum();
    let t0 = Instant::now();
    let mut tokens = 0;
    for _ in 0..passes {
        for t in &texts {
            tokens += tok.encode_with(t, &opts)?.len();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "build {:.2} ms; {passes} passes over {bytes} bytes: {tokens} tokens, {:.1} MB/s",
        build.as_secs_f64() * 1e3,
        (bytes * passes) as f64 / secs / 1e6
    );
    Ok(())
}
