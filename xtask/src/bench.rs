//! `cargo xtask bench`: the standard benchmark set, ggufembed beside llama.cpp on the same GGUF
//! file and the same machine, written as a markdown table.
//!
//! What it measures (every process is the release `gemma-embed` binary, spawned fresh):
//!
//! * **warm** — `gemma-embed bench --tokens N --threads T --iters K` for N = 4, 32, 128, 512, 2048
//!   and T = 1, 2: one text of exactly N tokens (`<bos>`/`<eos>` included), mean time per text
//!   after warm-up runs (at least one, for at least 0.3 s); the quantity `llama-bench -embd 1 -p N -n 0 -t T` reports.
//! * **cold** — the whole process for one short text (`gemma-embed embed --stats "Hello world"`,
//!   2 threads): wall time from spawn to exit, and peak RSS as `/usr/bin/time -v` reports it
//!   (or, without it, the `VmHWM` the process prints itself). The model file is in the page cache
//!   (one untimed run first): this is a process start, not a disk read.
//! * **docs** — the whole process embedding `testdata/corpus/docs.jsonl` with 2 threads.
//! * **tokenizer** — in this process (xtask is built with `--release`): the time to open the GGUF
//!   and build the tokenizer from its `tokenizer.ggml.*` keys, and the encoding throughput over
//!   `testdata/corpus` on one thread.
//! * **model load** — the `load_ms` the `gemma-embed bench` processes report.
//!
//! Per backend: `Q8_KERNELS_BACKEND=avx2 cargo xtask bench` times our AVX2 kernels on any x86
//! CPU (the variable reaches every `gemma-embed` process); the report names the backend that
//! ran, the CPU and its SIMD features.
//!
//! With llama-cpp-python importable, `xtask/bench/llama_bench.py` measures llama.cpp the same
//! way in the same run, and the table shows the ratios and whether each target is met.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// GGUF model file [default: $GGUFEMBED_MODEL, else embeddinggemma-300m-q8_0.gguf in the
    /// model cache directory]
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// A smoke run: fewer iterations and repetitions (the numbers are rough).
    #[arg(long)]
    pub quick: bool,

    /// Require llama.cpp (llama-cpp-python) and fail if it cannot be imported.
    #[arg(long, conflicts_with = "no_llama")]
    pub llama: bool,

    /// Do not run llama.cpp, even if it is installed.
    #[arg(long)]
    pub no_llama: bool,

    /// Text lengths in tokens for the warm runs [default: 4,32,128,512,2048]
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub tokens: Vec<usize>,

    /// Thread counts for the warm runs [default: 1,2]
    #[arg(long, value_delimiter = ',', value_name = "T,...")]
    pub threads: Vec<usize>,

    /// Timed runs per text length [default: from 30 for short texts down to 3 for 2048 tokens]
    #[arg(long, value_name = "K", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub iters: Option<usize>,

    /// Run only these parts [default: all]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PART,...")]
    pub only: Vec<Part>,

    /// The Python interpreter that has llama_cpp.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: PathBuf,

    /// The gemma-embed binary to time [default: built now with `cargo build --release`]
    #[arg(long, value_name = "PATH")]
    pub gemma_embed: Option<PathBuf>,

    /// Where to write the markdown report [default: target/bench/report.md in the repository]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A part of the benchmark set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// One text of N tokens in a loaded model.
    Warm,
    /// The whole process for "Hello world".
    Cold,
    /// The whole process for testdata/corpus/docs.jsonl.
    Docs,
    /// Tokenizer build time and throughput.
    Tokenizer,
}

const DEFAULT_TOKENS: [usize; 5] = [4, 32, 128, 512, 2048];
const DEFAULT_THREADS: [usize; 2] = [1, 2];
/// Threads of the whole-process runs (the machine's two cores).
const PROCESS_THREADS: usize = 2;
const HELLO: &str = "Hello world";
const DOCS: &str = "testdata/corpus/docs.jsonl";
const CORPUS: [&str; 2] = ["testdata/corpus/docs.jsonl", "testdata/corpus/lines.jsonl"];
const LLAMA_DRIVER: &str = "xtask/bench/llama_bench.py";
const TIME: &str = "/usr/bin/time";

/// The repository root (xtask's parent).
pub(crate) fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Timed runs for a text of `n` tokens.
fn default_iters(n: usize, quick: bool) -> usize {
    let n = n.max(1);
    if quick {
        (256 / n).clamp(1, 5)
    } else {
        (4096 / n).clamp(3, 30)
    }
}

