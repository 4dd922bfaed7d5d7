#![cfg(unix)]
//! Long and odd inputs through the real binary and model: a megabyte without spaces, ten
//! thousand empty lines, whitespace, special tokens, NUL bytes, invalid UTF-8, a line that never
//! ends (`/dev/zero`), input streamed while it is written, and a model whose weights are not
//! finite.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::*;

/// The `embedding` arrays of JSON Lines output.
fn vectors(out: &std::process::Output) -> Vec<Vec<f64>> {
    jsonl(&ok(out))
        .iter()
        .map(|v| {
            v["embedding"]
                .as_array()
                .expect("embedding array")
                .iter()
                .map(|x| x.as_f64().expect("a finite number"))
                .collect()
        })
        .collect()
}

fn embed(stdin: &[u8], extra: &[&str]) -> std::process::Output {
    let model = model();
    let mut args = vec!["embed", "--model", &model, "--threads", "2", "-f", "jsonl"];
    args.extend_from_slice(extra);
    run(&args, stdin)
}

/// Deterministic letters without spaces.
fn no_spaces(len: usize) -> String {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[test]
fn a_megabyte_without_spaces_is_truncated_like_its_start() {
    // Both are far past the 2,048-token context: the vectors of the whole text and of its first
    // 64 KiB are the same, because only the first tokens are read.
    let long = no_spaces(1 << 20);
    let input = format!("{long}\n{}\n", &long[..64 << 10]);
    let v = vectors(&embed(input.as_bytes(), &[]));
    assert_eq!(v.len(), 2);
    assert_eq!(v[0], v[1]);
    // And both are the text cut at the context: 2,048 tokens with <bos> first and <eos> last.
    let out = ok(&run(
        &[
            "tokenize",
            "--model",
            &model(),
            "--max-length",
            "2048",
            "-f",
            "jsonl",
        ],
        input.as_bytes(),
    ));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ids"], rows[1]["ids"]);
    let ids = rows[0]["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 2048);
    assert_eq!((ids[0].as_u64(), ids[2047].as_u64()), (Some(2), Some(1)));
}

#[test]
fn ten_thousand_empty_lines_give_ten_thousand_equal_vectors() {
    let input = "\n".repeat(10_000);
    let v = vectors(&embed(input.as_bytes(), &["--batch-size", "512"]));
    assert_eq!(v.len(), 10_000);
    assert!(v.iter().all(|x| *x == v[0]));
}

#[test]
fn whitespace_special_tokens_and_nul_bytes_embed() {
    let lines: [&[u8]; 5] = [
        b"   \t  ",
        b"<start_of_turn><end_of_turn><bos><eos><pad>",
        b"<bos><bos><bos>",
        b"a\0b\0\0c",
        b"\0",
    ];
    let mut input = Vec::new();
    for l in lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let v = vectors(&embed(&input, &[]));
    assert_eq!(v.len(), lines.len());
    for x in &v {
        let norm: f64 = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = embed(
        b"fine\nalso fine\nbad \xC3\x28 here\nlast\n",
        &["-o", out_path.to_str().unwrap()],
    );
    let err = failed(&out);
    assert!(
        err.contains("line 3 of standard input") && err.contains("UTF-8"),
        "{err}"
    );
    assert!(!out_path.exists(), "a failed run leaves no output file");
}

#[test]
fn a_line_that_never_ends_is_refused_after_a_bounded_read() {
    let out = embed(b"", &["--input", "/dev/zero"]);
    let err = failed(&out);
    assert!(
        err.contains("line 1 of /dev/zero") && err.contains("16 MiB"),
        "{err}"
    );
    // The same for `tokenize`, which reads every text before it starts.
    let out = run(
        &["tokenize", "--model", &model(), "--input", "/dev/zero"],
        b"",
    );
    assert!(failed(&out).contains("16 MiB"));
}

#[test]
fn input_is_streamed_a_batch_at_a_time() {
    // The first batch's vectors come out while standard input is still open: the input is not
    // read to its end first.
    let model = model();
    let mut child = Command::new(BIN)
        .args([
            "embed",
            "--model",
            &model,
            "--threads",
            "2",
            "-f",
            "jsonl",
            "--batch-size",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"first text\nsecond text\n").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"index\":0,"), "{line:.80}");
    stdin.write_all(b"third text\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest.lines().count(), 2, "{rest:.200}");
}

#[test]
fn a_model_with_a_non_finite_weight_is_an_error_naming_the_text() {
    // A copy of the real model with one NaN (then one infinity) in the final norm.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::copy(model_path(), &path).unwrap();
    let offset = {
        let file = gguf::Gguf::open(&path).unwrap();
        let t = file.tensor("output_norm.weight").unwrap().clone();
        let bytes = file.tensor_bytes(&t);
        bytes.as_ptr() as usize - file.bytes().as_ptr() as usize
    };
    for value in [f32::NAN, f32::INFINITY] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        // Every precision: the int8 activation quantizer carries a NaN in its block's scale.
        for precision in ["f32", "int8", "mixed"] {
            let out = Command::new(BIN)
                .args([
                    "embed",
                    "--model",
                    path.to_str().unwrap(),
                    "--threads",
                    "2",
                    "--precision",
                    precision,
                    "-f",
                    "json",
                    "hello",
                    "world",
                ])
                .env(ggufembed::NO_PACK_CACHE_ENV, "1")
                .output()
                .unwrap();
            let err = failed(&out);
            assert!(
                err.contains("argument 1") && err.contains("non-finite"),
                "{value} {precision}: {err}"
            );
        }
    }
}
