//! The `gemma-embed` binary end to end: output formats and order, error paths, tokenizer ids
//! against the golden file, and agreement with the library.
//!
//! Tests marked "real model" use the Q8_0 model from the cache directory (or `GGUFEMBED_MODEL`);
//! run `cargo xtask fetch-model` first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gemma-embed");

fn model_path() -> PathBuf {
    let path = ggufembed::default_model_path();
    assert!(
        path.is_file(),
        "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
        path.display()
    );
    path
}

/// Runs the binary with `args` and `stdin`; the model is passed with `--model` by the caller.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start gemma-embed");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs `gemma-embed SUBCOMMAND --model M --threads 2 ARGS...`.
fn run_model(sub: &str, args: &[&str], stdin: &[u8]) -> Output {
    let model = model_path();
    let mut all = vec![sub, "--model", model.to_str().unwrap(), "--threads", "2"];
    all.extend_from_slice(args);
    run(&all, stdin)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "gemma-embed failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "gemma-embed succeeded but should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

fn testdata(rel: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/").to_owned() + rel;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- no model needed ----

#[test]
fn unknown_flag_fails() {
    let out = run(&["embed", "--no-such-flag", "x"], b"");
    let err = failed(&out);
    assert!(err.contains("--no-such-flag"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_utf8_names_the_line_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.jsonl");
    let out = run(
        &[
            "embed",
            "--model",
            "/unused.gguf",
            "--output",
            target.to_str().unwrap(),
        ],
        b"fine\nalso fine\nbroken \xc3\x28 here\n",
    );
    let err = failed(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("UTF-8"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );
}

#[test]
fn missing_model_says_how_to_get_it() {
    let out = run(&["embed", "--model", "/no/such/model.gguf", "hello"], b"");
    let err = failed(&out);
    assert!(err.contains("cargo xtask fetch-model"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_model_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.gguf");
    std::fs::write(&bogus, b"this is not a GGUF file").unwrap();
    let out = run(&["info", "--model", bogus.to_str().unwrap()], b"");
    let err = failed(&out);
    assert!(err.contains("bogus.gguf"), "{err}");
}

#[test]
fn jsonl_input_must_be_strings() {
    let out = run(
        &[
            "tokenize",
            "--model",
            "/unused.gguf",
            "--input-format",
            "jsonl",
        ],
        b"\"ok\"\n[1, 2]\n",
    );
    let err = failed(&out);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn convert_rejects_unknown_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "convert",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("x.gguf").to_str().unwrap(),
            "--type",
            "q4_k",
        ],
        b"",
    );
    let err = failed(&out);
    assert!(err.contains("q4_k"), "{err}");
    assert!(files_in(dir.path()).is_empty());
}

// ---- real model ----

#[test]
fn jsonl_order_fields_and_count() {
    let input = "first line\n\nthird line, after an empty one\n<start_of_turn>user\n";
    let out = ok(&run_model(
        "embed",
        &["--format", "jsonl"],
        input.as_bytes(),
    ));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"].as_u64(), Some(i as u64));
        let e = floats(&row["embedding"]);
        assert_eq!(e.len(), 768);
        assert!((norm(&e) - 1.0).abs() < 1e-5);
    }
    // The empty line is embedded as the empty text, not skipped.
    assert_ne!(rows[1]["embedding"], rows[0]["embedding"]);
}

#[test]
fn no_subcommand_embeds_stdin_lines() {
    let model = model_path();
    let out = Command::new(BIN)
        .env(ggufembed::MODEL_ENV, &model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"one\ntwo\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let rows = jsonl(&ok(&out));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["index"], 1);

    // The embed options work without the subcommand too.
    let out = run(
        &[
            "--model",
            model.to_str().unwrap(),
            "--dim",
            "128",
            "one",
            "two",
            "three",
        ],
        b"",
    );
    let rows = jsonl(&ok(&out));
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| floats(&r["embedding"]).len() == 128));
}

#[test]
fn json_csv_and_npy_shapes() {
    let texts = ["alpha", "beta", "gamma"];
    let json: Value = serde_json::from_str(&ok(&run_model(
        "embed",
        &[
            "--format", "json", "--dim", "512", texts[0], texts[1], texts[2],
        ],
        b"",
    )))
    .unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| floats(&r["embedding"]).len() == 512));

    let csv = ok(&run_model(
        "embed",
        &[
            "--format", "csv", "--dim", "256", texts[0], texts[1], texts[2],
        ],
        b"",
    ));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let values: Vec<f32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(values.len(), 256);
        assert!((norm(&values) - 1.0).abs() < 1e-5);
    }

    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("e.npy");
    ok(&run_model(
        "embed",
        &[
            "--format",
            "npy",
            "--dim",
            "128",
            "--output",
            npy.to_str().unwrap(),
            texts[0],
            texts[1],
            texts[2],
        ],
        b"",
    ));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(header.contains("'shape': (3, 128)"), "{header}");
    let data = &bytes[10 + header_len..];
    assert_eq!(data.len(), 3 * 128 * 4);
    let first: Vec<f32> = data[..128 * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let csv_first: Vec<f32> = {
        let model =
            ggufembed::Model::open(model_path(), ggufembed::Options::default().threads(2)).unwrap();
        model
            .embed_one_with("alpha", ggufembed::EmbedOptions::default().dim(128))
            .unwrap()
    };
    let diff = first
        .iter()
        .zip(&csv_first)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-6, "npy row differs from the library by {diff}");
    assert_eq!(files_in(dir.path()), vec!["e.npy"]);
}