/// Runs the benchmark set and writes the report.
pub fn run(args: &BenchArgs) -> Result<()> {
    let root = repo_root();
    let model = args
        .model
        .clone()
        .unwrap_or_else(ggufembed::default_model_path);
    if !model.is_file() {
        bail!(
            "no model at {} (run `cargo xtask fetch-model`, or pass --model)",
            model.display()
        );
    }
    let parts: Vec<Part> = if args.only.is_empty() {
        vec![Part::Warm, Part::Cold, Part::Docs, Part::Tokenizer]
    } else {
        args.only.clone()
    };
    let tokens = if args.tokens.is_empty() {
        DEFAULT_TOKENS.to_vec()
    } else {
        args.tokens.clone()
    };
    let threads = if args.threads.is_empty() {
        DEFAULT_THREADS.to_vec()
    } else {
        args.threads.clone()
    };

    let binary = match &args.gemma_embed {
        Some(p) => p.clone(),
        None => build_gemma_embed(&root)?,
    };
    let llama =
        if args.no_llama {
            None
        } else {
            match llama_version(&args.python) {
                Ok(v) => Some(v),
                Err(e) if args.llama => return Err(e.context(
                    "--llama: llama-cpp-python is needed (`pip install llama-cpp-python==0.3.36`)",
                )),
                Err(e) => {
                    eprintln!("bench: llama.cpp skipped: {e:#}");
                    None
                }
            }
        };
    let time_v = Path::new(TIME).is_file();

    let mut report = Report {
        date: utc_now(),
        commit: git_commit(&root),
        cpu: cpu_name(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before: load_average(),
        load_after: None,
        model: model.display().to_string(),
        model_bytes: std::fs::metadata(&model).map(|m| m.len()).unwrap_or(0),
        quick: args.quick,
        llama_version: llama.clone(),
        rss_source: if time_v {
            "/usr/bin/time -v (maximum resident set size)"
        } else {
            "the process's own peak RSS (VmHWM / ru_maxrss)"
        },
        parts: parts.clone(),
        ..Report::default()
    };

    let env = Env {
        root: &root,
        model: &model,
        binary: &binary,
        python: &args.python,
        llama: llama.is_some(),
        time_v,
    };

    if parts.contains(&Part::Warm) {
        for &t in &threads {
            for &n in &tokens {
                let k = args.iters.unwrap_or_else(|| default_iters(n, args.quick));
                eprintln!("bench: ggufembed warm, {n} tokens, {t} threads, {k} runs");
                let line = env.ours_warm(n, t, k)?;
                report.backend.get_or_insert_with(|| line.backend.clone());
                report.warm_ours.push(line);
            }
            if env.llama {
                let iters: Vec<usize> = tokens
                    .iter()
                    .map(|&n| args.iters.unwrap_or_else(|| default_iters(n, args.quick)))
                    .collect();
                eprintln!("bench: llama.cpp warm, {t} threads");
                report
                    .warm_llama
                    .extend(env.llama_warm(&tokens, t, &iters)?);
            }
        }
    }
    let reps = if args.quick { 2 } else { 5 };
    if parts.contains(&Part::Cold) {
        eprintln!("bench: whole process, {HELLO:?}, {reps} runs each");
        report.cold_ours = Some(env.ours_process(&[OsString::from(HELLO)], reps, true)?);
        if env.llama {
            report.cold_llama = Some(env.llama_process(
                &["once".into(), "--text".into(), HELLO.into()],
                reps,
                true,
            )?);
            report.python_import_ms = Some(env.python_import_ms(reps)?);
        }
    }
    if parts.contains(&Part::Docs) {
        // The cold-start runs already put the model file in the page cache.
        let warmup = !parts.contains(&Part::Cold);
        let reps = if args.quick { 1 } else { 2 };
        eprintln!("bench: whole process, {DOCS}, {reps} runs each");
        let docs = root.join(DOCS);
        report.docs_ours = Some(env.ours_process(
            &[
                "--input".into(),
                docs.clone().into_os_string(),
                "--input-format".into(),
                "jsonl".into(),
            ],
            reps,
            warmup,
        )?);
        if env.llama {
            report.docs_llama = Some(env.llama_process(
                &["file".into(), "--input".into(), docs.into_os_string()],
                reps,
                warmup,
            )?);
        }
    }
    if parts.contains(&Part::Tokenizer) {
        eprintln!("bench: tokenizer");
        let iters = if args.quick { 2 } else { 5 };
        report.tok_ours = Some(tokenizer_bench(&root, &model, iters)?);
        if env.llama {
            let mut cmd = env.llama_cmd("tokenize");
            cmd.arg("--iters").arg(iters.to_string()).arg("--corpus");
            for c in CORPUS {
                cmd.arg(root.join(c));
            }
            let out = run_ok(&mut cmd)?;
            report.tok_llama = Some(last_json(&out.stdout)?);
        }
    }
    report.load_after = load_average();

    let markdown = report.markdown();
    print!("{markdown}");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench/report.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&out, &markdown).with_context(|| format!("cannot write {}", out.display()))?;
    let json = out.with_extension("json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    eprintln!("bench: wrote {} and {}", out.display(), json.display());
    Ok(())
}

/// Builds the release `gemma-embed` and returns the path of the executable cargo reports.
pub(crate) fn build_gemma_embed(root: &Path) -> Result<PathBuf> {
    eprintln!("bench: cargo build --release -p gemma-embed-cli");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "gemma-embed-cli",
            "--bin",
            "gemma-embed",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!("cargo build --release -p gemma-embed-cli failed");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "gemma-embed" {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    bail!("cargo built gemma-embed but did not say where the executable is")
}

/// `llama_cpp.__version__`, or why it cannot be imported.
fn llama_version(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args(["-c", "import llama_cpp; print(llama_cpp.__version__)"])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_owned();
        bail!("`import llama_cpp` failed: {last}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What the measuring functions share.
struct Env<'a> {
    root: &'a Path,
    model: &'a Path,
    binary: &'a Path,
    python: &'a Path,
    llama: bool,
    time_v: bool,
}

/// The last line of `gemma-embed bench` or a `warm` line of the llama.cpp driver.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct WarmLine {
    tokens: usize,
    threads: usize,
    ms_per_text: f64,
    tokens_per_s: f64,
    #[serde(default)]
    ms_min: f64,
    #[serde(default)]
    iters: usize,
    #[serde(default)]
    load_ms: f64,
    #[serde(default)]
    backend: String,
}

/// One whole-process measurement, repeated.
#[derive(Debug, Clone, Default, Serialize)]
struct ProcessStats {
    /// Wall time of each run, spawn to exit, in ms.
    wall_ms: Vec<f64>,
    /// Peak RSS of each run in kB (KiB, as /usr/bin/time and the kernel count).
    rss_kb: Vec<u64>,
    /// Tokens embedded (as the program reports).
    tokens: Option<u64>,
    /// Texts embedded.
    texts: Option<u64>,
    /// Model load inside the process, ms (median).
    load_ms: Option<f64>,
    /// Embedding inside the process, ms (median).
    embed_ms: Option<f64>,
}

impl ProcessStats {
    fn wall(&self) -> f64 {
        median(&self.wall_ms)
    }

    fn rss_mb(&self) -> f64 {
        let mut kb: Vec<f64> = self.rss_kb.iter().map(|&k| k as f64).collect();
        kb.sort_by(f64::total_cmp);
        median(&kb) * 1024.0 / 1e6
    }
}

/// Tokenizer numbers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct TokLine {
    texts: usize,
    bytes: usize,
    tokens: usize,
    ms: f64,
    mb_per_s: f64,
    /// ggufembed: open the GGUF and build the tokenizer; llama.cpp: `Llama(vocab_only=True)`.
    vocab_load_ms: f64,
}

/// A finished run's output.
struct Output {
    stdout: String,
    stderr: String,
    wall_ms: f64,
    /// `Maximum resident set size (kbytes)` from /usr/bin/time -v.
    time_rss_kb: Option<u64>,
}

/// Runs `cmd`, fails with its standard error if it fails.
fn run_ok(cmd: &mut Command) -> Result<Output> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{stderr}", out.status);
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        wall_ms,
        time_rss_kb: None,
    })
}

