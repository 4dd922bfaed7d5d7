//! A tiny synthetic EmbeddingGemma GGUF (written with `gguf::GgufWriter`), checked against a
//! plain f64 reference of the graph; plus the metadata and tensor errors, and a file without the
//! Dense projections. Needs no model download.

use std::path::{Path, PathBuf};

use gemma_runtime::{open, Precision, RuntimeError, RuntimeOptions};
use gguf::{GgmlType, GgufError, GgufWriter, OwnedValue};

const ARCH: &str = "gemma-embedding";
const D: usize = 64;
const LAYERS: usize = 3;
const FF: usize = 96;
const HEADS: usize = 2;
const HD: usize = 32;
const WINDOW: usize = 4; // a token sees keys at distance <= 2 on local layers
const PATTERN: u32 = 3; // layer 2 is global
const VOCAB: usize = 16;
const CTX: usize = 32;
const D2: usize = 128;
const D3: usize = 48;
const BASE_GLOBAL: f32 = 1e6;
const BASE_LOCAL: f32 = 1e4;
const EPS: f32 = 1e-6;

/// Deterministic pseudo-random numbers in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// The tensors of the tiny model: (name, ne, values).
fn tensors(dense: bool) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut r = Lcg(42);
    let mut t = Vec::new();
    let mat = |name: String, rows: usize, cols: usize, r: &mut Lcg| {
        let scale = 1.0 / (cols as f32).sqrt();
        (name, vec![cols, rows], r.vec(rows * cols, scale))
    };
    t.push(mat("token_embd.weight".into(), VOCAB, D, &mut r));
    let norm = |name: String, n: usize, r: &mut Lcg| {
        (
            name,
            vec![n],
            r.vec(n, 0.5).iter().map(|v| 1.0 + v).collect(),
        )
    };
    for il in 0..LAYERS {
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        t.push(norm(n("attn_norm"), D, &mut r));
        t.push(mat(n("attn_q"), HEADS * HD, D, &mut r));
        t.push(mat(n("attn_k"), HD, D, &mut r));
        t.push(mat(n("attn_v"), HD, D, &mut r));
        t.push(norm(n("attn_q_norm"), HD, &mut r));
        t.push(norm(n("attn_k_norm"), HD, &mut r));
        t.push(mat(n("attn_output"), D, HEADS * HD, &mut r));
        t.push(norm(n("post_attention_norm"), D, &mut r));
        t.push(norm(n("ffn_norm"), D, &mut r));
        t.push(mat(n("ffn_gate"), FF, D, &mut r));
        t.push(mat(n("ffn_up"), FF, D, &mut r));
        t.push(mat(n("ffn_down"), D, FF, &mut r));
        t.push(norm(n("post_ffw_norm"), D, &mut r));
    }
    t.push(norm("output_norm.weight".into(), D, &mut r));
    if dense {
        t.push(mat("dense_2.weight".into(), D2, D, &mut r));
        t.push(mat("dense_3.weight".into(), D3, D2, &mut r));
    }
    t
}

