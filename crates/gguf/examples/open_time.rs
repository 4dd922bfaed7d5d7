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
    println!("iterating all token strings ({n} bytes): {iter:?}");
    Ok(())
}
