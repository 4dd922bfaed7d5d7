//! Helpers shared by the integration tests: running the real `gemma-embed` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gemma-embed");

/// The real Q8_0 model (from the cache directory or `GGUFEMBED_MODEL`).
pub fn model_path() -> PathBuf {
    let path = ggufembed::default_model_path();
    assert!(
        path.is_file(),
        "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
        path.display()
    );
    path
}

/// The real model as a string, for command lines.
pub fn model() -> String {
    model_path().to_str().expect("UTF-8 model path").to_owned()
}

/// Runs the binary with `args` in `dir` (the current directory if `None`), feeding `stdin`.
pub fn run_in(dir: Option<&Path>, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("cannot start gemma-embed");
    let mut pipe = child.stdin.take().unwrap();
    // The binary may exit without reading (an early error): a closed pipe is fine here.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_in(None, args, stdin)
}

/// Standard output of a run that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "gemma-embed failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Standard error of a run that must have failed.
pub fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "gemma-embed succeeded but should have failed; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of JSON Lines output, parsed.
pub fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.80}")))
        .collect()
}

/// The names in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Parses CSV output: one row of floats per line.
pub fn csv_rows(text: &str) -> Vec<Vec<f32>> {
    text.lines()
        .map(|l| {
            l.split(',')
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|e| panic!("{e}: {v:?} in {l:.80}"))
                })
                .collect()
        })
        .collect()
}
