//! The same text gives the same embedding, bit for bit, alone or in a batch, with 1 or 2 threads.
//! Uses the real Q8_0 model (`cargo xtask fetch-model`).

mod common;

use common::open_model;
use gemma_runtime::{EmbeddingModel, Precision};

fn corpus_ids(model: &dyn EmbeddingModel) -> Vec<Vec<u32>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/corpus/docs.jsonl"
    );
    let docs: Vec<String> = std::fs::read_to_string(path)
        .expect("corpus")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON string"))
        .collect();
    let tok = model.tokenizer();
    let mut ids: Vec<Vec<u32>> = docs.iter().take(6).map(|d| tok.encode(d)).collect();
    // Short, medium and long (the long one takes the split-over-threads path inside a batch).
    let long = docs
        .iter()
        .map(|d| tok.encode(d))
        .max_by_key(Vec::len)
        .expect("docs");
    ids.push(long[..600].to_vec());
    ids.push(long[..130].to_vec());
    ids.push(vec![2, 1]);
    ids
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn alone_batched_and_threaded_are_bit_identical() {
    for precision in [Precision::default(), Precision::Int8, Precision::F32] {
        let model = open_model("q8_0", precision);
        let batch = corpus_ids(model.as_ref());
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("pool")
        };
        let (one, two) = (pool(1), pool(2));

        let alone1: Vec<Vec<u32>> = one.install(|| {
            batch
                .iter()
                .map(|ids| bits(&model.embed_ids(ids).expect("embeds")))
                .collect()
        });
        let alone2: Vec<Vec<u32>> = two.install(|| {
            batch
                .iter()
                .map(|ids| bits(&model.embed_ids(ids).expect("embeds")))
                .collect()
        });
        let batch1 = one.install(|| model.embed_batch_ids(&batch).expect("embeds"));
        let batch2 = two.install(|| model.embed_batch_ids(&batch).expect("embeds"));
        let reversed: Vec<Vec<u32>> = batch.iter().rev().cloned().collect();
        let mut batch2_rev = two.install(|| model.embed_batch_ids(&reversed).expect("embeds"));
        batch2_rev.reverse();

        for (i, a) in alone1.iter().enumerate() {
            let len = batch[i].len();
            assert_eq!(
                a, &alone2[i],
                "{precision:?}, text {i} ({len} tokens): 1 vs 2 threads"
            );
            assert_eq!(
                a,
                &bits(&batch1[i]),
                "{precision:?}, text {i} ({len} tokens): alone vs batch, 1 thread"
            );
            assert_eq!(
                a,
                &bits(&batch2[i]),
                "{precision:?}, text {i} ({len} tokens): alone vs batch, 2 threads"
            );
            assert_eq!(
                a,
                &bits(&batch2_rev[i]),
                "{precision:?}, text {i} ({len} tokens): batch order"
            );
        }
    }
}
