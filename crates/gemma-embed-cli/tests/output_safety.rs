#![cfg(unix)]
//! What a hostile but fair user of the command line can do to it, through the real binary:
//! outputs that are devices, FIFOs, links, other people's files, read-only files or the model
//! itself; interrupts; model paths that are not files; closed pipes; errors in the middle of a
//! JSON array; absurd thread counts; malformed JSON input.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// No temporary (`.partial`) file is left in `dir`.
fn assert_no_partial(dir: &Path) {
    let names = files_in(dir);
    assert!(
        !names.iter().any(|n| n.contains("partial")),
        "left behind: {names:?}"
    );
}

/// Waits for `child` to end; kills it (and fails) if it has not ended after `limit`, so that a
/// hang fails the test instead of blocking it forever.
fn wait_or_kill(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rows_of(n: usize) -> String {
    (0..n).map(|i| format!("text number {i}\n")).collect()
}

// ---- --output: what is at the path ----

#[test]
fn dev_null_is_written_not_replaced() {
    let before = std::fs::metadata("/dev/null").unwrap();
    assert!(before.file_type().is_char_device());
    ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "-o",
            "/dev/null",
            "x",
        ],
        b"",
    ));
    let after = std::fs::metadata("/dev/null").unwrap();
    assert!(after.file_type().is_char_device(), "/dev/null was replaced");
    assert_eq!(before.ino(), after.ino());
    assert_eq!(before.rdev(), after.rdev());
}

#[test]
fn fifo_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("vectors.jsonl");
    mkfifo(&fifo);
    // The reader opens first; if gemma-embed fails before opening the FIFO, the reader is
    // killed below instead of waiting forever.
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "--output",
            fifo.to_str().unwrap(),
            "one",
            "two",
            "three",
        ],
        b"",
    );
    if !out.status.success() {
        let _ = reader.kill();
    }
    ok(&out);
    let mut text = String::new();
    reader
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    reader.wait().unwrap();
    assert_eq!(jsonl(&text).len(), 3);
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(files_in(dir.path()), ["vectors.jsonl"]);
}

#[test]
fn symlink_target_is_written_and_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.csv");
    let link = dir.path().join("link.csv");
    std::fs::write(&real, "old\n").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("real.csv", &link).unwrap();
    ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "-o",
            link.to_str().unwrap(),
            "x",
        ],
        b"",
    ));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let rows = csv_rows(&std::fs::read_to_string(&real).unwrap());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 768);
    assert_eq!(mode(&real), 0o600);

    // A link to a name that does not exist yet creates that name.
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink("created.jsonl", &dangling).unwrap();
    ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "-o",
            dangling.to_str().unwrap(),
            "x",
        ],
        b"",
    ));
    let created = std::fs::read_to_string(dir.path().join("created.jsonl")).unwrap();
    assert_eq!(jsonl(&created).len(), 1);
    assert_no_partial(dir.path());
}

/// A new file gets 0666 less the umask; a replaced one keeps its mode.
#[test]
fn modes_follow_the_umask_and_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, want) in [("077", 0o600), ("022", 0o644), ("002", 0o664)] {
        let out = dir.path().join(format!("new-{umask}.jsonl"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --model \"$1\" --threads 2 -o \"$2\" x"
            ))
            .arg(BIN)
            .arg(model_path())
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(mode(&out), want, "umask {umask}");
    }
    let kept = dir.path().join("kept.jsonl");
    std::fs::write(&kept, "old\n").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "-o",
            kept.to_str().unwrap(),
            "x",
        ],
        b"",
    ));
    assert_eq!(mode(&kept), 0o640);
    assert_eq!(jsonl(&std::fs::read_to_string(&kept).unwrap()).len(), 1);
}

#[test]
fn read_only_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ro.jsonl");
    std::fs::write(&target, "precious\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = failed(&run(
        &["--model", &model(), "-o", target.to_str().unwrap(), "x"],
        b"",
    ));
    assert!(
        err.contains("read-only") && err.contains("ro.jsonl"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(mode(&target), 0o444);
    assert_no_partial(dir.path());
}

/// Whether this process runs as root (the owner of a new file is the effective user).
fn running_as_root() -> bool {
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

/// Someone else's file in a writable directory: root keeps the owner; anybody else is refused
/// (tested by running the binary as `nobody`, which root can do).
#[test]
fn someone_elses_file_keeps_its_owner_or_is_refused() {
    if !running_as_root() {
        // Without root there is no other user's file to make, nor another user to become.
        eprintln!("not root: skipping the ownership cases");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = dir.path().join("theirs.jsonl");
    std::fs::write(&theirs, "old\n").unwrap();
    std::os::unix::fs::chown(&theirs, Some(4242), Some(4343)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o664)).unwrap();
    ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "-o",
            theirs.to_str().unwrap(),
            "x",
        ],
        b"",
    ));
    let meta = std::fs::metadata(&theirs).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(meta.mode() & 0o7777, 0o664);
    assert_eq!(jsonl(&std::fs::read_to_string(&theirs).unwrap()).len(), 1);

    // As `nobody`: a root-owned, world-writable file cannot be given back to root. The binary
    // is copied where `nobody` may run it; the refusal comes before the model is loaded.
    let bin = dir.path().join("gemma-embed");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let roots = dir.path().join("roots.jsonl");
    std::fs::write(&roots, "root's\n").unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["--model", "/nonexistent/model.gguf", "-o"])
        .arg(&roots)
        .arg("x")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(
        err.contains("roots.jsonl") && err.contains("belongs to user 0"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&roots).unwrap(), "root's\n");
    assert_eq!(std::fs::metadata(&roots).unwrap().uid(), 0);
    assert_no_partial(dir.path());
}

