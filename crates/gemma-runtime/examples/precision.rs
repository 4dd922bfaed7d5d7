//! Cosine of our embeddings against the sentence-transformers goldens, per [`Precision`].
//!
//! `cargo run --release -p gemma-runtime --example precision -- MODEL.gguf [int8|mixed|f32 ...]`
//!
//! Uses the golden token ids of `testdata/golden/st-f32/tokens.jsonl` for the rows without a
//! prompt (so it measures the forward pass alone) and prints min/median/mean and the time taken.

use std::collections::HashMap;
use std::time::Instant;

use gemma_runtime::{open, Precision, RuntimeOptions};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/golden/st-f32");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: precision MODEL.gguf [int8|mixed|f32 ...]")?;
    let precisions: Vec<Precision> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| match a.as_str() {
                "int8" => Ok(Precision::Int8),
                "mixed" => Ok(Precision::Mixed),
                "f32" => Ok(Precision::F32),
                other => Err(format!("unknown precision {other}")),
            })
            .collect::<Result<_, _>>()?
    } else {
        vec![Precision::Int8, Precision::Mixed, Precision::F32]
    };

    let mut ids_of: HashMap<String, Vec<u32>> = HashMap::new();
    for line in std::fs::read_to_string(format!("{GOLDEN}/tokens.jsonl"))?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = v["text"].as_str().ok_or("text")?.to_owned();
        let ids = v["ids"]
            .as_array()
            .ok_or("ids")?
            .iter()
            .map(|x| x.as_u64().unwrap_or(0) as u32)
            .collect();
        ids_of.insert(text, ids);
    }
    // PRECISION_MAX_TOKENS=N skips longer rows (quick checks).
    let max_tokens: usize = std::env::var("PRECISION_MAX_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    for line in std::fs::read_to_string(format!("{GOLDEN}/embeddings.jsonl"))?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if !v["prompt"].is_null() {
            continue;
        }
        let text = v["text"].as_str().ok_or("text")?;
        let mut ids = ids_of.get(text).ok_or("no ids")?.clone();
        if ids.len() > 2048 {
            let eos = ids[ids.len() - 1];
            ids.truncate(2047);
            ids.push(eos);
        }
        if ids.len() > max_tokens {
            continue;
        }
        let dim = v["dim"].as_u64().ok_or("dim")? as usize;
        let emb: Vec<f32> = v["embedding"]
            .as_array()
            .ok_or("emb")?
            .iter()
            .map(|x| x.as_f64().unwrap_or(0.0) as f32)
            .collect();
        rows.push((ids, dim, emb));
    }

    for p in precisions {
        let model = open(
            path.as_ref(),
            &RuntimeOptions {
                precision: p,
                ..Default::default()
            },
        )?;
        let batch: Vec<Vec<u32>> = rows.iter().map(|r| r.0.clone()).collect();
        let t = Instant::now();
        let out = model.embed_batch_ids(&batch)?;
        let secs = t.elapsed().as_secs_f64();
        let mut cos: Vec<f64> = rows
            .iter()
            .zip(&out)
            .map(|((_, dim, gold), v)| {
                let v = &v[..*dim];
                let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                let g = gold
                    .iter()
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                v.iter()
                    .zip(gold)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum::<f64>()
                    / (n * g)
            })
            .collect();
        let mut worst: Vec<(f64, usize)> = cos
            .iter()
            .zip(&rows)
            .map(|(c, r)| (*c, r.0.len()))
            .collect();
        worst.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!(
            "  worst (cosine, tokens): {:?}",
            &worst[..3.min(worst.len())]
        );
        cos.sort_by(f64::total_cmp);
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        println!(
            "{p:?}: rows {} min {:.6} median {:.6} mean {:.6}  ({secs:.2} s)",
            cos.len(),
            cos[0],
            cos[cos.len() / 2],
            mean
        );
    }
    Ok(())
}
