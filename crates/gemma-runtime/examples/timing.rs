//! Warm forward-pass timings of the three shapes (a quick check; the project's benchmark
//! harness is `cargo xtask bench`).
//!
//! `cargo run --release -p gemma-runtime --example timing -- MODEL.gguf [int8|mixed|f32]`
//!
//! * "Hello world" (4 tokens) on 1 thread: ms per embedding;
//! * a 128-token and a 512-token text on 2 threads: tokens per second.

use std::time::Instant;

use gemma_runtime::{open, Precision, RuntimeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: timing MODEL.gguf [int8|mixed|f32]")?;
    let precision = match args.get(1).map(String::as_str) {
        None | Some("mixed") => Precision::Mixed,
        Some("int8") => Precision::Int8,
        Some("f32") => Precision::F32,
        Some(other) => return Err(format!("unknown precision {other}").into()),
    };
    let model = open(
        path.as_ref(),
        &RuntimeOptions {
            precision,
            ..Default::default()
        },
    )?;
    let tok = model.tokenizer();
    let hello = tok.encode("Hello world");
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/corpus/docs.jsonl"
    ))?;
    let long: String = docs
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap_or_default())
        .max_by_key(String::len)
        .ok_or("no docs")?;
    let long_ids = tok.encode(&long);
    let text = |n: usize| {
        let mut v = long_ids[..n - 1].to_vec();
        v.push(1);
        v
    };

    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build();
    // The machine may be shared: besides the best wall time, report the process CPU time per
    // run (divided by the thread count, this is what an idle machine's wall time would be at best).
    let (one, two) = (pool(1)?, pool(2)?);
    let time = |pool: &rayon::ThreadPool,
                ids: &[u32],
                reps: usize|
     -> Result<f64, gemma_runtime::RuntimeError> {
        pool.install(|| {
            model.embed_ids(ids)?; // warm-up
            let mut best = f64::MAX;
            let cpu0 = cpu_seconds();
            for _ in 0..reps {
                let t = Instant::now();
                model.embed_ids(ids)?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            let cpu = (cpu_seconds() - cpu0) / reps as f64;
            println!("    (CPU time per run: {:.2} ms)", cpu * 1e3);
            Ok(best)
        })
    };
    println!(
        "precision {precision:?}, kernels {}",
        q8_kernels::kernels()?.name()
    );
    let t = time(&one, &hello, 100)?;
    println!("{} tokens, 1 thread: {:.2} ms", hello.len(), t * 1e3);
    let t = time(&two, &hello, 20)?;
    println!("{} tokens, 2 threads: {:.2} ms", hello.len(), t * 1e3);
    if let Ok(lens) = std::env::var("TIMING_LENGTHS") {
        // Extra: 1-thread times of the given sequence lengths (comma-separated).
        for n in lens.split(',').filter_map(|x| x.parse::<usize>().ok()) {
            let t = time(&one, &text(n.max(2)), 10)?;
            println!("{n} tokens, 1 thread: {:.2} ms", t * 1e3);
        }
        return Ok(());
    }
    if std::env::var_os("TIMING_SHORT_ONLY").is_some() {
        return Ok(());
    }
    // Throughput over many texts: one text per thread.
    for (count, n) in [(16, 128), (4, 512)] {
        let batch: Vec<Vec<u32>> = (0..count).map(|_| text(n)).collect();
        two.install(|| model.embed_batch_ids(&batch))?;
        let t = Instant::now();
        two.install(|| model.embed_batch_ids(&batch))?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "batch of {count} x {n} tokens, 2 threads: {:.0} tokens/s",
            (count * n) as f64 / secs
        );
    }
    for n in [128, 512] {
        let ids = text(n);
        for (threads, pool) in [(1, &one), (2, &two)] {
            let t = time(pool, &ids, 8)?;
            println!(
                "{n} tokens, {threads} thread(s): {:.1} ms, {:.0} tokens/s",
                t * 1e3,
                n as f64 / t
            );
        }
    }
    Ok(())
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, 100 ticks per second);
/// 0 elsewhere.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / 100.0
}
