#![cfg(unix)]
//! The command lines of the Go tool that `gemma-embed` replaces work as written (single-dash
//! long flags, the output format taken from the file name, `-stats`), with the real binary and
//! the real model, and give the same output as the double-dash forms.

mod common;

use std::path::Path;

use common::*;

const TEXTS: &str = "hello world\nThe quick brown fox jumps over the lazy dog.\n\nlast line\n";

/// A directory holding `texts.txt` and `model.gguf` (a link to the real model), so that the
/// commands below run exactly as a user of the Go tool types them.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("texts.txt"), TEXTS).unwrap();
    std::os::unix::fs::symlink(model_path(), dir.path().join("model.gguf")).unwrap();
    dir
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `echo "hello world" | gemma-embed -model model.gguf -format json`
#[test]
fn stdin_to_json() {
    let dir = workdir();
    let go = run_in(
        Some(dir.path()),
        &words("-model model.gguf -format json"),
        b"hello world\n",
    );
    let go = ok(&go);
    let rows: serde_json::Value = serde_json::from_str(&go).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 768);
    let gnu = ok(&run_in(
        Some(dir.path()),
        &words("--model model.gguf --format json"),
        b"hello world\n",
    ));
    assert_eq!(go, gnu);
    // `-flag=value` and short flags too.
    let eq = ok(&run_in(
        Some(dir.path()),
        &words("-model=model.gguf -format=json"),
        b"hello world\n",
    ));
    assert_eq!(go, eq);
    let short = ok(&run_in(
        Some(dir.path()),
        &words("-m model.gguf -f json"),
        b"hello world\n",
    ));
    assert_eq!(go, short);
}

/// `gemma-embed -model model.gguf -input texts.txt -output embeddings.csv` (with and without
/// `-format csv`): a CSV file, the same as `--format csv` on standard output.
#[test]
fn file_to_csv_by_extension() {
    let dir = workdir();
    let out = run_in(
        Some(dir.path()),
        &words("-model model.gguf -input texts.txt -output embeddings.csv"),
        b"",
    );
    ok(&out);
    assert!(out.stdout.is_empty());
    let by_name = std::fs::read_to_string(dir.path().join("embeddings.csv")).unwrap();
    assert!(!by_name.starts_with(['{', '[']), "{by_name:.80}");
    let rows = csv_rows(&by_name);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.len() == 768));

    std::fs::remove_file(dir.path().join("embeddings.csv")).unwrap();
    ok(&run_in(
        Some(dir.path()),
        &words("-model model.gguf -input texts.txt -output embeddings.csv -format csv"),
        b"",
    ));
    let explicit = std::fs::read_to_string(dir.path().join("embeddings.csv")).unwrap();
    assert_eq!(by_name, explicit);

    let gnu = ok(&run_in(
        Some(dir.path()),
        &words("--model model.gguf --input texts.txt --format csv"),
        b"",
    ));
    assert_eq!(by_name, gnu);
    assert_eq!(
        files_in(dir.path()),
        ["embeddings.csv", "model.gguf", "texts.txt"]
    );
}

/// `gemma-embed -model model.gguf -input texts.txt -stats -threads 16`: JSON Lines on standard
/// output, the statistics of the Go tool and the backend on standard error.
#[test]
fn stats_and_threads() {
    let dir = workdir();
    let out = run_in(
        Some(dir.path()),
        &words("-model model.gguf -input texts.txt -stats -threads 16"),
        b"",
    );
    let stdout = ok(&out);
    let err = stderr(&out);
    let rows = jsonl(&stdout);
    assert_eq!(rows.len(), 4);
    for (key, value_hint) in [
        ("load", "ms"),
        ("first", "ms"),
        ("warm", "ms/text"),
        ("texts/s", ""),
        ("tokens/s", ""),
        ("peak memory", "B"),
        ("backend", ggufembed::backend()),
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("--stats lacks {key}: {err}"));
        assert!(line.contains(value_hint), "{line}");
    }
    assert!(err.contains("texts       4"), "{err}");
    assert!(
        err.contains("warm") && err.contains("the other 3 texts"),
        "{err}"
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    if cores < 16 {
        assert!(
            err.contains("--threads 16") && err.contains(&format!("using {cores}")),
            "{err}"
        );
    }
    // The same vectors as without the flags (the first text runs alone under --stats).
    let plain = ok(&run_in(
        Some(dir.path()),
        &words("--model model.gguf --input texts.txt --threads 2"),
        b"",
    ));
    assert_eq!(stdout, plain);
    // `-stats=false` turns the statistics off.
    let quiet = run_in(
        Some(dir.path()),
        &words("-model model.gguf -input texts.txt -stats=false -threads 2"),
        b"",
    );
    assert_eq!(ok(&quiet), plain);
    assert!(!stderr(&quiet).contains("tokens/s"), "{}", stderr(&quiet));
}

