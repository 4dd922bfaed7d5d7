//! `cargo xtask loadtest`: requests/s and latency of `gemma-embed serve` under closed-loop load.
//!
//! Starts the release `gemma-embed serve` on a free loopback port (127.0.0.1 only), then for each
//! concurrency level (default 1, 8, 32 clients) and each kind of text (short corpus lines, and
//! texts of 512 tokens) runs that many clients, each sending `POST /v1/embeddings` with one text
//! and waiting for the answer before the next, for a bounded time and number of requests (a request
//! unanswered a minute after the end counts as an error). Prints a
//! markdown table: requests/s, p50 and p99 latency, and the server's peak memory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Options of `cargo xtask loadtest`.
#[derive(clap::Args)]
pub struct Args {
    /// The gemma-embed binary [default: built now with `cargo build --release`].
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// The GGUF model [default: the cached Q8_0 model].
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Threads of the server's model.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Concurrency levels (closed-loop clients).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Seconds of each measurement (after a warm-up request per client).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Most requests of each measurement.
    #[arg(long, default_value_t = 2000)]
    max_requests: usize,
}

/// The server process; killed if still running when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose requests give up after `timeout` (counted as errors).
fn agent_with(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn agent() -> ureq::Agent {
    agent_with(Duration::from_secs(600))
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, String)> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    Ok((status, text))
}

fn start(bin: &PathBuf, model: &PathBuf, threads: usize) -> Result<Server> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--threads"])
        .arg(threads.to_string())
        .arg("--model")
        .arg(model)
        .args(["--max-concurrent-requests", "1024"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
            eprintln!("  {line}");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the server did not say where it listens")?;
    let server = Server {
        child,
        base: format!("http://{addr}"),
    };
    let agent = agent();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(mut r) = agent.get(format!("{}/health", server.base)).call() {
            if r.status().as_u16() == 200 {
                let _ = r.body_mut().read_to_string();
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            bail!("the server did not load the model in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Short lines of the corpus, and texts of exactly 512 tokens cut from the documents at token
/// boundaries (the server's `/tokenize` gives the byte offsets).
fn workloads(server: &Server) -> Result<(Vec<String>, Vec<String>)> {
    let root = crate::bench::repo_root().join("testdata/corpus");
    let read = |name: &str| -> Result<Vec<String>> {
        let data = std::fs::read_to_string(root.join(name))
            .with_context(|| format!("cannot read {name}"))?;
        Ok(data
            .lines()
            .filter_map(|l| serde_json::from_str::<String>(l).ok())
            .filter(|t| !t.trim().is_empty())
            .collect())
    };
    let short: Vec<String> = read("lines.jsonl")?
        .into_iter()
        .filter(|t| t.len() < 80)
        .take(200)
        .collect();
    let agent = agent();
    let mut long = Vec::new();
    for doc in read("docs.jsonl")? {
        let (status, answer) = post(
            &agent,
            &format!("{}/tokenize", server.base),
            &json!({ "inputs": doc }).to_string(),
        )?;
        if status != 200 {
            bail!("/tokenize answered {status}: {answer}");
        }
        let tokens: Value = serde_json::from_str(&answer)?;
        let Some(tokens) = tokens[0].as_array() else {
            continue;
        };
        // <bos> + 510 tokens + <eos> = 512.
        if tokens.len() < 600 {
            continue;
        }
        let stop = tokens[510]["stop"]
            .as_u64()
            .ok_or_else(|| anyhow!("no byte offsets in /tokenize's answer"))?;
        let cut = doc.as_bytes()[..stop as usize].to_vec();
        long.push(String::from_utf8_lossy(&cut).into_owned());
        if long.len() == 8 {
            break;
        }
    }
    if short.is_empty() || long.is_empty() {
        bail!("the corpus has no short lines or no documents of 600 tokens");
    }
    Ok((short, long))
}

/// What one measurement gave.
struct Measurement {
    requests: usize,
    seconds: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

fn measure(
    server: &Server,
    texts: &Arc<Vec<String>>,
    clients: usize,
    seconds: f64,
    max_requests: usize,
) -> Result<Measurement> {
    let url = format!("{}/v1/embeddings", server.base);
    let budget = Arc::new(AtomicUsize::new(max_requests));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (url, texts, budget) = (url.clone(), Arc::clone(texts), Arc::clone(&budget));
            std::thread::spawn(move || {
                // A request still unanswered a minute after the measurement's end is an error, so
                // a row never takes much longer than --seconds.
                let agent = agent_with(Duration::from_secs_f64(seconds + 60.0));
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut i = c * 7;
                while Instant::now() < deadline
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let body =
                        json!({ "input": texts[i % texts.len()], "model": "embeddinggemma" })
                            .to_string();
                    i += 1;
                    let t = Instant::now();
                    match post(&agent, &url, &body) {
                        Ok((200, _)) => latencies.push(t.elapsed().as_secs_f64()),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (l, e) = t.join().map_err(|_| anyhow!("a client panicked"))?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
        }
    };
    Ok(Measurement {
        requests: latencies.len(),
        seconds,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    })
}

/// Peak resident memory of a process (Linux `VmHWM`), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `cargo xtask loadtest`.
pub fn run(args: &Args) -> Result<()> {
    if args.clients.iter().any(|&c| c == 0 || c > 256) {
        bail!("--clients must be between 1 and 256");
    }
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => crate::bench::build_gemma_embed(&crate::bench::repo_root())?,
    };
    let model = args
        .model
        .clone()
        .unwrap_or_else(ggufembed::default_model_path);
    let server = start(&bin, &model, args.threads)?;
    let (short, long) = workloads(&server)?;
    let kinds = [
        ("short lines", Arc::new(short)),
        ("512 tokens", Arc::new(long)),
    ];
    println!(
        "gemma-embed serve, {} model threads, {} ({} s or {} requests per row, loopback)\n",
        args.threads,
        model.display(),
        args.seconds,
        args.max_requests
    );
    println!("| texts | clients | requests | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, texts) in &kinds {
        // One untimed request warms the caches.
        measure(&server, texts, 1, 60.0, 1)?;
        for &clients in &args.clients {
            let m = measure(&server, texts, clients, args.seconds, args.max_requests)?;
            println!(
                "| {kind} | {clients} | {} | {:.1} | {:.1} | {:.1} | {} |",
                m.requests,
                m.requests as f64 / m.seconds,
                m.p50 * 1e3,
                m.p99 * 1e3,
                m.errors
            );
        }
    }
    if let Some(mb) = peak_rss_mb(server.child.id()) {
        println!("\nserver peak memory (VmHWM): {mb:.0} MB");
    }
    Ok(())
}
