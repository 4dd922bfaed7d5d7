//! The facade against the real Q8_0 model: golden embeddings through the public API (prompts,
//! Matryoshka dimension, normalisation), batching and thread-count consistency, error cases.
//!
//! The model is looked up like every other real-model test (`GGUFEMBED_MODEL`, else the cache
//! directory); run `cargo xtask fetch-model` first.

use std::sync::{Arc, OnceLock};

use ggufembed::{EmbedOptions, Error, Model, Options, Prompt, Truncation};
use serde_json::Value;

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
};

fn model_path() -> std::path::PathBuf {
    let path = ggufembed::default_model_path();
    assert!(
        path.is_file(),
        "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
        path.display()
    );
    path
}

/// One shared 2-thread model for the whole test binary.
fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::open(model_path(), Options::default().threads(2)).unwrap())
}

fn testdata(rel: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/").to_owned() + rel;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    f64::from(ggufembed::cosine_similarity(a, b))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn prompt_of(row: &Value) -> Prompt {
    match row["prompt"].as_str() {
        None => Prompt::None,
        Some("query") => Prompt::Query,
        Some("document") => Prompt::Document,
        Some(other) => Prompt::Named(other.to_owned()),
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn golden_embeddings_through_the_public_api() {
    let model = model();
    let rows: Vec<Value> = testdata("golden/st-f32/embeddings.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 100, "golden file too short");
    // group name -> cosines
    let mut groups: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for row in &rows {
        let text = row["text"].as_str().unwrap();
        let dim = row["dim"].as_u64().unwrap() as usize;
        let want: Vec<f32> = row["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(want.len(), dim);
        let prompt = prompt_of(row);
        let got = model
            .embed_one_with(
                text,
                EmbedOptions::default().prompt(prompt.clone()).dim(dim),
            )
            .unwrap();
        assert_eq!(got.len(), dim);
        assert!((norm(&got) - 1.0).abs() < 1e-5, "output not unit length");
        let group = format!("{}/{dim}", row["prompt"].as_str().unwrap_or("none"));
        groups.entry(group).or_default().push(cosine(&got, &want));

        // Prompted rows also check the Matryoshka cut: golden 768 cut to 256 and renormalised
        // must match the facade's dim(256) output.
        if prompt != Prompt::None && dim == 768 {
            let mut want256 = want[..256].to_vec();
            ggufembed::l2_normalize(&mut want256);
            let got256 = model
                .embed_one_with(text, EmbedOptions::default().prompt(prompt).dim(256))
                .unwrap();
            assert_eq!(got256.len(), 256);
            let group = format!("{}/256 (cut from 768)", row["prompt"].as_str().unwrap());
            groups
                .entry(group)
                .or_default()
                .push(cosine(&got256, &want256));
        }
    }
    assert!(
        groups.len() >= 5,
        "expected none/query/document groups, got {:?}",
        groups.keys()
    );
    for (group, cosines) in groups {
        let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let n = cosines.len();
        let med = median(cosines);
        eprintln!("{group:28} n={n:3} median cosine {med:.6} min {min:.6}");
        assert!(med >= 0.9995, "{group}: median cosine {med} < 0.9995");
    }
}

#[test]
fn prompts_are_plain_prefixes() {
    let model = model();
    let text = "The quick brown fox jumps over the lazy dog.";
    let named = model
        .embed_one_with(
            text,
            EmbedOptions::default().prompt(Prompt::Named("Clustering".into())),
        )
        .unwrap();
    let literal = model
        .embed_one_with(
            text,
            EmbedOptions::default().prompt(Prompt::Text("task: clustering | query: ".into())),
        )
        .unwrap();
    assert_eq!(named, literal);
    let by_hand = model
        .embed_one(&format!("task: search result | query: {text}"))
        .unwrap();
    let query = model
        .embed_one_with(text, EmbedOptions::default().prompt(Prompt::Query))
        .unwrap();
    assert_eq!(by_hand, query);
    let plain = model.embed_one(text).unwrap();
    assert!(cosine(&plain, &query) < 0.9999, "prompt had no effect");

    let err = model
        .embed_one_with(
            text,
            EmbedOptions::default().prompt(Prompt::Named("NoSuchTask".into())),
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnknownPrompt { .. }), "{err:?}");
    assert!(err.to_string().contains("Clustering"), "{err}");
}

#[test]
fn dimension_and_normalisation() {
    let model = model();
    assert_eq!(model.dimensions(), &[768, 512, 256, 128]);
    let text = "Matryoshka embeddings keep their meaning when cut short.";
    let raw = model
        .embed_one_with(text, EmbedOptions::default().normalize(false))
        .unwrap();
    let raw256 = model
        .embed_one_with(text, EmbedOptions::default().normalize(false).dim(256))
        .unwrap();
    assert_eq!(
        raw256,
        raw[..256],
        "normalize(false) + dim must be the raw vector cut"
    );
    for dim in [768, 512, 256, 128] {
        let got = model
            .embed_one_with(text, EmbedOptions::default().dim(dim))
            .unwrap();
        let mut want = raw[..dim].to_vec();
        ggufembed::l2_normalize(&mut want);
        assert_eq!(got, want, "dim {dim}");
        assert!((norm(&got) - 1.0).abs() < 1e-5);
    }
    let err = model
        .embed_with(&[text], EmbedOptions::default().dim(300))
        .unwrap_err();
    match &err {
        Error::UnsupportedDimension {
            requested,
            supported,
        } => {
            assert_eq!(*requested, 300);
            assert!(supported.contains(&256));
        }
        other => panic!("expected UnsupportedDimension, got {other:?}"),
    }
    assert!(err.to_string().contains("768, 512, 256, 128"), "{err}");
    let err = model
        .embed_with(&[text], EmbedOptions::default().batch_size(0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
}

#[test]
fn too_long_and_truncation() {
    let model = model();
    let long = "hello ".repeat(3000);
    let ids = model.tokenize(&long).unwrap();
    assert_eq!(ids.len(), model.context_length());
    assert_eq!(ids[0], 2, "<bos> first");
    assert_eq!(*ids.last().unwrap(), 1, "<eos> last");
    let err = model
        .embed_with(
            &["short", long.as_str()],
            EmbedOptions::default().truncation(Truncation::Error),
        )
        .unwrap_err();
    match err {
        Error::TooLong { index, tokens, max } => {
            assert_eq!(index, 1);
            assert_eq!(max, 2048);
            assert!(tokens > 2048, "{tokens}");
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    // The default truncates and embeds the first 2046 content tokens.
    let v = model.embed_one(&long).unwrap();
    let w = model.embed_tokens(&[ids], EmbedOptions::default()).unwrap();
    assert_eq!(v, w[0]);
}

#[test]
fn empty_text_is_bos_eos() {
    let model = model();
    assert_eq!(model.tokenize("").unwrap(), vec![2, 1]);
    let v = model.embed(&["", "x"]).unwrap();
    assert_eq!(v.len(), 2);
    assert!(v[0].iter().all(|x| x.is_finite()));
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    let nothing: Vec<Vec<f32>> = model.embed::<&str>(&[]).unwrap();
    assert!(nothing.is_empty());
}

#[test]
fn tokenize_matches_golden_ids() {
    let model = model();
    let mut checked = 0;
    for line in testdata("golden/st-f32/tokens.jsonl").lines().take(200) {
        let row: Value = serde_json::from_str(line).unwrap();
        let want: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        if want.len() > model.context_length() {
            continue;
        }
        let got = model.tokenize(row["text"].as_str().unwrap()).unwrap();
        assert_eq!(got, want, "text {:?}", row["text"]);
        checked += 1;
    }
    assert!(checked >= 100);
}

#[test]
fn batch_alone_and_thread_counts_agree() {
    let texts: Vec<String> = testdata("corpus/lines.jsonl")
        .lines()
        .take(12)
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .chain(["".to_owned(), "Hello, world!".to_owned()])
        .collect();
    let two = model();
    let one = Model::open(model_path(), Options::default().threads(1)).unwrap();
    assert_eq!(one.threads(), 1);
    let batch2 = two.embed(&texts).unwrap();
    let batch1 = one.embed(&texts).unwrap();
    let small_batches = two
        .embed_with(&texts, EmbedOptions::default().batch_size(5))
        .unwrap();
    let mut worst = [0f32; 3];
    let mut identical = [true; 3];
    for (i, text) in texts.iter().enumerate() {
        let alone = two.embed_one(text).unwrap();
        for (k, other) in [&batch2[i], &batch1[i], &small_batches[i]]
            .into_iter()
            .enumerate()
        {
            worst[k] = worst[k].max(max_abs_diff(&alone, other));
            identical[k] &= alone == *other;
        }
    }
    eprintln!(
        "max |alone - batch(2 threads)| {:e} (bit-identical: {}), \
         |alone - batch(1 thread)| {:e} ({}), |alone - batches of 5| {:e} ({})",
        worst[0], identical[0], worst[1], identical[1], worst[2], identical[2]
    );
    for w in worst {
        assert!(w <= 1e-5, "embeddings depend on batching/threads by {w}");
    }
}

#[test]
fn shared_between_threads() {
    let model = Arc::new(Model::open(model_path(), Options::default().threads(2)).unwrap());
    let texts = ["first thread text", "second thread text"];
    let expected = model.embed(&texts).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || model.embed_one(texts[i]).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let got = h.join().unwrap();
        assert!(max_abs_diff(&got, &expected[i]) <= 1e-5);
    }
}

#[test]
fn model_info_is_sensible() {
    let model = model();
    let info = model.info();
    assert_eq!(info.architecture, "gemma-embedding");
    assert_eq!(model.output_dim(), 768);
    assert_eq!(model.context_length(), 2048);
    assert!(model.prompts().iter().any(|(n, _)| n == "query"));
    assert!(!model.backend().is_empty());
}