/// Runs `program args` under `/usr/bin/time -v` when available (its report goes to a file, not
/// mixed with the program's standard error).
fn run_measured(time_v: bool, program: &Path, args: &[OsString]) -> Result<Output> {
    if !time_v {
        return run_ok(Command::new(program).args(args));
    }
    let report = std::env::temp_dir().join(format!("xtask-bench-time-{}.txt", std::process::id()));
    let mut cmd = Command::new(TIME);
    cmd.arg("-v").arg("-o").arg(&report).arg(program).args(args);
    let mut out = run_ok(&mut cmd)?;
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("cannot read {}", report.display()))?;
    let _ = std::fs::remove_file(&report);
    out.time_rss_kb = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok());
    if out.time_rss_kb.is_none() {
        bail!("{TIME} -v printed no maximum resident set size:\n{text}");
    }
    Ok(out)
}

/// The last line of `text` that parses as a JSON object of type `T`.
fn last_json<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T> {
    text.lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON line in the output:\n{text}"))
        .and_then(|l| serde_json::from_str(l).with_context(|| format!("cannot parse {l:?}")))
}

/// The value of `key` in `gemma-embed embed --stats` output (`key   value`).
fn stat<'a>(stderr: &'a str, key: &str) -> Option<&'a str> {
    stderr.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        rest.starts_with(char::is_whitespace).then(|| rest.trim())
    })
}

