//! The converter's output against the reference GGUF manifests made with llama.cpp's
//! `convert_hf_to_gguf.py --sentence-transformers-dense-modules`.
//!
//! * `cached_*`: the GGUF files `cargo xtask fetch-model` left in the model cache directory must
//!   match their manifest: every metadata key in order, with scalars equal and arrays' stored bytes
//!   hashing the same; every tensor's name, type, shape, size and data hash. Only `general.name`
//!   (derived from the checkpoint directory's name) may differ. Q8_0 and F32 are required; F16
//!   and BF16 are checked when present.
//! * `fresh_q8_0_conversion`: converts the cached checkpoint again with the current code, into a
//!   temporary directory, and checks that file the same way (so a stale cache cannot hide a bug).
//!
//! The GGUF files are parsed here by a small independent reader, not by the `gguf` crate, so the
//! check does not share code with the writer it checks.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use gemma_runtime::testing::model_cache_dir as cache_dir;

/// A JSON object with its keys in document order (`serde_json::Map` sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The manifest's parts: metadata in file order, and the tensor list.
#[derive(serde::Deserialize)]
struct Manifest {
    metadata: Ordered,
    tensors: Vec<Value>,
}

fn manifest(ty: &str) -> Manifest {
    let path = format!(
        "{}/../../testdata/golden/gguf/embeddinggemma-300m-{ty}.manifest.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One metadata entry as read from the file.
#[derive(Debug)]
enum Kv {
    Int(i128),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array {
        elem: &'static str,
        len: u64,
        sha256: String,
    },
}

/// One tensor as read from the file.
#[derive(Debug)]
struct Tensor {
    name: String,
    ty: &'static str,
    ne: Vec<u64>,
    n_bytes: u64,
    sha256: String,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn str(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).expect("UTF-8 string")
    }
    fn skip_value(&mut self, ty: u32) {
        match ty {
            0 | 1 | 7 => {
                self.take(1);
            }
            2 | 3 => {
                self.take(2);
            }
            4..=6 => {
                self.take(4);
            }
            10..=12 => {
                self.take(8);
            }
            8 => {
                self.str();
            }
            9 => {
                let elem = self.u32();
                let n = self.u64();
                for _ in 0..n {
                    self.skip_value(elem);
                }
            }
            other => panic!("unknown value type {other}"),
        }
    }
}

fn elem_name(ty: u32) -> &'static str {
    match ty {
        0 => "UINT8",
        1 => "INT8",
        2 => "UINT16",
        3 => "INT16",
        4 => "UINT32",
        5 => "INT32",
        6 => "FLOAT32",
        7 => "BOOL",
        8 => "STRING",
        9 => "ARRAY",
        10 => "UINT64",
        11 => "INT64",
        12 => "FLOAT64",
        _ => "?",
    }
}

fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0 => "F32",
        1 => "F16",
        8 => "Q8_0",
        30 => "BF16",
        _ => "?",
    }
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Parses a GGUF v3 file written with the default alignment (32).
fn read_gguf(path: &Path) -> (Vec<(String, Kv)>, Vec<Tensor>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Cursor { b: &bytes, pos: 0 };
    assert_eq!(c.take(4), b"GGUF", "{}: magic", path.display());
    assert_eq!(c.u32(), 3, "{}: version", path.display());
    let n_tensors = c.u64();
    let n_kv = c.u64();
    let mut kvs = Vec::new();
    for _ in 0..n_kv {
        let key = c.str();
        let ty = c.u32();
        let v = match ty {
            0 => Kv::Int(c.take(1)[0].into()),
            1 => Kv::Int((c.take(1)[0] as i8).into()),
            2 => Kv::Int(u16::from_le_bytes(c.take(2).try_into().unwrap()).into()),
            3 => Kv::Int(i16::from_le_bytes(c.take(2).try_into().unwrap()).into()),
            4 => Kv::Int(c.u32().into()),
            5 => Kv::Int((c.u32() as i32).into()),
            6 => Kv::F32(f32::from_bits(c.u32())),
            7 => Kv::Bool(c.take(1)[0] != 0),
            8 => Kv::Str(c.str()),
            9 => {
                let start = c.pos;
                let elem = c.u32();
                let len = c.u64();
                for _ in 0..len {
                    c.skip_value(elem);
                }
                Kv::Array {
                    elem: elem_name(elem),
                    len,
                    sha256: sha256_hex(&bytes[start..c.pos]),
                }
            }
            10 => Kv::Int(c.u64().into()),
            11 => Kv::Int((c.u64() as i64).into()),
            12 => Kv::F64(f64::from_bits(c.u64())),
            other => panic!("{}: key {key}: value type {other}", path.display()),
        };
        kvs.push((key, v));
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.str();
        let n_dims = c.u32();
        let ne: Vec<u64> = (0..n_dims).map(|_| c.u64()).collect();
        let ty = c.u32();
        let offset = c.u64();
        infos.push((name, ne, ty, offset));
    }
    let data_start = c.pos.next_multiple_of(32);
    let mut tensors = Vec::new();
    for (i, (name, ne, ty, offset)) in infos.iter().enumerate() {
        let start = data_start + *offset as usize;
        // the size is up to the next tensor (or the end), minus the alignment padding
        let n: u64 = ne.iter().product();
        let n_bytes = match *ty {
            0 => n * 4,
            1 | 30 => n * 2,
            8 => n / 32 * 34,
            other => panic!("{name}: unexpected ggml type {other}"),
        };
        let end = start + n_bytes as usize;
        let limit = infos
            .get(i + 1)
            .map_or(bytes.len(), |next| data_start + next.3 as usize);
        assert!(end <= limit, "{name}: data overlaps the next tensor");
        tensors.push(Tensor {
            name: name.clone(),
            ty: ggml_type_name(*ty),
            ne: ne.clone(),
            n_bytes,
            sha256: sha256_hex(&bytes[start..end]),
        });
    }
    (kvs, tensors)
}

/// Compares a GGUF file with the manifest of `ty`; panics with every difference found.
fn check_against_manifest(path: &Path, ty: &str) {
    let m = manifest(ty);
    let (kvs, tensors) = read_gguf(path);
    let mut errors: Vec<String> = Vec::new();

    let expected_kv = &m.metadata.0;
    let got_keys: Vec<&str> = kvs.iter().map(|(k, _)| k.as_str()).collect();
    let want_keys: Vec<&str> = expected_kv.iter().map(|(k, _)| k.as_str()).collect();
    if got_keys != want_keys {
        errors.push(format!(
            "metadata keys differ:\n  got  {got_keys:?}\n  want {want_keys:?}"
        ));
    }
    let (mut arrays_ok, mut arrays) = (0, 0);
    for (key, got) in &kvs {
        if key == "general.name" {
            assert!(matches!(got, Kv::Str(_)), "general.name must be a string");
            continue;
        }
        let Some((_, want)) = expected_kv.iter().find(|(k, _)| k == key) else {
            continue; // reported with the key list
        };
        let same = match (got, want) {
            (Kv::Array { elem, len, sha256 }, Value::Object(o)) => {
                arrays += 1;
                let ok = o["array_of"] == *elem
                    && o["len"].as_u64() == Some(*len)
                    && o["sha256_of_stored_bytes"] == sha256.as_str();
                arrays_ok += usize::from(ok);
                ok
            }
            (Kv::Int(v), Value::Number(n)) => n.as_i64().map(i128::from) == Some(*v),
            // the manifest prints the float32 widened to float64
            (Kv::F32(v), Value::Number(n)) => n.as_f64() == Some(f64::from(*v)),
            (Kv::F64(v), Value::Number(n)) => n.as_f64() == Some(*v),
            (Kv::Bool(v), Value::Bool(b)) => v == b,
            (Kv::Str(v), Value::String(s)) => v == s,
            _ => false,
        };
        if !same {
            errors.push(format!("metadata {key}: got {got:?}, want {want}"));
        }
    }

    let want_tensors = &m.tensors;
    if tensors.len() != want_tensors.len() {
        errors.push(format!(
            "{} tensors, want {}",
            tensors.len(),
            want_tensors.len()
        ));
    }
    let mut tensors_ok = 0;
    for (got, want) in tensors.iter().zip(want_tensors) {
        let want_ne: Vec<u64> = want["ne"]
            .as_array()
            .expect("ne")
            .iter()
            .map(|v| v.as_u64().expect("ne entry"))
            .collect();
        if got.name != want["name"]
            || got.ty != want["type"]
            || got.ne != want_ne
            || Some(got.n_bytes) != want["n_bytes"].as_u64()
            || got.sha256 != want["sha256"]
        {
            errors.push(format!("tensor {got:?} differs from {want}"));
        } else {
            tensors_ok += 1;
        }
    }
    eprintln!(
        "{}: {} keys, {arrays_ok}/{arrays} arrays and {tensors_ok}/{} tensors match the {ty} manifest",
        path.display(),
        kvs.len(),
        want_tensors.len()
    );
    if !errors.is_empty() {
        let shown = errors.len().min(20);
        panic!(
            "{} does not match the {ty} manifest ({} differences, first {shown}):\n{}",
            path.display(),
            errors.len(),
            errors[..shown].join("\n")
        );
    }
}

