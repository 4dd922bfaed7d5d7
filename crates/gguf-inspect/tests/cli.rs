//! Runs the `gguf-inspect` binary on files written with `GgufWriter`, a malformed file, and the
//! real model when it is in the cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gguf::{GgmlType, GgufWriter};
use serde_json::Value as Json;

fn inspect(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gguf-inspect"))
        .args(args)
        .arg(file)
        .output()
        .expect("run gguf-inspect")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A small model-like file: architecture keys, a vocabulary, and three tensors.
fn small_file(dir: &Path) -> PathBuf {
    let mut w = GgufWriter::new(Vec::new());
    w.add_str("general.architecture", "toy").unwrap();
    w.add_u32("toy.context_length", 128).unwrap();
    w.add_u32("toy.embedding_length", 4).unwrap();
    w.add_f32("toy.eps", 1e-6).unwrap();
    let tokens: Vec<String> = (0..20).map(|i| format!("tok{i}")).collect();
    w.add_str_array("tokenizer.ggml.tokens", tokens).unwrap();
    w.add_tensor("embd", GgmlType::F32, &[4, 20]).unwrap();
    w.add_tensor("weird", GgmlType::F32, &[4]).unwrap();
    w.add_tensor("q", GgmlType::Q8_0, &[32]).unwrap();
    let embd: Vec<f32> = (0..80).map(|i| i as f32).collect();
    w.write_tensor_f32("embd", &embd).unwrap();
    w.write_tensor_f32("weird", &[1.0, f32::NAN, f32::INFINITY, 3.0])
        .unwrap();
    let src: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
    w.write_tensor_q8_0("q", &gguf::quantize_q8_0(&src).unwrap())
        .unwrap();
    let path = dir.join("toy.gguf");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    path
}

#[test]
fn text_output_shows_summary_metadata_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_file(dir.path());
    let o = inspect(&[], &path);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for want in [
        "architecture:  toy",
        "parameters:    116 (116)",
        "tensors:       3 (F32: 2, Q8_0: 1)",
        "context:       128",
        "embedding:     4",
        "vocabulary:    20",
        "metadata (5 keys)",
        "[string; 20]",
        "\"tok7\", ... 12 more]",
        "tensors (3):",
        "embd",
        "[4, 20]",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}

#[test]
fn json_output_is_the_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_file(dir.path());
    let o = inspect(&["--json"], &path);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Json = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["summary"]["architecture"], "toy");
    assert_eq!(doc["summary"]["parameters"], 80 + 4 + 32);
    assert_eq!(doc["summary"]["vocab_size"], 20);
    let md = doc["metadata"].as_array().unwrap();
    assert_eq!(md.len(), 5);
    assert_eq!(md[1]["key"], "toy.context_length");
    assert_eq!(md[1]["type"], "u32");
    assert_eq!(md[1]["value"], 128);
    assert_eq!(md[4]["element_type"], "string");
    assert_eq!(
        md[4]["value"].as_array().unwrap().len(),
        20,
        "arrays are not abbreviated"
    );
    assert_eq!(md[4]["value"][19], "tok19");
    let t = doc["tensors"].as_array().unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t[0]["name"], "embd");
    assert_eq!(t[0]["ne"], serde_json::json!([4, 20]));
    assert_eq!(t[0]["n_bytes"], 320);
    assert_eq!(t[2]["type"], "Q8_0");
    assert_eq!(t[2]["offset"], 352);
}

#[test]
fn tensor_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_file(dir.path());
    let o = inspect(
        &[
            "--json", "--tensor", "embd", "--tensor", "weird", "--tensor", "q",
        ],
        &path,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Json = serde_json::from_str(&stdout(&o)).unwrap();
    let st = doc["tensor_stats"].as_array().unwrap();
    // 0..80: mean 39.5, population std sqrt((80^2 - 1) / 12)
    assert_eq!(st[0]["count"], 80);
    assert_eq!(st[0]["min"], 0.0);
    assert_eq!(st[0]["max"], 79.0);
    assert_eq!(st[0]["mean"], 39.5);
    let std = st[0]["std"].as_f64().unwrap();
    assert!(
        (std - ((6400.0f64 - 1.0) / 12.0).sqrt()).abs() < 1e-9,
        "{std}"
    );
    // NaN and inf are counted and left out of the moments.
    assert_eq!(st[1]["count"], 4);
    assert_eq!(st[1]["nan"], 1);
    assert_eq!(st[1]["inf"], 1);
    assert_eq!(st[1]["mean"], 2.0);
    // Q8_0 of -16..16 is exact (d = 16/127 rounds, but the extremes map to +-127).
    assert_eq!(st[2]["count"], 32);
    assert!((st[2]["min"].as_f64().unwrap() + 16.0).abs() < 0.01);

    let o = inspect(&["--tensor", "weird"], &path);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("tensor weird (F32, shape [4]):"), "{s}");
    assert!(s.contains("  nan:   1"), "{s}");
}

#[test]
fn malformed_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(small_file(dir.path())).unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, &good[..good.len() - 40]).unwrap();
    let o = inspect(&[], &path);
    assert!(!o.status.success());
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    let prefix = format!("gguf-inspect: error: {}: ", path.display());
    assert!(e.starts_with(&prefix), "{e}");
    assert!(e.contains("tensor \"q\""), "{e}");
    assert!(stdout(&o).is_empty());

    std::fs::write(&path, b"GGML\x03\0\0\0").unwrap();
    let e = stderr(&inspect(&["--json"], &path));
    assert!(
        e.starts_with(&prefix) && e.contains("not a GGUF file"),
        "{e}"
    );
}

#[test]
fn missing_file_and_missing_tensor_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = inspect(&[], &dir.path().join("none.gguf"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
    let path = small_file(dir.path());
    let o = inspect(&["--tensor", "nope"], &path);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tensor \"nope\" not found"),
        "{}",
        stderr(&o)
    );
}

#[cfg(unix)]
#[test]
fn fifo_directory_and_device_are_one_line_errors_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.gguf");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Nobody writes to the FIFO: opening it for reading would wait forever.
    for (path, kind) in [
        (fifo.as_path(), "a FIFO (named pipe)"),
        (dir.path(), "a directory"),
        (Path::new("/dev/urandom"), "a character device"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let o = inspect(&[], path);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains(&format!("{kind}, not a GGUF file")),
            "{}: {e}",
            path.display()
        );
        assert_eq!(e.matches(kind).count(), 1, "{e}");
    }
}

/// `$GGUFEMBED_CACHE`, else `$XDG_CACHE_HOME/ggufembed`, else `$HOME/.cache/ggufembed`.
fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("GGUFEMBED_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("ggufembed")))
        .or_else(|| var("HOME").map(|p| p.join(".cache/ggufembed")))
}

#[test]
fn real_model_when_present() {
    let Some(path) = cache_dir().map(|d| d.join("embeddinggemma-300m-q8_0.gguf")) else {
        return;
    };
    if !path.exists() {
        eprintln!(
            "{} not present; the gguf crate's real-model test requires it",
            path.display()
        );
        return;
    }
    let o = inspect(&["--json", "--tensor", "output_norm.weight"], &path);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Json = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["summary"]["architecture"], "gemma-embedding");
    assert_eq!(doc["summary"]["context_length"], 2048);
    assert_eq!(doc["summary"]["embedding_length"], 768);
    assert_eq!(doc["summary"]["vocab_size"], 262144);
    assert_eq!(doc["tensors"].as_array().unwrap().len(), 316);
    assert_eq!(doc["tensor_stats"][0]["count"], 768);
    assert_eq!(doc["tensor_stats"][0]["nan"], 0);
}