/// `"150.2 MB (VmHWM)"` → kB (KiB).
fn parse_human_kb(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    let scale = match it.next()? {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((v * scale / 1024.0).round() as u64)
}

/// The number before the first space: `"12.5 ms"` → 12.5.
fn leading_number(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

impl Env<'_> {
    fn ours_warm(&self, n: usize, t: usize, k: usize) -> Result<WarmLine> {
        let out = run_ok(
            Command::new(self.binary)
                .arg("bench")
                .arg("--model")
                .arg(self.model)
                .args(["--tokens", &n.to_string()])
                .args(["--threads", &t.to_string()])
                .args(["--iters", &k.to_string()]),
        )?;
        last_json(&out.stdout)
    }

    fn llama_cmd(&self, mode: &str) -> Command {
        let mut cmd = Command::new(self.python);
        cmd.arg(self.root.join(LLAMA_DRIVER))
            .arg(mode)
            .arg("--model")
            .arg(self.model);
        cmd
    }

    fn llama_warm(&self, tokens: &[usize], t: usize, iters: &[usize]) -> Result<Vec<WarmLine>> {
        let join = |v: &[usize]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let out = run_ok(
            self.llama_cmd("warm")
                .args(["--tokens", &join(tokens)])
                .args(["--threads", &t.to_string()])
                .args(["--iters", &join(iters)]),
        )?;
        out.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).with_context(|| format!("cannot parse {l:?}")))
            .collect()
    }

    /// `gemma-embed embed --stats` with `extra` arguments, `reps` timed runs after one untimed one.
    fn ours_process(&self, extra: &[OsString], reps: usize, warmup: bool) -> Result<ProcessStats> {
        let mut args: Vec<OsString> = vec![
            "embed".into(),
            "--stats".into(),
            "--model".into(),
            self.model.into(),
            "--threads".into(),
            PROCESS_THREADS.to_string().into(),
        ];
        args.extend_from_slice(extra);
        let mut stats = ProcessStats::default();
        let (mut loads, mut embeds) = (Vec::new(), Vec::new());
        for rep in usize::from(!warmup)..=reps {
            let out = run_measured(self.time_v, self.binary, &args)?;
            if rep == 0 {
                continue; // page cache, first-run effects
            }
            let s = &out.stderr;
            let own_kb = stat(s, "peak memory").and_then(parse_human_kb);
            let rss = out
                .time_rss_kb
                .or(own_kb)
                .ok_or_else(|| anyhow!("gemma-embed --stats printed no peak memory:\n{s}"))?;
            stats.wall_ms.push(out.wall_ms);
            stats.rss_kb.push(rss);
            stats.tokens = stat(s, "tokens").and_then(|v| v.parse().ok());
            stats.texts = stat(s, "texts").and_then(|v| v.parse().ok());
            loads.extend(stat(s, "load").and_then(leading_number));
            embeds.extend(stat(s, "embed").and_then(leading_number).map(|s| s * 1e3));
        }
        stats.load_ms = (!loads.is_empty()).then(|| median(&loads));
        stats.embed_ms = (!embeds.is_empty()).then(|| median(&embeds));
        Ok(stats)
    }

    /// The llama.cpp driver in `args[0]` mode as a whole process, like [`Env::ours_process`].
    fn llama_process(&self, args: &[OsString], reps: usize, warmup: bool) -> Result<ProcessStats> {
        let mut full: Vec<OsString> = vec![self.root.join(LLAMA_DRIVER).into_os_string()];
        full.push(args[0].clone());
        full.extend([
            "--model".into(),
            self.model.into(),
            "--threads".into(),
            PROCESS_THREADS.to_string().into(),
        ]);
        full.extend_from_slice(&args[1..]);
        let mut stats = ProcessStats::default();
        let (mut loads, mut embeds) = (Vec::new(), Vec::new());
        for rep in usize::from(!warmup)..=reps {
            let out = run_measured(self.time_v, self.python, &full)?;
            if rep == 0 {
                continue;
            }
            let v: serde_json::Value = last_json(&out.stdout)?;
            let own_kb = v["maxrss_kb"].as_u64();
            let rss = out
                .time_rss_kb
                .or(own_kb)
                .ok_or_else(|| anyhow!("the llama.cpp driver printed no maxrss_kb"))?;
            stats.wall_ms.push(out.wall_ms);
            stats.rss_kb.push(rss);
            stats.tokens = v["tokens"].as_u64();
            stats.texts = v["texts"].as_u64().or(Some(1));
            loads.extend(v["load_ms"].as_f64());
            embeds.extend(v["embed_ms"].as_f64());
        }
        stats.load_ms = (!loads.is_empty()).then(|| median(&loads));
        stats.embed_ms = (!embeds.is_empty()).then(|| median(&embeds));
        Ok(stats)
    }

    /// Wall time of `python -c "import llama_cpp"`: the part of llama.cpp's whole-process time
    /// that is Python's.
    fn python_import_ms(&self, reps: usize) -> Result<f64> {
        let mut times = Vec::new();
        for rep in 0..=reps {
            let out = run_ok(Command::new(self.python).args(["-c", "import llama_cpp"]))?;
            if rep > 0 {
                times.push(out.wall_ms);
            }
        }
        Ok(median(&times))
    }
}