fn cached_gguf(ty: &str) -> PathBuf {
    cache_dir().join(format!("embeddinggemma-300m-{ty}.gguf"))
}

fn require_cached(ty: &str) -> PathBuf {
    let path = cached_gguf(ty);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask fetch-model --type {ty}`",
        path.display()
    );
    path
}

#[test]
fn cached_q8_0_matches_manifest() {
    check_against_manifest(&require_cached("q8_0"), "q8_0");
}

#[test]
fn cached_f32_matches_manifest() {
    check_against_manifest(&require_cached("f32"), "f32");
}

#[test]
fn cached_f16_and_bf16_match_manifests_when_present() {
    for ty in ["f16", "bf16"] {
        let path = cached_gguf(ty);
        if path.is_file() {
            check_against_manifest(&path, ty);
        } else {
            eprintln!(
                "{} not present (`cargo xtask fetch-model --type {ty}` makes it); skipped",
                path.display()
            );
        }
    }
}

#[test]
fn fresh_q8_0_conversion_matches_manifest() {
    let checkpoint = cache_dir().join("embeddinggemma-300m");
    assert!(
        checkpoint.join("model.safetensors").is_file(),
        "{} is missing: run `cargo xtask fetch-model`",
        checkpoint.display()
    );
    let tmp = tempfile::tempdir().expect("temporary directory");
    let out = tmp.path().join("embeddinggemma-300m-q8_0.gguf");
    let mut last = None;
    let summary = gemma_runtime::convert::convert(
        &checkpoint,
        &out,
        gemma_runtime::convert::OutType::Q8_0,
        &mut |p| last = Some(p.clone()),
    )
    .expect("conversion succeeds");
    assert_eq!(summary.n_tensors, 316);
    assert_eq!(summary.n_metadata, 40);
    let last = last.expect("progress was reported");
    assert_eq!((last.index + 1, last.count), (316, 316));
    assert_eq!(last.bytes_done, last.bytes_total);
    check_against_manifest(&out, "q8_0");
    // the checkpoint directory is named embeddinggemma-300m
    let (kvs, _) = read_gguf(&out);
    let name = kvs
        .iter()
        .find(|(k, _)| k == "general.name")
        .map(|(_, v)| v);
    assert!(
        matches!(name, Some(Kv::Str(s)) if s == "Embeddinggemma 300m"),
        "general.name is {name:?}"
    );
}