/// `--model m.gguf -o m.gguf` (directly or through a link) and `--input t.txt -o t.txt` are
/// refused before anything is read or written.
#[test]
fn the_model_and_the_input_are_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let fake_model = dir.path().join("m.gguf");
    std::fs::write(&fake_model, "pretend weights").unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink("m.gguf", &link).unwrap();
    for out in [&fake_model, &link] {
        let err = failed(&run(
            &[
                "--model",
                fake_model.to_str().unwrap(),
                "--format",
                "jsonl",
                "-o",
                out.to_str().unwrap(),
                "x",
            ],
            b"",
        ));
        assert!(err.contains("is the model"), "{err}");
        assert_eq!(std::fs::read(&fake_model).unwrap(), b"pretend weights");
    }
    let input = dir.path().join("t.jsonl");
    std::fs::write(&input, "a text\n").unwrap();
    let err = failed(&run(
        &[
            "--model",
            &model(),
            "--input",
            input.to_str().unwrap(),
            "-o",
            input.to_str().unwrap(),
        ],
        b"",
    ));
    assert!(err.contains("is the input file"), "{err}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "a text\n");
    assert_no_partial(dir.path());
}

#[test]
fn a_directory_is_not_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let err = failed(&run(
        &["--model", &model(), "-o", dir.path().to_str().unwrap(), "x"],
        b"",
    ));
    assert!(err.contains("is a directory"), "{err}");
    assert!(files_in(dir.path()).is_empty());
    // Nor is a file in a directory that does not exist.
    let missing = dir.path().join("no-such-dir").join("out.jsonl");
    let err = failed(&run(
        &["--model", &model(), "-o", missing.to_str().unwrap(), "x"],
        b"",
    ));
    assert!(
        err.contains("there is no directory") && err.contains("no-such-dir"),
        "{err}"
    );
    assert!(files_in(dir.path()).is_empty());
}

// ---- interrupts ----

/// Starts `args`, waits until a temporary file or directory appears in `dir`, lets the run go
/// on a moment, sends `signal`, and checks that the process died of it leaving only `keep`.
fn interrupt(args: &[&str], dir: &Path, signal: (&str, i32), keep: &[&str], inside: &str) {
    let mut child = Command::new(BIN)
        .args(args)
        // The signal may come while the model loads: keep the shared cache of packed weights
        // out of it (its writes are the runtime's, not this command's).
        .env(ggufembed::NO_PACK_CACHE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("partial"))
    };
    let start = Instant::now();
    // The temporary output appears within a few seconds (after the input is read); give up
    // (and fail) after a minute.
    let found = loop {
        if let Some(p) = partial(dir) {
            // For the converter: wait until it writes its own file inside the staging directory.
            if inside.is_empty() || p.join(inside).exists() {
                break p;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ended ({status}) before writing a temporary file");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    // The shell's own `kill` (no procps needed).
    let kill = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal.0])
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_or_kill(&mut child, Duration::from_secs(60), "interrupted run");
    assert_eq!(
        status.signal(),
        Some(signal.1),
        "{status}: expected death by SIG{}",
        signal.0
    );
    assert!(!found.exists(), "{} left behind", found.display());
    assert_eq!(files_in(dir), keep);
}

#[test]
fn interrupted_embed_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, rows_of(5000)).unwrap();
    let out = dir.path().join("out.jsonl");
    let model = model();
    let args = [
        "--model",
        &model,
        "--threads",
        "2",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    interrupt(&args, dir.path(), ("INT", 2), &["in.txt"], "");
    interrupt(&args, dir.path(), ("TERM", 15), &["in.txt"], "");
}