/// The corpus texts: one JSON string (or object with a `"text"` field) per line.
fn read_corpus(root: &Path) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for c in CORPUS {
        let path = root.join(c);
        let data = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in data.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
            let text = match &v {
                serde_json::Value::String(s) => s.clone(),
                other => other["text"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{}:{}: no text", path.display(), i + 1))?
                    .to_owned(),
            };
            texts.push(text);
        }
    }
    Ok(texts)
}

/// Opens the GGUF and builds the tokenizer from its `tokenizer.ggml.*` keys, as the runtime does.
fn build_tokenizer(model: &Path) -> Result<ggufembed::tokenizer::Tokenizer> {
    use ggufembed::tokenizer::{Tokenizer, VocabConfig};
    let file = gguf::Gguf::open(model)?;
    let id = |key: &str| file.get(key).map(|_| file.get_u32(key)).transpose();
    let flag = |key: &str, default: bool| -> Result<bool> {
        Ok(file
            .get(key)
            .map(|_| file.get_bool(key))
            .transpose()?
            .unwrap_or(default))
    };
    let config = VocabConfig {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos: flag("tokenizer.ggml.add_bos_token", true)?,
        add_eos: flag("tokenizer.ggml.add_eos_token", false)?,
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix", true)?,
    };
    let tokenizer = Tokenizer::from_parts(
        file.get_str_array("tokenizer.ggml.tokens")?,
        file.get_f32_array("tokenizer.ggml.scores")?.to_vec(),
        file.get_i32_array("tokenizer.ggml.token_type")?.to_vec(),
        config,
    )?;
    Ok(tokenizer)
}

