//! The converter on small synthetic checkpoints: a tiny valid directory converts (and the result
//! reads back with the values expected), and each kind of bad input gives a clear error that
//! names the file, with no output or partial file left behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gemma_runtime::convert::{convert, ConvertError, OutType};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const HIDDEN: usize = 32;
const FF: usize = 64;
const HEAD_DIM: usize = 32;
const DENSE: usize = 64;

/// SentencePiece pieces `(text, score, type)` of the tiny vocabulary (type numbers as in the
/// proto: 1 normal, 2 unknown, 3 control, 6 byte).
const PIECES: [(&str, f32, u64); 8] = [
    ("<pad>", 0.0, 3),
    ("<eos>", 0.0, 3),
    ("<bos>", 0.0, 3),
    ("<unk>", 0.0, 2),
    ("<0x41>", 0.0, 6),
    ("\u{2581}a", -1.5, 1),
    ("b", -2.5, 1),
    ("\u{2581}ab", -3.5, 1),
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `tokenizer.model` protobuf with [`PIECES`] (BPE model type).
fn tokenizer_model() -> Vec<u8> {
    let mut out = Vec::new();
    for (text, score, kind) in PIECES {
        let mut p = Vec::new();
        len_field(&mut p, 1, text.as_bytes());
        varint(&mut p, 2 << 3 | 5);
        p.extend_from_slice(&score.to_le_bytes());
        varint(&mut p, 3 << 3);
        varint(&mut p, kind);
        len_field(&mut out, 1, &p);
    }
    let mut trainer = Vec::new();
    varint(&mut trainer, 3 << 3);
    varint(&mut trainer, 2);
    len_field(&mut out, 2, &trainer);
    out
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                (*name).to_owned(),
                TensorView::new(Dtype::F32, shape.clone(), b).expect("valid view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None::<HashMap<String, String>>, path)
        .expect("write safetensors");
}

/// The model tensors of a one-layer model: `(name, shape, values)`.
fn model_tensors() -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let mut t = vec![
        (
            "embed_tokens.weight",
            vec![PIECES.len(), HIDDEN],
            values(PIECES.len() * HIDDEN, 1),
        ),
        ("norm.weight", vec![HIDDEN], values(HIDDEN, 2)),
    ];
    let layer: [(&'static str, Vec<usize>); 13] = [
        ("layers.0.input_layernorm.weight", vec![HIDDEN]),
        ("layers.0.post_attention_layernorm.weight", vec![HIDDEN]),
        ("layers.0.pre_feedforward_layernorm.weight", vec![HIDDEN]),
        ("layers.0.post_feedforward_layernorm.weight", vec![HIDDEN]),
        ("layers.0.self_attn.q_norm.weight", vec![HEAD_DIM]),
        ("layers.0.self_attn.k_norm.weight", vec![HEAD_DIM]),
        ("layers.0.self_attn.q_proj.weight", vec![HEAD_DIM, HIDDEN]),
        ("layers.0.self_attn.k_proj.weight", vec![HEAD_DIM, HIDDEN]),
        ("layers.0.self_attn.v_proj.weight", vec![HEAD_DIM, HIDDEN]),
        ("layers.0.self_attn.o_proj.weight", vec![HIDDEN, HEAD_DIM]),
        ("layers.0.mlp.gate_proj.weight", vec![FF, HIDDEN]),
        ("layers.0.mlp.up_proj.weight", vec![FF, HIDDEN]),
        ("layers.0.mlp.down_proj.weight", vec![HIDDEN, FF]),
    ];
    for (i, (name, shape)) in layer.into_iter().enumerate() {
        let n = shape.iter().product();
        t.push((name, shape, values(n, 10 + i as u32)));
    }
    t
}

/// Writes a complete tiny EmbeddingGemma directory named `model_dir` under `root`.
fn tiny_checkpoint(root: &Path) -> PathBuf {
    let dir = root.join("tiny-gemma");
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::create_dir_all(dir.join("2_Dense")).unwrap();
    std::fs::create_dir_all(dir.join("3_Dense")).unwrap();
    let config = serde_json::json!({
        "architectures": ["Gemma3TextModel"],
        "model_type": "gemma3_text",
        "hidden_size": HIDDEN,
        "intermediate_size": FF,
        "num_hidden_layers": 1,
        "num_attention_heads": 1,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "sliding_window": 16,
        "vocab_size": PIECES.len(),
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let modules = serde_json::json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]);
    std::fs::write(dir.join("modules.json"), modules.to_string()).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    for (sub, fin, fout, seed) in [
        ("2_Dense", HIDDEN, DENSE, 50),
        ("3_Dense", DENSE, HIDDEN, 60),
    ] {
        std::fs::write(
            dir.join(sub).join("config.json"),
            format!(r#"{{"in_features": {fin}, "out_features": {fout}, "bias": false}}"#),
        )
        .unwrap();
        write_safetensors(
            &dir.join(sub).join("model.safetensors"),
            &[("linear.weight", vec![fout, fin], values(fin * fout, seed))],
        );
    }
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"add_bos_token": true, "add_eos_token": true, "bos_token": "<bos>", "eos_token": "<eos>",
            "unk_token": "<unk>", "pad_token": "<pad>"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.model"), tokenizer_model()).unwrap();
    // tokenizer.json: only the parts the converter reads (special tokens, post-processor).
    let special =
        |id: u32| serde_json::json!({"SpecialToken": {"id": PIECES[id as usize].0, "type_id": 0}});
    let seq = |id: &str| serde_json::json!({"Sequence": {"id": id, "type_id": 0}});
    let tokenizer = serde_json::json!({
        "added_tokens": (0..4).map(|i| serde_json::json!({"id": i, "content": PIECES[i].0, "special": true})).collect::<Vec<_>>(),
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(2), seq("A"), special(1)],
            "pair": [special(2), seq("A"), special(1), special(2), seq("B"), special(1)]
        },
        "model": {"type": "BPE", "vocab": {}}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    write_safetensors(&dir.join("model.safetensors"), &model_tensors());
    dir
}

/// The names of the files in `dir` (to check that nothing was left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Converts `hf` into a fresh output directory; returns the error and asserts that the output
/// directory is still empty (no file, no partial file).
fn convert_fails(hf: &Path, ty: OutType) -> ConvertError {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.gguf");
    let err = convert(hf, &out, ty, &mut |_| {}).expect_err("conversion must fail");
    assert_eq!(
        listing(out_dir.path()),
        Vec::<String>::new(),
        "left behind after: {err}"
    );
    err
}

#[test]
fn tiny_checkpoint_converts() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("tiny.gguf");
    let mut calls = 0;
    let summary = convert(&hf, &out, OutType::Q8_0, &mut |_| calls += 1).expect("converts");
    assert_eq!(listing(out_dir.path()), ["tiny.gguf"]);
    assert_eq!(summary.n_tensors, 2 + 2 + 13);
    assert!(calls >= summary.n_tensors);

    let file = gguf::Gguf::open(&out).expect("valid GGUF");
    assert_eq!(file.architecture().unwrap(), "gemma-embedding");
    assert_eq!(file.get_str("general.name").unwrap(), "Tiny Gemma");
    assert_eq!(file.get_u32("gemma-embedding.block_count").unwrap(), 1);
    assert_eq!(
        file.get_u32("gemma-embedding.attention.sliding_window")
            .unwrap(),
        16
    );
    assert_eq!(
        file.get_u32("gemma-embedding.dense_2_feat_out").unwrap(),
        DENSE as u32
    );
    assert_eq!(file.get_u32("gemma-embedding.pooling_type").unwrap(), 1);
    assert_eq!(file.get_u32("general.file_type").unwrap(), 7);
    assert_eq!(file.get_u32("tokenizer.ggml.unknown_token_id").unwrap(), 3);
    assert_eq!(file.get_u32("tokenizer.ggml.padding_token_id").unwrap(), 0);
    assert!(file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(file.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert!(!file.get_bool("tokenizer.ggml.add_sep_token").unwrap());
    assert!(!file.get_bool("tokenizer.ggml.add_space_prefix").unwrap());
    let keys: Vec<&str> = file.metadata().map(|(k, _)| k).collect();
    assert_eq!(
        keys[keys.len() - 8..],
        [
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_eos_token",
            "tokenizer.ggml.add_sep_token",
            "tokenizer.ggml.add_space_prefix",
        ]
    );
    let tokens: Vec<&str> = file
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .collect();
    assert_eq!(tokens, PIECES.map(|p| p.0));
    let types = file
        .get_i32_array("tokenizer.ggml.token_type")
        .unwrap()
        .to_vec();
    assert_eq!(types, [3, 3, 3, 2, 6, 1, 1, 1]);
    // pieces named in tokenizer_config.json's added_tokens_decoder would get -1000; none are.
    let scores = file
        .get_f32_array("tokenizer.ggml.scores")
        .unwrap()
        .to_vec();
    assert_eq!(scores, PIECES.map(|p| p.1));

    let names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        [
            "dense_2.weight",
            "dense_3.weight",
            "token_embd.weight",
            "blk.0.attn_norm.weight"
        ]
    );
    assert_eq!(names.last(), Some(&"output_norm.weight"));

    // norms are stored as 1 + w, in F32
    let norm = file.require_tensor("output_norm.weight").unwrap();
    assert_eq!(norm.ggml_type, gguf::GgmlType::F32);
    let want: Vec<f32> = values(HIDDEN, 2).iter().map(|v| v + 1.0).collect();
    assert_eq!(file.tensor_f32(norm).unwrap(), want);
    // matrices are Q8_0 with the shape reversed, within Q8_0's error of the source
    let q = file.require_tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(q.ggml_type, gguf::GgmlType::Q8_0);
    assert_eq!(q.ne, [FF as u64, HIDDEN as u64]);
    let src = &model_tensors()[14].2;
    let deq = file.dequantize(q).unwrap();
    for (a, b) in src.iter().zip(&deq) {
        assert!((a - b).abs() <= 1.0 / 127.0, "{a} vs {b}");
    }
}

#[test]
fn missing_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    for file in [
        "config.json",
        "modules.json",
        "tokenizer.model",
        "model.safetensors",
    ] {
        let path = hf.join(file);
        let saved = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        match convert_fails(&hf, OutType::Q8_0) {
            ConvertError::MissingFile { path: p } => assert_eq!(p, path),
            other => panic!("{file}: unexpected error {other}"),
        }
        std::fs::write(&path, saved).unwrap();
    }
    let err = convert_fails(&root.path().join("no-such-dir"), OutType::F32);
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn wrong_architecture_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    let path = hf.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("Gemma3TextModel", "LlamaForCausalLM")).unwrap();
    let err = convert_fails(&hf, OutType::Q8_0);
    assert!(
        matches!(&err, ConvertError::WrongArchitecture { path: p, found, .. } if *p == path && found == "LlamaForCausalLM"),
        "{err}"
    );
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn truncated_safetensors_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    for file in ["model.safetensors", "3_Dense/model.safetensors"] {
        let path = hf.join(file);
        let bytes = std::fs::read(&path).unwrap();
        // cut inside the data, then inside the header
        for cut in [bytes.len() - 100, 20] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = convert_fails(&hf, OutType::Q8_0);
            assert!(
                matches!(&err, ConvertError::Safetensors { path: p, .. } if *p == path),
                "{file} cut at {cut}: {err}"
            );
            assert!(err.to_string().contains(file), "{err}");
        }
        std::fs::write(&path, &bytes).unwrap();
    }
}

