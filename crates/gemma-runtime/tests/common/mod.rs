//! Shared helpers of the real-model tests: golden rows, tokenisation with prompts, cosine.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use gemma_runtime::{EmbeddingModel, Precision, RuntimeOptions};
use q8_kernels::Backend;
use spm_tokenizer::EncodeOptions;

/// `testdata/golden` of the workspace.
pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/golden");

/// The cached model of `file_type`, or a panic that says to fetch it.
pub fn model_path(file_type: &str) -> PathBuf {
    match gemma_runtime::testing::require_model(file_type) {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

/// The cached model of `file_type`, opened at `precision` (no pack cache).
pub fn open_model(file_type: &str, precision: Precision) -> Box<dyn EmbeddingModel> {
    open_model_on(file_type, precision, None)
}

/// [`open_model`] on the kernels of `backend` (`None`: the process-wide choice).
pub fn open_model_on(
    file_type: &str,
    precision: Precision,
    backend: Option<Backend>,
) -> Box<dyn EmbeddingModel> {
    let options = RuntimeOptions {
        precision,
        backend,
        ..Default::default()
    };
    gemma_runtime::open(&model_path(file_type), &options).expect("opens")
}

/// Every kernel backend this CPU runs, the process-wide choice first.
pub fn backends() -> Vec<Backend> {
    let first = q8_kernels::kernels().expect("kernels").backend();
    let mut all = vec![first];
    all.extend(
        q8_kernels::Kernels::available()
            .iter()
            .map(|k| k.backend())
            .filter(|&b| b != first),
    );
    all
}

/// Token count of `row` as [`row_ids`] makes it.
pub fn row_tokens(model: &dyn EmbeddingModel, row: &Row) -> usize {
    row_ids(model, row).len()
}

/// One row of an embeddings golden file.
#[derive(Clone)]
pub struct Row {
    pub text: String,
    pub prompt: Option<String>,
    pub dim: usize,
    pub embedding: Vec<f32>,
}

/// Reads `{"text","prompt","dim","embedding"}` rows.
pub fn read_rows(rel: &str) -> Vec<Row> {
    let path = format!("{GOLDEN}/{rel}");
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    data.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("golden row is JSON");
            let embedding: Vec<f32> = v["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            Row {
                text: v["text"].as_str().expect("text").to_owned(),
                prompt: v["prompt"].as_str().map(str::to_owned),
                // Files without a `dim` hold full-size vectors.
                dim: v["dim"].as_u64().map_or(embedding.len(), |d| d as usize),
                embedding,
            }
        })
        .collect()
}

/// Token ids of `row` as the reference made them: the prompt text (from the model's prompt
/// table) in front of the text, `<bos>`/`<eos>`, truncated to the context length.
pub fn row_ids(model: &dyn EmbeddingModel, row: &Row) -> Vec<u32> {
    let info = model.info();
    let prefix = match &row.prompt {
        None => "",
        Some(name) => {
            &info
                .prompts
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no prompt {name:?}"))
                .1
        }
    };
    let opts = EncodeOptions {
        max_length: Some(info.context_length),
        ..EncodeOptions::default()
    };
    model
        .tokenizer()
        .encode_with(&format!("{prefix}{}", row.text), &opts)
        .expect("encodes")
}

/// Truncates to `dim` values and L2-normalises (Matryoshka).
pub fn truncate_normalize(v: &[f32], dim: usize) -> Vec<f64> {
    let v: Vec<f64> = v[..dim].iter().map(|&x| f64::from(x)).collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Cosine similarity.
pub fn cosine(a: &[f64], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    a.iter().zip(b).map(|(x, &y)| x * f64::from(y)).sum::<f64>() / (na * nb)
}

/// (min, median, mean) of `xs`.
pub fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (s[0], median, s.iter().sum::<f64>() / s.len() as f64)
}

/// Embeds every row (prompt, truncation, Matryoshka) and returns the normalised vectors.
pub fn embed_rows(model: &dyn EmbeddingModel, rows: &[Row]) -> Vec<Vec<f64>> {
    let batch: Vec<Vec<u32>> = rows.iter().map(|r| row_ids(model, r)).collect();
    let out = model.embed_batch_ids(&batch).expect("embeds");
    out.iter()
        .zip(rows)
        .map(|(v, r)| truncate_normalize(v, r.dim))
        .collect()
}