/// The metadata of the tiny model, in writing order.
fn metadata() -> Vec<(String, OwnedValue)> {
    let k = |s: &str| format!("{ARCH}.{s}");
    let mut pieces: Vec<String> = vec![
        "<pad>".into(),
        "<eos>".into(),
        "<bos>".into(),
        "<unk>".into(),
    ];
    pieces.extend((0..VOCAB - 4).map(|i| char::from(b'a' + i as u8).to_string()));
    let types: Vec<i32> = (0..VOCAB)
        .map(|i| match i {
            0..=2 => 3,
            3 => 2,
            _ => 1,
        })
        .collect();
    let scores: Vec<f32> = (0..VOCAB).map(|i| -(i as f32)).collect();
    vec![
        ("general.architecture".into(), ARCH.into()),
        ("general.name".into(), "tiny".into()),
        (k("block_count"), (LAYERS as u32).into()),
        (k("context_length"), (CTX as u32).into()),
        (k("embedding_length"), (D as u32).into()),
        (k("feed_forward_length"), (FF as u32).into()),
        (k("attention.head_count"), (HEADS as u32).into()),
        (k("attention.head_count_kv"), 1u32.into()),
        (k("rope.freq_base"), BASE_GLOBAL.into()),
        (k("rope.freq_base_swa"), BASE_LOCAL.into()),
        (k("attention.layer_norm_rms_epsilon"), EPS.into()),
        (k("attention.key_length"), (HD as u32).into()),
        (k("attention.value_length"), (HD as u32).into()),
        (k("attention.sliding_window"), (WINDOW as u32).into()),
        (k("attention.sliding_window_pattern"), PATTERN.into()),
        (k("dense_2_feat_in"), (D as u32).into()),
        (k("dense_2_feat_out"), (D2 as u32).into()),
        (k("dense_3_feat_in"), (D2 as u32).into()),
        (k("dense_3_feat_out"), (D3 as u32).into()),
        (k("pooling_type"), 1u32.into()),
        ("tokenizer.ggml.model".into(), "llama".into()),
        (
            "tokenizer.ggml.tokens".into(),
            gguf::OwnedArray::Str(pieces).into(),
        ),
        ("tokenizer.ggml.scores".into(), scores.into()),
        ("tokenizer.ggml.token_type".into(), types.into()),
        ("tokenizer.ggml.bos_token_id".into(), 2u32.into()),
        ("tokenizer.ggml.eos_token_id".into(), 1u32.into()),
        ("tokenizer.ggml.unknown_token_id".into(), 3u32.into()),
        ("tokenizer.ggml.padding_token_id".into(), 0u32.into()),
        ("tokenizer.ggml.add_bos_token".into(), true.into()),
        ("tokenizer.ggml.add_eos_token".into(), true.into()),
        ("tokenizer.ggml.add_space_prefix".into(), false.into()),
    ]
}

/// Writes a GGUF with `meta` and `tensors`; 2-D tensors as `matrix_type` (F32 or Q8_0).
fn write(
    dir: &Path,
    name: &str,
    meta: &[(String, OwnedValue)],
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    matrix_type: GgmlType,
) -> PathBuf {
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut w = GgufWriter::new(file);
    for (k, v) in meta {
        w.add(k.clone(), v.clone()).expect("metadata");
    }
    let ty = |ne: &Vec<usize>| {
        if ne.len() == 2 {
            matrix_type
        } else {
            GgmlType::F32
        }
    };
    for (n, ne, _) in tensors {
        let ne64: Vec<u64> = ne.iter().map(|&d| d as u64).collect();
        w.add_tensor(n.clone(), ty(ne), &ne64).expect("tensor info");
    }
    for (n, ne, data) in tensors {
        if ty(ne) == GgmlType::Q8_0 {
            w.write_tensor_q8_0(n, &gguf::quantize_q8_0(data).expect("quantize"))
                .expect("data");
        } else {
            w.write_tensor_f32(n, data).expect("data");
        }
    }
    w.finish().expect("finish");
    path
}

/// The weights as the runtime sees them (Q8_0 matrices dequantised).
fn effective(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    matrix_type: GgmlType,
) -> std::collections::HashMap<String, Vec<f64>> {
    tensors
        .iter()
        .map(|(n, ne, data)| {
            let v = if ne.len() == 2 && matrix_type == GgmlType::Q8_0 {
                let q = gguf::quantize_q8_0(data).expect("quantize");
                q.iter()
                    .flat_map(|b| {
                        b.qs.iter()
                            .map(move |&x| f64::from(b.d.to_f32()) * f64::from(x))
                    })
                    .collect()
            } else {
                data.iter().map(|&x| f64::from(x)).collect()
            };
            (n.clone(), v)
        })
        .collect()
}

fn rms_norm(x: &mut [f64], w: &[f64]) {
    for row in x.chunks_mut(w.len()) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        let s = 1.0 / (ms + f64::from(EPS)).sqrt();
        for (v, g) in row.iter_mut().zip(w) {
            *v *= s * g;
        }
    }
}