/// Tokenizer build time (best of 5) and single-thread throughput over the corpus (best of
/// `iters` passes).
fn tokenizer_bench(root: &Path, model: &Path, iters: usize) -> Result<TokLine> {
    let texts = read_corpus(root)?;
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut builds = Vec::new();
    let mut tokenizer = None;
    for _ in 0..5 {
        let start = Instant::now();
        let t = build_tokenizer(model)?;
        builds.push(start.elapsed().as_secs_f64() * 1e3);
        tokenizer = Some(t);
    }
    let tokenizer = tokenizer.ok_or_else(|| anyhow!("no tokenizer built"))?;
    let mut best = f64::INFINITY;
    let mut tokens = 0;
    for _ in 0..iters {
        tokens = 0;
        let start = Instant::now();
        for t in &texts {
            tokens += std::hint::black_box(tokenizer.encode(t)).len();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(TokLine {
        texts: texts.len(),
        bytes,
        tokens,
        ms: best * 1e3,
        mb_per_s: bytes as f64 / best / 1e6,
        vocab_load_ms: builds.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
struct Report {
    date: String,
    commit: String,
    cpu: String,
    cores: usize,
    load_before: Option<String>,
    load_after: Option<String>,
    model: String,
    model_bytes: u64,
    quick: bool,
    backend: Option<String>,
    llama_version: Option<String>,
    rss_source: &'static str,
    parts: Vec<Part>,
    warm_ours: Vec<WarmLine>,
    warm_llama: Vec<WarmLine>,
    cold_ours: Option<ProcessStats>,
    cold_llama: Option<ProcessStats>,
    python_import_ms: Option<f64>,
    docs_ours: Option<ProcessStats>,
    docs_llama: Option<ProcessStats>,
    tok_ours: Option<TokLine>,
    tok_llama: Option<TokLine>,
}

/// A target from the issue: an absolute bound on this machine and the ratio to llama.cpp it
/// stands for. Judged on the ratio when llama.cpp ran in the same run, else on the bound; when
/// the two disagree (a busy machine slows llama.cpp down more than ggufembed), both are shown.
#[derive(Default)]
struct Target {
    text: &'static str,
    /// ours ≤ max.
    max: Option<f64>,
    /// ours ≥ min.
    min: Option<f64>,
    /// ratio ≥ ratio_min (speed-ups).
    ratio_min: Option<f64>,
    /// ratio ≤ ratio_max (memory ours / llama.cpp).
    ratio_max: Option<f64>,
}

impl Target {
    fn verdict(&self, ours: f64, ratio: Option<f64>) -> &'static str {
        let ratio_ok = ratio.and_then(|r| match (self.ratio_min, self.ratio_max) {
            (Some(lo), _) => Some(r >= lo),
            (None, Some(hi)) => Some(r <= hi),
            (None, None) => None,
        });
        let abs_ok = match (self.max, self.min) {
            (Some(hi), _) => Some(ours <= hi),
            (None, Some(lo)) => Some(ours >= lo),
            (None, None) => None,
        };
        match (ratio_ok, abs_ok) {
            (Some(true), Some(false)) => "met vs llama.cpp; **missed** absolute",
            (Some(false), Some(true)) => "**missed** vs llama.cpp; met absolute",
            (Some(r), _) | (None, Some(r)) => {
                if r {
                    "met"
                } else {
                    "**missed**"
                }
            }
            (None, None) => "",
        }
    }
}

/// The warm targets (tokens, threads): judged on ms for 4 tokens, tokens/s otherwise; the ratio
/// is always the speed-up over llama.cpp.
fn warm_target(n: usize, t: usize) -> Option<Target> {
    match (n, t) {
        (4, 1) => Some(Target {
            text: "≤ 9 ms (3.0× llama.cpp's 27)",
            max: Some(9.0),
            ratio_min: Some(27.0 / 9.0),
            ..Target::default()
        }),
        (4, 2) => Some(Target {
            text: "≤ 6 ms (2.67× llama.cpp's 16)",
            max: Some(6.0),
            ratio_min: Some(16.0 / 6.0),
            ..Target::default()
        }),
        (128, 2) => Some(Target {
            text: "≥ 1,500 tok/s (2.04× llama.cpp's 736)",
            min: Some(1500.0),
            ratio_min: Some(1500.0 / 736.0),
            ..Target::default()
        }),
        (512, 2) => Some(Target {
            text: "≥ 1,200 tok/s (2.01× llama.cpp's 596)",
            min: Some(1200.0),
            ratio_min: Some(1200.0 / 596.0),
            ..Target::default()
        }),
        _ => None,
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

impl Report {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# ggufembed vs llama.cpp\n");
        let _ = writeln!(
            w,
            "{} · commit {} · {} ({} cores) · backend {} · load average {} → {}{}\n",
            self.date,
            self.commit,
            self.cpu,
            self.cores,
            self.backend.as_deref().unwrap_or("?"),
            self.load_before.as_deref().unwrap_or("?"),
            self.load_after.as_deref().unwrap_or("?"),
            if self.quick {
                " · **--quick: rough numbers**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            w,
            "Model `{}` ({:.1} MB). llama.cpp: {}.\n",
            self.model,
            self.model_bytes as f64 / 1e6,
            match &self.llama_version {
                Some(v) => format!("llama-cpp-python {v}, same file, same machine, same run"),
                None => "not run".to_owned(),
            }
        );

        let busiest = [&self.load_before, &self.load_after]
            .iter()
            .filter_map(|l| l.as_deref()?.split_whitespace().next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        if busiest > 1.0 {
            let _ = writeln!(
                w,
                "**The machine was busy** (1-minute load average up to {busiest:.1} on {} cores): \
                 these numbers are unreliable, llama.cpp's multi-threaded ones most (its workers \
                 spin-wait for each other).\n",
                self.cores
            );
        }
        if !self.warm_ours.is_empty() {
            let _ = writeln!(
                w,
                "## One text of N tokens, model loaded (mean of K runs after ≥ 0.3 s of warm-up)\n"
            );
            let _ = writeln!(
                w,
                "| tokens | threads | ggufembed ms | llama.cpp ms | ggufembed tok/s | llama.cpp tok/s | speed-up | target | |"
            );
            let _ = writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|---|---|");
            for o in &self.warm_ours {
                let l = self
                    .warm_llama
                    .iter()
                    .find(|l| l.tokens == o.tokens && l.threads == o.threads);
                let speedup = l.map(|l| l.ms_per_text / o.ms_per_text);
                let target = warm_target(o.tokens, o.threads);
                let (ttext, verdict) = match &target {
                    Some(t) => {
                        let ours = if t.min.is_some() {
                            o.tokens_per_s
                        } else {
                            o.ms_per_text
                        };
                        (t.text, t.verdict(ours, speedup))
                    }
                    None => ("", ""),
                };
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                    o.tokens,
                    o.threads,
                    fmt_ms(o.ms_per_text),
                    l.map_or("–".into(), |l| fmt_ms(l.ms_per_text)),
                    o.tokens_per_s,
                    l.map_or("–".into(), |l| format!("{:.0}", l.tokens_per_s)),
                    speedup.map_or("–".into(), |r| format!("{r:.2}×")),
                    ttext,
                    verdict
                );
            }
            let _ = writeln!(w);
        }

        let has_process = self.cold_ours.is_some() || self.docs_ours.is_some();
        if has_process {
            let _ = writeln!(
                w,
                "## Whole process, {PROCESS_THREADS} threads (median of runs; peak RSS by {})\n",
                self.rss_source
            );
            let _ = writeln!(w, "| what | ggufembed | llama.cpp | ratio | target | |");
            let _ = writeln!(w, "|---|---:|---:|---:|---|---|");
        }
        if let Some(o) = &self.cold_ours {
            let l = self.cold_llama.as_ref();
            let speed = l.map(|l| l.wall() / o.wall());
            let verdict = Target {
                max: Some(100.0),
                ratio_min: Some(1400.0 / 100.0),
                ..Target::default()
            }
            .verdict(o.wall(), speed);
            let _ = writeln!(
                w,
                "| `embed \"{HELLO}\"` wall | {} ms | {} | {} | ≤ 100 ms (14× llama.cpp's 1.4 s) | {} |",
                fmt_ms(o.wall()),
                l.map_or("–".into(), |l| format!(
                    "{} ms (Python + `import llama_cpp`: {} ms)",
                    fmt_ms(l.wall()),
                    self.python_import_ms.map_or("?".into(), fmt_ms)
                )),
                speed.map_or("–".into(), |r| format!("{r:.1}× faster")),
                verdict
            );
            let mem = l.map(|l| o.rss_mb() / l.rss_mb());
            let t = Target {
                max: Some(180.0),
                ratio_max: Some(180.0 / 646.0),
                ..Target::default()
            };
            let _ = writeln!(
                w,
                "| `embed \"{HELLO}\"` peak RSS | {:.0} MB | {} | {} | ≤ 180 MB (0.28× llama.cpp's 646) | {} |",
                o.rss_mb(),
                l.map_or("–".into(), |l| format!("{:.0} MB", l.rss_mb())),
                mem.map_or("–".into(), |r| format!("{r:.2}×")),
                t.verdict(o.rss_mb(), mem)
            );
            let _ = writeln!(
                w,
                "| ↳ of which model load / embed (in-process) | {} / {} ms | {} | | | |",
                o.load_ms.map_or("?".into(), fmt_ms),
                o.embed_ms.map_or("?".into(), fmt_ms),
                l.map_or("–".into(), |l| format!(
                    "{} / {} ms",
                    l.load_ms.map_or("?".into(), fmt_ms),
                    l.embed_ms.map_or("?".into(), fmt_ms)
                )),
            );
        }
        if let Some(o) = &self.docs_ours {
            let l = self.docs_llama.as_ref();
            let speed = l.map(|l| l.wall() / o.wall());
            let what = format!(
                "`{DOCS}` ({} texts, {} tokens{})",
                o.texts.map_or("?".into(), |t| t.to_string()),
                o.tokens.map_or("?".into(), |t| t.to_string()),
                l.and_then(|l| l.tokens)
                    .map_or(String::new(), |t| format!("; llama.cpp: {t}"))
            );
            let t = Target {
                ratio_min: Some(2.0),
                ..Target::default()
            };
            let _ = writeln!(
                w,
                "| {what} wall | {} ms | {} | {} | ≥ 2× faster | {} |",
                fmt_ms(o.wall()),
                l.map_or("–".into(), |l| format!("{} ms", fmt_ms(l.wall()))),
                speed.map_or("–".into(), |r| format!("{r:.2}× faster")),
                t.verdict(0.0, speed)
            );
            let t = Target {
                max: Some(300.0),
                ..Target::default()
            };
            let _ = writeln!(
                w,
                "| {what} peak RSS | {:.0} MB | {} | {} | ≤ 300 MB | {} |",
                o.rss_mb(),
                l.map_or("–".into(), |l| format!("{:.0} MB", l.rss_mb())),
                l.map_or("–".into(), |l| format!("{:.2}×", o.rss_mb() / l.rss_mb())),
                t.verdict(o.rss_mb(), None)
            );
            let rate = |p: &ProcessStats| match (p.tokens, p.embed_ms) {
                (Some(t), Some(ms)) if ms > 0.0 => Some(t as f64 / ms * 1e3),
                _ => None,
            };
            let _ = writeln!(
                w,
                "| ↳ embedding only (in-process), tok/s | {} | {} | {} | | |",
                rate(o).map_or("?".into(), |r| format!("{r:.0}")),
                l.and_then(rate).map_or("–".into(), |r| format!("{r:.0}")),
                match (rate(o), l.and_then(rate)) {
                    (Some(a), Some(b)) => format!("{:.2}×", a / b),
                    _ => "–".into(),
                }
            );
        }
        if has_process {
            let _ = writeln!(w);
        }

        let load_ours: Vec<f64> = self.warm_ours.iter().map(|l| l.load_ms).collect();
        let load_llama: Vec<f64> = self.warm_llama.iter().map(|l| l.load_ms).collect();
        if !load_ours.is_empty() || self.tok_ours.is_some() {
            let _ = writeln!(w, "## Load and tokenizer\n");
            let _ = writeln!(w, "| what | ggufembed | llama.cpp | ratio |");
            let _ = writeln!(w, "|---|---:|---:|---:|");
        }
        if !load_ours.is_empty() {
            let o = median(&load_ours);
            let l = (!load_llama.is_empty()).then(|| median(&load_llama));
            let _ = writeln!(
                w,
                "| model load, file in page cache (median over the warm processes) | {} ms | {} | {} |",
                fmt_ms(o),
                l.map_or("–".into(), |l| format!("{} ms", fmt_ms(l))),
                l.map_or("–".into(), |l| format!("{:.1}× faster", l / o))
            );
        }
        if let Some(o) = &self.tok_ours {
            let l = self.tok_llama.as_ref();
            let _ = writeln!(
                w,
                "| tokenizer build from the GGUF (ours: open + build; llama.cpp: `vocab_only` load) | {} ms | {} | {} |",
                fmt_ms(o.vocab_load_ms),
                l.map_or("–".into(), |l| format!("{} ms", fmt_ms(l.vocab_load_ms))),
                l.map_or("–".into(), |l| format!("{:.1}× faster", l.vocab_load_ms / o.vocab_load_ms))
            );
            let _ = writeln!(
                w,
                "| tokenizer, 1 thread, `testdata/corpus` ({} texts, {:.1} kB → {} tokens) | {:.1} MB/s | {} | {} |",
                o.texts,
                o.bytes as f64 / 1e3,
                o.tokens,
                o.mb_per_s,
                l.map_or("–".into(), |l| format!("{:.1} MB/s ({} tokens)", l.mb_per_s, l.tokens)),
                l.map_or("–".into(), |l| format!("{:.1}×", o.mb_per_s / l.mb_per_s))
            );
        }
        if !load_ours.is_empty() || self.tok_ours.is_some() {
            let _ = writeln!(w);
        }
        let _ = writeln!(
            w,
            "Speed-ups are llama.cpp time / ggufembed time (above 1: ggufembed is faster); memory \
             ratios are ggufembed / llama.cpp. Targets are judged on the ratio to llama.cpp when it \
             ran, else on the absolute number; both are shown when they disagree. Whole-process times run from spawn to exit with the \
             model file in the page cache (one untimed run first); llama.cpp's include Python's \
             start-up and `import llama_cpp`. MB = 10⁶ bytes."
        );
        s
    }
}

fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The CPU's model name and the SIMD features the kernels choose between (the backend that
/// runs is the fastest of them, or the one `Q8_KERNELS_BACKEND` forces).
fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("flags")
                .or_else(|| l.strip_prefix("Features"))
        })
        .map(|v| {
            v.trim_start_matches([' ', '\t', ':'])
                .split_whitespace()
                .collect()
        })
        .unwrap_or_default();
    let simd: Vec<&str> = [
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "asimd",
        "asimddp",
        "i8mm",
    ]
    .into_iter()
    .filter(|f| flags.contains(f))
    .collect();
    if simd.is_empty() {
        name
    } else {
        format!("{name} [{}]", simd.join(" "))
    }
}

fn git_commit(root: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = run(&["rev-parse", "--short", "HEAD"]) else {
        return "?".to_owned();
    };
    match run(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head} + uncommitted changes"),
        _ => head,
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_lines() {
        let err = "model       x.gguf (q8_0, 768 dims)\nload        12.5 ms\ntexts       49\n\
                   tokens      5310\nembed       1.234 s\npeak memory 150.2 MB (VmHWM)\n";
        assert_eq!(stat(err, "tokens"), Some("5310"));
        assert_eq!(stat(err, "load").and_then(leading_number), Some(12.5));
        assert_eq!(stat(err, "embed").and_then(leading_number), Some(1.234));
        assert_eq!(
            stat(err, "peak memory").and_then(parse_human_kb),
            Some(146_680)
        );
        assert_eq!(stat(err, "token"), None);
    }

    #[test]
    fn median_and_iters() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(default_iters(4, false), 30);
        assert_eq!(default_iters(2048, false), 3);
        assert_eq!(default_iters(2048, true), 1);
    }

    #[test]
    fn verdicts() {
        let t = warm_target(4, 1).unwrap();
        assert_eq!(t.verdict(8.0, None), "met");
        assert_eq!(t.verdict(10.0, None), "**missed**");
        assert_eq!(t.verdict(8.0, Some(3.5)), "met");
        assert_eq!(t.verdict(10.0, Some(2.0)), "**missed**");
        // Both are shown when they disagree.
        assert_eq!(
            t.verdict(10.0, Some(3.5)),
            "met vs llama.cpp; **missed** absolute"
        );
        assert_eq!(
            t.verdict(8.0, Some(2.0)),
            "**missed** vs llama.cpp; met absolute"
        );
        let t = warm_target(128, 2).unwrap();
        assert_eq!(t.verdict(1600.0, None), "met");
        assert!(warm_target(32, 1).is_none());
    }

    #[test]
    fn date_is_civil() {
        let d = utc_now();
        assert!(
            d.len() == 20 && d.ends_with(" UTC") && d.starts_with("20"),
            "{d}"
        );
    }
}
