//! Prints single-thread GOP/s (2·n·k·tokens ops per matmul) of the Q8_0 matmul for the
//! EmbeddingGemma shapes, per backend and activation precision, and the fraction of the core's
//! int8 peak.
//!
//! `cargo run --release -p q8-kernels --example gops [-- PEAK_GOPS]`
//!
//! Int8 products use packed weights ([`Kernels::pack_q8_0`]) on backends that have a packed
//! kernel; `GOPS_UNPACKED=1` times the unpacked ones instead.
//!
//! The default peak assumes AMD Zen 4 at 3.7 GHz: one 512-bit `VPDPBUSD` per cycle (two 256-bit
//! halves on two pipes) × 64 MACs × 2 ops = 128 ops/cycle = 474 GOP/s. Int8x2 does twice the
//! int8 work per useful op, so its fraction is of half the peak.

use std::time::Instant;

use q8_kernels::{
    quantize_q8_0, ActivationPrecision, BlockQ8_0, Kernels, QuantizedActivations, Threads,
};

const SHAPES: [(usize, usize); 6] = [
    (768, 768),
    (256, 768),
    (1152, 768),
    (768, 1152),
    (3072, 768),
    (768, 3072),
];
const TOKENS: [usize; 5] = [1, 4, 32, 128, 512];

fn main() {
    let peak: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(474.0);
    // Optional filters: GOPS_BACKEND=avx512vnni GOPS_TOKENS=1,32 GOPS_PRECISION=Int8
    let only: Option<String> = std::env::var("GOPS_BACKEND").ok();
    // GOPS_THREADS=N: time the parallel `matmul_q8_0` on a rayon pool of N threads instead.
    let threads: Option<usize> = std::env::var("GOPS_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    let pool = threads.map(|t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool")
    });
    let tokens_list: Vec<usize> = std::env::var("GOPS_TOKENS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|| TOKENS.to_vec());
    let only_precision: Option<String> = std::env::var("GOPS_PRECISION").ok();
    let unpacked = std::env::var_os("GOPS_UNPACKED").is_some();
    println!("int8 peak assumed: {peak:.0} GOP/s per core; best of 5 wall-clock samples");
    let mut seed = 1u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    for kern in Kernels::available() {
        if only.as_deref().is_some_and(|o| o != kern.name()) {
            continue;
        }
        for precision in [
            ActivationPrecision::Int8,
            ActivationPrecision::Int8x2,
            ActivationPrecision::F32,
        ] {
            if only_precision
                .as_deref()
                .is_some_and(|o| o != format!("{precision:?}"))
            {
                continue;
            }
            let packed =
                !unpacked && kern.supports_packed_q8_0() && precision != ActivationPrecision::F32;
            let layout = if packed { "packed" } else { "unpacked" };
            println!(
                "\nbackend {} precision {precision:?} ({layout} weights)",
                kern.name()
            );
            print!("{:>10}", "n x k");
            for &t in &tokens_list {
                print!(" {:>14}", format!("{t} tok"));
            }
            println!();
            for (n, k) in SHAPES {
                let wf: Vec<f32> = (0..n * k).map(|_| rnd() * 0.05).collect();
                let mut w = vec![BlockQ8_0::quantize(&[0.0; 32]); n * k / 32];
                quantize_q8_0(&wf, &mut w).unwrap();
                let wp = packed.then(|| kern.pack_q8_0(&w, n).unwrap());
                print!("{:>10}", format!("{n}x{k}"));
                for &tokens in &tokens_list {
                    let x: Vec<f32> = (0..tokens * k).map(|_| rnd()).collect();
                    let mut acts = QuantizedActivations::new();
                    let mut y = vec![0.0; tokens * n];
                    let ops = 2.0 * (n * k * tokens) as f64;
                    let mut best = f64::INFINITY;
                    let reps = ((2e8 / ops) as usize).clamp(1, 2000);
                    // The matmul alone: one quantization serves several matmuls (q/k/v,
                    // gate/up); `cargo bench -p q8-kernels -- quantize` times it.
                    kern.quantize_activations(&x, k, precision, &mut acts, Threads::Current)
                        .unwrap();
                    for _ in 0..5 {
                        let start = Instant::now();
                        for _ in 0..reps {
                            match (&pool, &wp) {
                                (Some(p), Some(wp)) => p.install(|| {
                                    kern.matmul_packed_q8_0(wp, &acts, &mut y, Threads::Current)
                                }),
                                (Some(p), None) => p.install(|| {
                                    kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Current)
                                }),
                                (None, Some(wp)) => {
                                    kern.matmul_packed_q8_0(wp, &acts, &mut y, Threads::Single)
                                }
                                (None, None) => {
                                    kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Single)
                                }
                            }
                            .unwrap();
                        }
                        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
                    }
                    let gops = ops / best / 1e9;
                    let eff = match precision {
                        ActivationPrecision::Int8 => gops / peak,
                        ActivationPrecision::Int8x2 => 2.0 * gops / peak,
                        ActivationPrecision::F32 => gops / (peak / 4.0),
                    };
                    print!(" {:>7.1} ({:>3.0}%)", gops, eff * 100.0);
                }
                println!();
            }
        }
    }
}