/// `x` (`n × k`) times `W` (`rows × k`) transposed.
fn matmul(x: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    x.chunks(k)
        .flat_map(|xr| {
            w.chunks(k)
                .map(move |wr| xr.iter().zip(wr).map(|(a, b)| a * b).sum::<f64>())
        })
        .collect()
}

fn rope(x: &mut [f64], heads: usize, base: f32) {
    for (pos, row) in x.chunks_mut(heads * HD).enumerate() {
        for h in row.chunks_mut(HD) {
            for i in 0..HD / 2 {
                let theta = pos as f64 * f64::from(base).powf(-2.0 * i as f64 / HD as f64);
                let (a, b) = (h[i], h[i + HD / 2]);
                h[i] = a * theta.cos() - b * theta.sin();
                h[i + HD / 2] = a * theta.sin() + b * theta.cos();
            }
        }
    }
}

/// The graph of REFERENCE.md §3 in plain f64.
fn reference(
    w: &std::collections::HashMap<String, Vec<f64>>,
    ids: &[u32],
    dense: bool,
) -> Vec<f64> {
    let n = ids.len();
    let mut x: Vec<f64> = ids
        .iter()
        .flat_map(|&id| {
            w["token_embd.weight"][id as usize * D..(id as usize + 1) * D]
                .iter()
                .map(|v| v * (D as f64).sqrt())
        })
        .collect();
    for il in 0..LAYERS {
        let g = |s: &str| &w[&format!("blk.{il}.{s}.weight")];
        let global = (il as u32 + 1) % PATTERN == 0;
        let mut h = x.clone();
        rms_norm(&mut h, g("attn_norm"));
        let mut q = matmul(&h, g("attn_q"), D);
        let mut k = matmul(&h, g("attn_k"), D);
        let v = matmul(&h, g("attn_v"), D);
        rms_norm(&mut q, g("attn_q_norm"));
        rms_norm(&mut k, g("attn_k_norm"));
        let base = if global { BASE_GLOBAL } else { BASE_LOCAL };
        rope(&mut q, HEADS, base);
        rope(&mut k, 1, base);
        let mut att = vec![0.0; n * HEADS * HD];
        for i in 0..n {
            for hh in 0..HEADS {
                let qi = &q[(i * HEADS + hh) * HD..][..HD];
                let keys: Vec<usize> = (0..n)
                    .filter(|&j| global || i.abs_diff(j) <= WINDOW / 2)
                    .collect();
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        qi.iter()
                            .zip(&k[j * HD..(j + 1) * HD])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (HD as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (&j, p) in keys.iter().zip(&e) {
                    for c in 0..HD {
                        att[(i * HEADS + hh) * HD + c] += p / z * v[j * HD + c];
                    }
                }
            }
        }
        let mut o = matmul(&att, g("attn_output"), HEADS * HD);
        rms_norm(&mut o, g("post_attention_norm"));
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        let mut h = x.clone();
        rms_norm(&mut h, g("ffn_norm"));
        let gate = matmul(&h, g("ffn_gate"), D);
        let up = matmul(&h, g("ffn_up"), D);
        let a: Vec<f64> = gate
            .iter()
            .zip(&up)
            .map(|(&g, &u)| {
                0.5 * g
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh())
                    * u
            })
            .collect();
        let mut f = matmul(&a, g("ffn_down"), FF);
        rms_norm(&mut f, g("post_ffw_norm"));
        x.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
    }
    rms_norm(&mut x, &w["output_norm.weight"]);
    let mut pooled = vec![0.0; D];
    for row in x.chunks(D) {
        pooled
            .iter_mut()
            .zip(row)
            .for_each(|(p, v)| *p += v / n as f64);
    }
    if !dense {
        return pooled;
    }
    let mid = matmul(&pooled, &w["dense_2.weight"], D);
    matmul(&mid, &w["dense_3.weight"], D2)
}