#[test]
fn interrupted_convert_leaves_nothing() {
    let hf_dir = ggufembed::model_cache_dir().join("embeddinggemma-300m");
    assert!(
        hf_dir.join("model.safetensors").is_file(),
        "{} not found: run `cargo xtask fetch-model`",
        hf_dir.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    interrupt(
        &[
            "convert",
            hf_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
        ("TERM", 15),
        &[],
        "x.gguf.partial",
    );
}

/// `convert` replaces a file through a link keeping its mode, and never writes over its input.
#[test]
fn convert_output_like_embed_output() {
    let hf_dir = ggufembed::model_cache_dir().join("embeddinggemma-300m");
    assert!(
        hf_dir.join("model.safetensors").is_file(),
        "{} not found: run `cargo xtask fetch-model`",
        hf_dir.display()
    );
    // Refused before anything is read: an input of a (fake) checkpoint as the output.
    let fake = tempfile::tempdir().unwrap();
    std::fs::write(fake.path().join("model.safetensors"), "weights").unwrap();
    let err = failed(&run(
        &[
            "convert",
            fake.path().to_str().unwrap(),
            "--out",
            fake.path().join("model.safetensors").to_str().unwrap(),
        ],
        b"",
    ));
    assert!(err.contains("is the input file"), "{err}");
    assert_eq!(files_in(fake.path()), ["model.safetensors"]);
    assert_eq!(
        std::fs::read(fake.path().join("model.safetensors")).unwrap(),
        b"weights"
    );

    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.gguf");
    std::fs::write(&real, "old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink("real.gguf", &link).unwrap();
    ok(&run(
        &[
            "convert",
            hf_dir.to_str().unwrap(),
            "--out",
            link.to_str().unwrap(),
        ],
        b"",
    ));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&real), 0o600);
    let mut magic = [0u8; 4];
    std::fs::File::open(&real)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(&magic, b"GGUF");
    assert_eq!(files_in(dir.path()), ["link.gguf", "real.gguf"]);
    // The converted file is a model that loads.
    let info = ok(&run(
        &["info", "--json", "--model", real.to_str().unwrap()],
        b"",
    ));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["output_dim"], 768);
}

// ---- model paths that are not files ----

#[test]
fn model_path_that_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.gguf");
    mkfifo(&fifo);
    let cases = [
        (fifo.to_str().unwrap(), "FIFO"),
        (dir.path().to_str().unwrap(), "directory"),
        ("/dev/urandom", "character device"),
    ];
    for (path, kind) in cases {
        for sub in ["embed", "tokenize", "info"] {
            let mut child = Command::new(BIN)
                .args([sub, "--model", path])
                .args(if sub == "info" { &[][..] } else { &["x"][..] })
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let status = wait_or_kill(&mut child, Duration::from_secs(60), path);
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(!status.success(), "{sub} {path}");
            assert!(err.contains(kind) && err.contains(path), "{sub}: {err}");
            // One message, each cause once.
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(!err.contains("os error"), "{err}");
        }
    }
}

// ---- standard output ----

/// A reader that goes away (`| head`) ends the run quietly, with success.
#[test]
fn closed_stdout_exits_quietly() {
    let model = model();
    let input = rows_of(200);
    for args in [
        vec!["embed", "--model", &model, "--threads", "2"],
        vec!["embed", "--model", &model, "--threads", "2", "-f", "csv"],
        vec!["embed", "--model", &model, "--threads", "2", "-f", "json"],
        vec!["tokenize", "--model", &model],
        vec!["tokenize", "--model", &model, "-f", "json"],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.clone();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        });
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The read end is dropped here: the next write gets a broken pipe.
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
    // A closed pipe before the first byte (bench writes one line at the very end).
    let out = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" bench --model \"$1\" --threads 2 --tokens 8 --iters 1 | true")
        .arg(BIN)
        .arg(&model)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert!(err.contains("tokens/s"), "{err}");
}

/// An error after the first batch still leaves well-formed JSON on standard output.
#[test]
fn json_array_is_closed_after_an_error() {
    let mut input = rows_of(5);
    input.push_str(&"word ".repeat(3000));
    input.push('\n');
    let out = run(
        &[
            "--model",
            &model(),
            "--threads",
            "2",
            "--format",
            "json",
            "--batch-size",
            "2",
            "--no-truncate",
        ],
        input.as_bytes(),
    );
    let err = failed(&out);
    assert!(err.contains("line 6"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json.as_array().unwrap().len(), 4);
    // An error in the first batch: nothing on standard output at all.
    let out = run(
        &[
            "--model",
            &model(),
            "--format",
            "json",
            "--no-truncate",
            &"word ".repeat(3000),
        ],
        b"",
    );
    failed(&out);
    assert!(out.stdout.is_empty());
}

// ---- odd options and input ----

#[test]
fn too_many_threads_are_cut_to_the_cores() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let out = run(&["--model", &model(), "--threads", "1000", "hello"], b"");
    let rows = jsonl(&ok(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--threads 1000") && err.contains(&format!("using {cores}")),
        "{err}"
    );
    let info = ok(&run(
        &["info", "--json", "--model", &model(), "-t", "1000"],
        b"",
    ));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["threads"], cores);
    let plain = jsonl(&ok(&run(
        &[
            "--model",
            &model(),
            "--threads",
            &cores.to_string(),
            "hello",
        ],
        b"",
    )));
    assert_eq!(rows, plain);
}

#[test]
fn lone_surrogate_in_jsonl_is_explained() {
    let out = run(
        &["--model", &model(), "--input-format", "jsonl"],
        b"\"fine\"\n\"bad \\ud800 half\"\n",
    );
    let err = failed(&out);
    assert!(
        err.contains("line 2") && err.contains("\\ud800") && err.contains("surrogate"),
        "{err}"
    );
    assert!(!err.contains("hex escape"), "{err}");
    assert!(out.stdout.is_empty());
}