#[test]
fn unknown_type_string_is_rejected() {
    let err = "q4_k".parse::<OutType>().expect_err("unknown type");
    assert!(matches!(&err, ConvertError::UnknownType { given } if given == "q4_k"));
    assert!(err.to_string().contains("q8_0, f32, f16, bf16"), "{err}");
    assert_eq!("BF16".parse::<OutType>().unwrap(), OutType::Bf16);
}

#[test]
fn failure_while_writing_leaves_no_partial_file() {
    // A NaN in the last matrix fails Q8_0 quantisation after most of the file is written.
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    let mut tensors = model_tensors();
    let last = tensors.len() - 1;
    tensors[last].2[5] = f32::NAN;
    write_safetensors(&hf.join("model.safetensors"), &tensors);
    let err = convert_fails(&hf, OutType::Q8_0);
    assert!(
        matches!(&err, ConvertError::NonFinite { name, index: 5, .. } if name == tensors[last].0),
        "{err}"
    );
    // F32 output keeps the NaN as it is (as llama.cpp does).
    let out_dir = tempfile::tempdir().unwrap();
    convert(
        &hf,
        &out_dir.path().join("f32.gguf"),
        OutType::F32,
        &mut |_| {},
    )
    .expect("f32 converts");
}

#[test]
fn unknown_tensor_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    let mut tensors = model_tensors();
    tensors.push(("layers.0.mystery.weight", vec![4], vec![0.0; 4]));
    write_safetensors(&hf.join("model.safetensors"), &tensors);
    let err = convert_fails(&hf, OutType::F16);
    assert!(
        matches!(&err, ConvertError::UnknownTensor { name, .. } if name == "layers.0.mystery.weight"),
        "{err}"
    );
}

#[test]
fn unwritable_output_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let hf = tiny_checkpoint(root.path());
    let out = root.path().join("no-such-dir").join("out.gguf");
    let err = convert(&hf, &out, OutType::F32, &mut |_| {}).expect_err("cannot write");
    assert!(matches!(err, ConvertError::Write { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}