fn max_rel_err(ours: &[f32], reference: &[f64]) -> f64 {
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    ours.iter()
        .zip(reference)
        .map(|(&a, b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
        / scale
}

const IDS: [u32; 9] = [2, 4, 9, 5, 15, 7, 7, 12, 1];

#[test]
fn tiny_f32_model_matches_the_reference_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tensors(true);
    let path = write(dir.path(), "tiny.gguf", &metadata(), &t, GgmlType::F32);
    let model = open(&path, &RuntimeOptions::default()).expect("opens");
    let info = model.info();
    assert_eq!(
        (
            info.hidden_size,
            info.output_dim,
            info.n_layers,
            info.context_length
        ),
        (D, D3, LAYERS, CTX)
    );
    assert!(info.has_dense);
    assert_eq!(info.weight_type, "f32");
    assert_eq!(info.name.as_deref(), Some("tiny"));
    for len in [1, 2, 5, 9] {
        let ids = &IDS[..len];
        let ours = model.embed_ids(ids).expect("embeds");
        let err = max_rel_err(&ours, &reference(&effective(&t, GgmlType::F32), ids, true));
        assert!(err < 2e-5, "{len} tokens: max relative error {err}");
    }
}

#[test]
fn tiny_q8_0_model_matches_the_reference_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tensors(true);
    let path = write(dir.path(), "tiny-q8.gguf", &metadata(), &t, GgmlType::Q8_0);
    let reference = reference(&effective(&t, GgmlType::Q8_0), &IDS, true);
    for (precision, tol) in [
        (Precision::F32, 2e-5),
        (Precision::Mixed, 2e-2),
        (Precision::Int8, 2e-2),
    ] {
        let model = open(
            &path,
            &RuntimeOptions {
                precision,
                ..Default::default()
            },
        )
        .expect("opens");
        assert_eq!(model.info().weight_type, "q8_0");
        let err = max_rel_err(&model.embed_ids(&IDS).expect("embeds"), &reference);
        assert!(err < tol, "{precision:?}: max relative error {err}");
    }
}

#[test]
fn without_dense_tensors_the_output_is_the_pooled_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tensors(false);
    // The dense_* keys stay: only the tensors decide.
    let path = write(dir.path(), "nodense.gguf", &metadata(), &t, GgmlType::F32);
    let model = open(&path, &RuntimeOptions::default()).expect("opens");
    assert!(!model.info().has_dense);
    assert_eq!(model.info().output_dim, D);
    let ours = model.embed_ids(&IDS).expect("embeds");
    let err = max_rel_err(
        &ours,
        &reference(&effective(&t, GgmlType::F32), &IDS, false),
    );
    assert!(err < 2e-5, "max relative error {err}");
}

fn open_with(
    meta: Vec<(String, OwnedValue)>,
    t: &[(String, Vec<usize>, Vec<f32>)],
) -> Result<(), RuntimeError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.gguf", &meta, t, GgmlType::F32);
    open(&path, &RuntimeOptions::default()).map(|_| ())
}

const REQUIRED: [&str; 15] = [
    "block_count",
    "context_length",
    "embedding_length",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "rope.freq_base",
    "rope.freq_base_swa",
    "attention.layer_norm_rms_epsilon",
    "attention.key_length",
    "attention.value_length",
    "attention.sliding_window",
    "dense_2_feat_out",
    "dense_3_feat_in",
    "pooling_type",
];

#[test]
fn missing_metadata_key_is_a_typed_error() {
    let t = tensors(true);
    for key in REQUIRED {
        let full = format!("{ARCH}.{key}");
        let meta: Vec<_> = metadata().into_iter().filter(|(k, _)| *k != full).collect();
        match open_with(meta, &t) {
            Err(RuntimeError::Gguf(GgufError::MissingKey { key: k })) => assert_eq!(k, full),
            other => panic!("{full}: expected MissingKey, got {other:?}"),
        }
    }
    let meta: Vec<_> = metadata()
        .into_iter()
        .filter(|(k, _)| k != "tokenizer.ggml.tokens")
        .collect();
    assert!(matches!(
        open_with(meta, &t),
        Err(RuntimeError::Gguf(GgufError::MissingKey { .. }))
    ));
}

