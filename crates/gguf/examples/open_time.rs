//! Measures how long `Gguf::open` takes (mmap + header parse + validation) on a file.
//!
//! `cargo run --release -p gguf --example open_time -- path/to/model.gguf`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: open_time FILE.gguf")?;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let f = gguf::Gguf::open(&path)?;
        times.push(t.elapsed());
        std::hint::black_box(f.tensors().len());
    }
    times.sort();
    // The same parse on bytes already in memory: the cost of validation alone, without page faults.
    let bytes = std::fs::read(&path)?;
    let mut parse = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let f = gguf::Gguf::from_bytes(bytes.as_slice())?;
        parse.push(t.elapsed());
        std::hint::black_box(f.tensors().len());
    }
    parse.sort();
    let f = gguf::Gguf::open(&path)?;
    let t = Instant::now();
    let n = f
        .get_str_array("tokenizer.ggml.tokens")
        .map(|s| s.map(str::len).sum::<usize>())
        .unwrap_or(0);
    let iter = t.elapsed();
    println!(
        "{path}: {} bytes, {} keys, {} tensors",
        f.bytes().len(),
        f.metadata_len(),
        f.tensors().len()
    );
    println!(
        "open: min {:?}, median {:?}, max {:?} (20 runs)",
        times[0], times[10], times[19]
    );
    println!(
        "parse of in-memory bytes: min {:?}, median {:?}",
        parse[0], parse[10]
    );
    println!("iterating all token strings ({n} bytes): {iter:?}");
    Ok(())
}