/// Every output extension picks its format; an unknown one keeps JSON Lines and says so; a
/// `--format` that contradicts the name is refused before anything is written.
#[test]
fn format_follows_the_extension() {
    let dir = workdir();
    let run = |args: &str| run_in(Some(dir.path()), &words(args), b"");
    ok(&run("-model model.gguf -input texts.txt -output e.json"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("e.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    ok(&run("-model model.gguf -input texts.txt -output e.jsonl"));
    let lines = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
    assert_eq!(jsonl(&lines).len(), 4);
    ok(&run("-model model.gguf -input texts.txt -output E.NPY"));
    let npy = std::fs::read(dir.path().join("E.NPY")).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");

    let out = run("-model model.gguf -input texts.txt -output e.vec");
    ok(&out);
    let note = stderr(&out);
    assert!(
        note.contains("e.vec") && note.contains("jsonl") && note.contains("--format"),
        "{note}"
    );
    let text = std::fs::read_to_string(dir.path().join("e.vec")).unwrap();
    assert_eq!(jsonl(&text).len(), 4);

    let err = failed(&run(
        "-model model.gguf -input texts.txt -output x.csv -format json",
    ));
    assert!(
        err.contains("x.csv") && err.contains("--format json"),
        "{err}"
    );
    assert!(!dir.path().join("x.csv").exists());
    assert!(!files_in(dir.path()).iter().any(|f| f.contains("partial")));
}

/// A single-dash word that is not a flag names the flag the user probably meant (no model
/// needed: nothing runs).
#[test]
fn typos_name_the_flag() {
    for (args, want) in [
        ("-modl model.gguf x", "'-model'"),
        ("-thread 2 x", "'-threads'"),
        ("-ouput e.csv x", "'-output'"),
        ("-fromat csv x", "'-format'"),
        ("-stat x", "'-stats'"),
        ("embed -inptu texts.txt", "'-input'"),
        ("bench -token 8", "'-tokens'"),
    ] {
        let out = run(&words(args), b"");
        let err = failed(&out);
        assert_eq!(out.status.code(), Some(2), "{args}: {err}");
        let given = args
            .split_whitespace()
            .find(|w| w.starts_with('-'))
            .unwrap();
        assert!(err.contains(given) && err.contains(want), "{args}: {err}");
        assert!(out.stdout.is_empty());
    }
    let err = failed(&run(&["-xyzzy"], b""));
    assert!(err.contains("unknown flag '-xyzzy'"), "{err}");
    // Double-dash typos keep clap's own suggestion.
    let err = failed(&run(&["--modle", "m"], b""));
    assert!(err.contains("--model"), "{err}");
}

/// Short flags with glued values and texts after `--` are not mistaken for long flags.
#[test]
fn short_flags_and_dashed_texts() {
    let dir = workdir();
    let glued = ok(&run_in(
        Some(dir.path()),
        &["-mmodel.gguf", "-t2", "-d128", "-fcsv", "--", "-model"],
        b"",
    ));
    let rows = csv_rows(&glued);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 128);
    let spelled = ok(&run_in(
        Some(dir.path()),
        &[
            "--model",
            "model.gguf",
            "--dim",
            "128",
            "--format",
            "csv",
            "--",
            "-model",
        ],
        b"",
    ));
    assert_eq!(glued, spelled);
    assert!(Path::new(&dir.path().join("model.gguf")).exists());
}