#[test]
fn wrong_typed_metadata_key_is_a_typed_error() {
    let t = tensors(true);
    for key in REQUIRED {
        let full = format!("{ARCH}.{key}");
        let meta: Vec<_> = metadata()
            .into_iter()
            .map(|(k, v)| {
                if k == full {
                    (k, OwnedValue::Str("7".into()))
                } else {
                    (k, v)
                }
            })
            .collect();
        match open_with(meta, &t) {
            Err(RuntimeError::Gguf(GgufError::WrongType { key: k, .. })) => assert_eq!(k, full),
            other => panic!("{full}: expected WrongType, got {other:?}"),
        }
    }
}

#[test]
fn unusable_hyperparameters_are_rejected() {
    let t = tensors(true);
    let set = |key: &str, v: OwnedValue| -> Vec<(String, OwnedValue)> {
        let full = format!("{ARCH}.{key}");
        metadata()
            .into_iter()
            .map(|(k, old)| if k == full { (k, v.clone()) } else { (k, old) })
            .collect()
    };
    assert!(matches!(
        open_with(set("attention.head_count", 0u32.into()), &t),
        Err(RuntimeError::InvalidHyperparameter { .. })
    ));
    assert!(matches!(
        open_with(set("pooling_type", 4u32.into()), &t),
        Err(RuntimeError::UnsupportedPooling { value: 4 })
    ));
    // A hyperparameter that disagrees with the tensors.
    assert!(matches!(
        open_with(set("feed_forward_length", 128u32.into()), &t),
        Err(RuntimeError::TensorShape { .. })
    ));
}

#[test]
fn unknown_architecture_and_missing_tensor() {
    let t = tensors(true);
    let meta = metadata()
        .into_iter()
        .map(|(k, v)| {
            if k == "general.architecture" {
                (k, OwnedValue::Str("bert".into()))
            } else {
                (k, v)
            }
        })
        .collect();
    match open_with(meta, &t) {
        Err(RuntimeError::UnsupportedArchitecture { architecture, .. }) => {
            assert_eq!(architecture, "bert")
        }
        other => panic!("expected UnsupportedArchitecture, got {other:?}"),
    }
    let without: Vec<_> = t
        .iter()
        .filter(|(n, _, _)| n != "blk.1.ffn_up.weight")
        .cloned()
        .collect();
    assert!(matches!(
        open_with(metadata(), &without),
        Err(RuntimeError::Gguf(GgufError::TensorNotFound { .. }))
    ));
}

#[test]
fn bad_token_ids_and_lengths_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "tiny.gguf",
        &metadata(),
        &tensors(true),
        GgmlType::F32,
    );
    let model = open(&path, &RuntimeOptions::default()).expect("opens");
    assert!(matches!(
        model.embed_ids(&[]),
        Err(RuntimeError::EmptySequence)
    ));
    assert!(matches!(
        model.embed_ids(&[2, VOCAB as u32, 1]),
        Err(RuntimeError::TokenOutOfRange { position: 1, .. })
    ));
    assert!(matches!(
        model.embed_ids(&[4; CTX + 1]),
        Err(RuntimeError::SequenceTooLong { .. })
    ));
    assert_eq!(model.tokenizer().encode("abc"), vec![2, 4, 5, 6, 1]);
}

/// `metadata()` without the keys in `drop` and with `set` replacing or adding values.
fn edited(drop: &[&str], set: &[(&str, OwnedValue)]) -> Vec<(String, OwnedValue)> {
    let mut meta: Vec<(String, OwnedValue)> = metadata()
        .into_iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .collect();
    for (key, value) in set {
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => meta.push(((*key).to_owned(), value.clone())),
        }
    }
    meta
}