#[test]
fn unsupported_dim_fails_without_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.jsonl");
    let out = run_model(
        "embed",
        &[
            "--dim",
            "300",
            "--output",
            target.to_str().unwrap(),
            "hello",
        ],
        b"",
    );
    let err = failed(&out);
    assert!(err.contains("300") && err.contains("256"), "{err}");
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );

    // Too long with --no-truncate: also nothing written, and the message names the line.
    let long = "word ".repeat(3000) + "\n";
    let input = format!("short\n{long}");
    let out = run_model(
        "embed",
        &["--no-truncate", "--output", target.to_str().unwrap()],
        input.as_bytes(),
    );
    let err = failed(&out);
    assert!(err.contains("line 2"), "{err}");
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );
}

#[test]
fn unknown_prompt_is_an_error() {
    let err = failed(&run_model(
        "embed",
        &["--prompt", "NoSuchTask", "hello"],
        b"",
    ));
    assert!(
        err.contains("NoSuchTask") && err.contains("Clustering"),
        "{err}"
    );
}

#[test]
fn tokenize_matches_golden_ids() {
    let rows: Vec<Value> = jsonl(&testdata("golden/st-f32/tokens.jsonl"));
    // A few short lines and one document (which is longer than the context: tokenize does not cut).
    let mut picked: Vec<&Value> = rows.iter().take(20).collect();
    picked.extend(
        rows.iter()
            .filter(|r| r["ids"].as_array().unwrap().len() > 2048)
            .take(1),
    );
    let input: String = picked
        .iter()
        .map(|r| serde_json::to_string(&r["text"]).unwrap() + "\n")
        .collect();
    let out = ok(&run_model(
        "tokenize",
        &["--input-format", "jsonl"],
        input.as_bytes(),
    ));
    let got = jsonl(&out);
    assert_eq!(got.len(), picked.len());
    for (i, (g, want)) in got.iter().zip(&picked).enumerate() {
        assert_eq!(g["index"].as_u64(), Some(i as u64));
        assert_eq!(g["ids"], want["ids"], "text {:?}", want["text"]);
        assert_eq!(
            g["tokens"].as_array().unwrap().len(),
            want["ids"].as_array().unwrap().len()
        );
    }
    assert_eq!(got[0]["tokens"][0], "<bos>");
}

#[test]
fn embed_output_matches_the_library() {
    let texts: Vec<String> = testdata("corpus/lines.jsonl")
        .lines()
        .skip(40)
        .take(6)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: String = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap() + "\n")
        .collect();
    let out = ok(&run_model(
        "embed",
        &[
            "--input",
            "-",
            "--input-format",
            "jsonl",
            "--prompt",
            "query",
            "--dim",
            "256",
            "--batch-size",
            "4",
        ],
        input.as_bytes(),
    ));
    let rows = jsonl(&out);
    let model =
        ggufembed::Model::open(model_path(), ggufembed::Options::default().threads(2)).unwrap();
    let want = model
        .embed_with(
            &texts,
            ggufembed::EmbedOptions::default()
                .prompt(ggufembed::Prompt::Query)
                .dim(256),
        )
        .unwrap();
    assert_eq!(rows.len(), want.len());
    let mut worst = 0f32;
    for (row, w) in rows.iter().zip(&want) {
        let got = floats(&row["embedding"]);
        assert_eq!(got.len(), 256);
        worst = got
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    eprintln!("CLI vs library: max abs difference {worst:e}");
    assert!(
        worst <= 1e-6,
        "CLI output differs from the library by {worst}"
    );

    // --no-normalize gives the raw vector: normalising it gives the normal output.
    let raw = jsonl(&ok(&run_model(
        "embed",
        &["--no-normalize", &texts[0]],
        b"",
    )));
    let mut raw = floats(&raw[0]["embedding"]);
    let normal = model.embed_one(&texts[0]).unwrap();
    ggufembed::l2_normalize(&mut raw);
    let diff = raw
        .iter()
        .zip(&normal)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-6, "{diff}");
}

#[test]
fn stats_go_to_stderr_only() {
    let out = run_model("embed", &["--stats", "hello world"], b"");
    let stdout = ok(&out);
    assert_eq!(jsonl(&stdout).len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["load", "texts", "tokens/s", "peak memory", "backend"] {
        assert!(stderr.contains(key), "--stats lacks {key}: {stderr}");
    }
    assert!(stderr.contains("tokens      4"), "{stderr}");
}

#[test]
fn bench_prints_a_json_line_last() {
    let out = ok(&run_model(
        "bench",
        &["--tokens", "16", "--iters", "2"],
        b"",
    ));
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["tokens"], 16);
    assert_eq!(last["threads"], 2);
    assert!(last["ms_per_text"].as_f64().unwrap() > 0.0);
    assert!(last["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(last["backend"].is_string());
}

#[test]
fn info_shows_dimensions_and_backend() {
    let out = ok(&run_model("info", &["--json"], b""));
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["output_dim"], 768);
    assert_eq!(info["dimensions"], serde_json::json!([768, 512, 256, 128]));
    assert_eq!(info["context_length"], 2048);
    assert_eq!(info["backend"].as_str(), Some(ggufembed::backend()));
}
