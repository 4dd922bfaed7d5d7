//! Parses the project's converted EmbeddingGemma GGUF files (whichever of q8_0/f32/f16/bf16 are in
//! the model cache; q8_0 is required) and checks every key and tensor against the reference
//! manifests in `testdata/golden/gguf/`.

use std::path::PathBuf;

use gguf::{Gguf, Value, ValueType};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// `$GGUFEMBED_CACHE`, else `$XDG_CACHE_HOME/ggufembed`, else `$HOME/.cache/ggufembed`
/// (the rule in DEVELOPERS.md; this crate cannot depend on the facade that implements it).
fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("GGUFEMBED_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("ggufembed")))
        .or_else(|| var("HOME").map(|p| p.join(".cache/ggufembed")))
        .unwrap_or_else(|| PathBuf::from(".cache/ggufembed"))
}

fn manifest(kind: &str) -> Json {
    let path = format!(
        "{}/../../testdata/golden/gguf/embeddinggemma-300m-{kind}.manifest.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn elem_type(name: &str) -> ValueType {
    match name {
        "UINT8" => ValueType::U8,
        "INT8" => ValueType::I8,
        "UINT16" => ValueType::U16,
        "INT16" => ValueType::I16,
        "UINT32" => ValueType::U32,
        "INT32" => ValueType::I32,
        "FLOAT32" => ValueType::F32,
        "BOOL" => ValueType::Bool,
        "STRING" => ValueType::Str,
        "UINT64" => ValueType::U64,
        "INT64" => ValueType::I64,
        "FLOAT64" => ValueType::F64,
        other => panic!("manifest array type {other}"),
    }
}

fn same_scalar(v: &Value<'_>, want: &Json) -> bool {
    match want {
        Json::Bool(b) => *v == Value::Bool(*b),
        Json::String(s) => v.as_str() == Some(s.as_str()),
        Json::Number(n) if n.is_u64() => v.as_u64() == n.as_u64(),
        Json::Number(n) if n.is_i64() => match *v {
            Value::I8(x) => Some(i64::from(x)) == n.as_i64(),
            Value::I16(x) => Some(i64::from(x)) == n.as_i64(),
            Value::I32(x) => Some(i64::from(x)) == n.as_i64(),
            Value::I64(x) => Some(x) == n.as_i64(),
            _ => false,
        },
        // f32 values widen to f64 exactly, and the manifest printed them exactly.
        Json::Number(n) => matches!(v, Value::F32(_) | Value::F64(_)) && v.as_f64() == n.as_f64(),
        _ => false,
    }
}

fn check(kind: &str, path: &PathBuf) {
    let m = manifest(kind);
    let f = Gguf::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture().unwrap(), "gemma-embedding");

    let want_kv = m["metadata"].as_object().unwrap();
    assert_eq!(f.metadata_len(), 40, "{kind}: key count");
    assert_eq!(want_kv.len(), 40);
    for (key, want) in want_kv {
        let v = f
            .get(key)
            .unwrap_or_else(|| panic!("{kind}: missing key {key}"));
        if key == "general.name" {
            // Derived from the checkpoint's directory name: the one key allowed to differ.
            assert!(v.as_str().is_some(), "{kind}: general.name is {v:?}");
            continue;
        }
        match want {
            Json::Object(a) => {
                let arr = v
                    .as_array()
                    .unwrap_or_else(|| panic!("{kind}: {key} is {v:?}, want array"));
                assert_eq!(
                    arr.elem_type(),
                    elem_type(a["array_of"].as_str().unwrap()),
                    "{kind}: {key}"
                );
                assert_eq!(
                    arr.len() as u64,
                    a["len"].as_u64().unwrap(),
                    "{kind}: {key} length"
                );
                for (i, h) in a["head"].as_array().unwrap().iter().enumerate() {
                    let got = arr.get(i).unwrap();
                    assert!(
                        same_scalar(&got, h),
                        "{kind}: {key}[{i}] = {got:?}, want {h}"
                    );
                }
                let mut sha = Sha256::new();
                sha.update(arr.elem_type().id().to_le_bytes());
                sha.update((arr.len() as u64).to_le_bytes());
                sha.update(arr.raw_bytes());
                let hex: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(
                    hex,
                    a["sha256_of_stored_bytes"].as_str().unwrap(),
                    "{kind}: {key} bytes"
                );
            }
            _ => assert!(same_scalar(&v, want), "{kind}: {key} = {v:?}, want {want}"),
        }
    }

    let want_t = m["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), 316, "{kind}: tensor count");
    assert_eq!(want_t.len(), 316);
    for (t, w) in f.tensors().iter().zip(want_t) {
        let name = w["name"].as_str().unwrap();
        assert_eq!(t.name, name, "{kind}: tensor order");
        assert_eq!(
            t.ggml_type.to_string(),
            w["type"].as_str().unwrap(),
            "{kind}: {name} type"
        );
        let ne: Vec<u64> = w["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.ne, ne, "{kind}: {name} ne");
        assert_eq!(
            t.size,
            w["n_bytes"].as_u64().unwrap(),
            "{kind}: {name} n_bytes"
        );
        assert_eq!(f.tensor(name), Some(t));
        // The mmap is page-aligned and offsets are 32-aligned: typed views must work.
        match t.ggml_type {
            gguf::GgmlType::F32 => assert!(f.tensor_f32(t).is_ok()),
            gguf::GgmlType::F16 => assert!(f.tensor_f16(t).is_ok()),
            gguf::GgmlType::BF16 => assert!(f.tensor_bf16(t).is_ok()),
            gguf::GgmlType::Q8_0 => assert!(f.tensor_q8_0(t).is_ok()),
            other => panic!("{kind}: unexpected type {other}"),
        }
    }
    // Dequantise a small tensor of each kind and check it is finite.
    let norm = f.require_tensor("output_norm.weight").unwrap();
    let v = f.dequantize(norm).unwrap();
    assert_eq!(v.len(), 768);
    assert!(v.iter().all(|x| x.is_finite()));
    let dense = f.require_tensor("dense_2.weight").unwrap();
    let v = f.dequantize(dense).unwrap();
    assert_eq!(v.len() as u64, dense.n_elements());
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
#[cfg_attr(miri, ignore)] // maps real files
fn real_models_match_reference_manifests() {
    let dir = cache_dir();
    let mut checked = Vec::new();
    for kind in ["q8_0", "f32", "f16", "bf16"] {
        let path = dir.join(format!("embeddinggemma-300m-{kind}.gguf"));
        if !path.exists() {
            assert_ne!(
                kind,
                "q8_0",
                "{} is missing: run `cargo xtask fetch-model`",
                path.display()
            );
            continue;
        }
        check(kind, &path);
        checked.push(kind);
    }
    eprintln!("checked: {checked:?}");
}