#[test]
fn a_missing_bos_or_eos_id_is_an_error_while_the_flag_asks_for_it() {
    let t = tensors(true);
    let bos = "tokenizer.ggml.bos_token_id";
    let eos = "tokenizer.ggml.eos_token_id";
    for (key, flag) in [
        (bos, "tokenizer.ggml.add_bos_token"),
        (eos, "tokenizer.ggml.add_eos_token"),
    ] {
        match open_with(edited(&[key], &[]), &t) {
            Err(RuntimeError::MissingSpecialToken { key: k, flag: f }) => {
                assert_eq!((k, f), (key, flag));
            }
            other => panic!("{key}: expected MissingSpecialToken, got {other:?}"),
        }
        // The flag set to false: the token is not added, so its id is not needed.
        assert!(open_with(edited(&[key], &[(flag, false.into())]), &t).is_ok());
    }
    // add_bos_token defaults to true (llama.cpp's SentencePiece default): still required.
    let err = open_with(edited(&[bos, "tokenizer.ggml.add_bos_token"], &[]), &t).unwrap_err();
    assert!(err.to_string().contains(bos), "{err}");
    // add_eos_token defaults to false: a file without both keys adds no eos.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "noeos.gguf",
        &edited(&[eos, "tokenizer.ggml.add_eos_token"], &[]),
        &t,
        GgmlType::F32,
    );
    let model = open(&path, &RuntimeOptions::default()).expect("opens");
    assert_eq!(model.tokenizer().encode("abc"), vec![2, 4, 5, 6]);
}

#[test]
fn block_count_below_the_file_blocks_is_an_error_naming_the_tensor() {
    let t = tensors(true);
    let meta = edited(&[], &[(&format!("{ARCH}.block_count"), 2u32.into())]);
    match open_with(meta, &t) {
        Err(RuntimeError::UnusedTensor { name, reason, .. }) => {
            assert!(name.starts_with("blk.2."), "{name}");
            assert!(reason.contains("block_count = 2"), "{reason}");
        }
        other => panic!("expected UnusedTensor, got {other:?}"),
    }
}

#[test]
fn a_tensor_the_graph_does_not_use_is_an_error_naming_it() {
    let base = tensors(true);
    for extra in [
        "blk.0.attn_bias.weight",
        "blk.x.attn_norm.weight",
        "blk.+1.attn_norm.weight",
        "rope_freqs.weight",
        "dense_4.weight",
    ] {
        let mut t = base.clone();
        t.push((extra.to_owned(), vec![4], vec![1.0; 4]));
        match open_with(metadata(), &t) {
            Err(RuntimeError::UnusedTensor { name, .. }) => assert_eq!(name, extra),
            other => panic!("{extra:?}: expected UnusedTensor, got {other:?}"),
        }
    }
    // The language model head of a Gemma 3 text model is a known unused tensor.
    let mut t = base.clone();
    t.push((
        "output.weight".to_owned(),
        vec![D, VOCAB],
        vec![0.5; D * VOCAB],
    ));
    assert!(open_with(metadata(), &t).is_ok());
}

#[test]
fn non_finite_weights_give_non_finite_outputs_the_facade_refuses() {
    // The runtime passes the values through; the `ggufembed` facade turns them into an error
    // naming the text (tested there). Here: a NaN weight reaches the output at every precision.
    let dir = tempfile::tempdir().expect("tempdir");
    for (value, name) in [(f32::NAN, "nan.gguf"), (f32::INFINITY, "inf.gguf")] {
        let mut t = tensors(true);
        let slot = t
            .iter_mut()
            .find(|(n, _, _)| n == "blk.1.ffn_down.weight")
            .expect("tensor");
        slot.2[7] = value;
        let path = write(dir.path(), name, &metadata(), &t, GgmlType::F32);
        let model = open(&path, &RuntimeOptions::default()).expect("opens");
        let out = model.embed_ids(&IDS).expect("embeds");
        assert!(out.iter().any(|v| !v.is_finite()), "{name}");
    }
}
