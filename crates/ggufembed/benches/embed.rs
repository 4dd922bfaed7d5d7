//! Criterion benchmarks of the public API with the real model:
//!
//! * `embed/{1,2}t/{4,32,128}` — `Model::embed_one` on a text of exactly N tokens (`<bos>` and
//!   `<eos>` included), 1 and 2 threads;
//! * `tokenizer/build` — open the GGUF and build the tokenizer from its `tokenizer.ggml.*` keys;
//! * `tokenizer/corpus` — encode every text of `testdata/corpus` on one thread (bytes/s);
//! * `model/open` — `Model::open` (file in the page cache).
//!
//! The model is `$GGUFEMBED_MODEL`, else the cached Q8_0 file. Without it the benchmarks print why
//! and do nothing: benchmarks are not tests. Run with `cargo bench -p ggufembed`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ggufembed::tokenizer::{Tokenizer, VocabConfig};
use ggufembed::{Model, Options};

const TOKENS: [usize; 3] = [4, 32, 128];
const CORPUS: [&str; 2] = [
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/corpus/docs.jsonl"
    ),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/corpus/lines.jsonl"
    ),
];

/// The model file, or `None` after saying why the benchmarks are skipped.
fn model_path() -> Option<PathBuf> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let path = ggufembed::default_model_path();
    if path.is_file() {
        return Some(path);
    }
    SAID.call_once(|| {
        eprintln!(
            "ggufembed benches skipped: no model at {} (run `cargo xtask fetch-model`, or set {})",
            path.display(),
            ggufembed::MODEL_ENV
        )
    });
    None
}

/// A text that the model tokenizes to exactly `n` tokens, specials included.
fn text_of_tokens(model: &Model, n: usize) -> String {
    let specials = model.tokenize("").expect("tokenize").len();
    let text = vec!["hello"; n.saturating_sub(specials)].join(" ");
    let got = model.tokenize(&text).expect("tokenize").len();
    assert_eq!(got, n, "{:?} is {got} tokens, not {n}", text);
    text
}

fn embed(c: &mut Criterion) {
    let Some(path) = model_path() else { return };
    let mut group = c.benchmark_group("embed");
    group.measurement_time(Duration::from_secs(4));
    for threads in [1, 2] {
        let model =
            Model::open(&path, Options::default().threads(threads)).expect("open the model");
        for n in TOKENS {
            let text = text_of_tokens(&model, n);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{threads}t"), n),
                &text,
                |b, text| b.iter(|| model.embed_one(text).expect("embed")),
            );
        }
    }
    group.finish();
}

/// Opens the GGUF and builds the tokenizer from its `tokenizer.ggml.*` keys (what loading a
/// model does for the tokenizer).
fn build_tokenizer(path: &Path) -> Tokenizer {
    let file = gguf::Gguf::open(path).expect("open the GGUF");
    let id = |key: &str| file.get(key).map(|_| file.get_u32(key).expect(key));
    let flag = |key: &str, default: bool| {
        file.get(key)
            .map_or(default, |_| file.get_bool(key).expect(key))
    };
    let config = VocabConfig {
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        unk: id("tokenizer.ggml.unknown_token_id"),
        pad: id("tokenizer.ggml.padding_token_id"),
        add_bos: flag("tokenizer.ggml.add_bos_token", true),
        add_eos: flag("tokenizer.ggml.add_eos_token", false),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix", true),
    };
    Tokenizer::from_parts(
        file.get_str_array("tokenizer.ggml.tokens").expect("tokens"),
        file.get_f32_array("tokenizer.ggml.scores")
            .expect("scores")
            .to_vec(),
        file.get_i32_array("tokenizer.ggml.token_type")
            .expect("token types")
            .to_vec(),
        config,
    )
    .expect("build the tokenizer")
}

fn corpus() -> Vec<String> {
    let mut texts = Vec::new();
    for path in CORPUS {
        let data = std::fs::read_to_string(path).expect("read the corpus");
        for line in data.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other["text"].as_str().expect("a text").to_owned(),
            };
            texts.push(text);
        }
    }
    texts
}

fn tokenizer(c: &mut Criterion) {
    let Some(path) = model_path() else { return };
    let mut group = c.benchmark_group("tokenizer");
    group.sample_size(20);
    group.bench_function("build", |b| b.iter(|| build_tokenizer(&path)));
    let tok = build_tokenizer(&path);
    let texts = corpus();
    let bytes: usize = texts.iter().map(String::len).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("corpus", |b| {
        b.iter(|| texts.iter().map(|t| tok.encode(t).len()).sum::<usize>())
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let Some(path) = model_path() else { return };
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    group.bench_function("open", |b| {
        b.iter(|| Model::open(&path, Options::default().threads(1)).expect("open the model"))
    });
    group.finish();
}

criterion_group!(benches, embed, tokenizer, open);
criterion_main!(benches);
