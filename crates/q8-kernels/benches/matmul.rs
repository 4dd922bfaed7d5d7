//! Single-thread Q8_0 matmul benchmarks on EmbeddingGemma's shapes, per backend and activation
//! precision. Throughput is reported in elements = ops (2·n·k·tokens), so criterion's
//! "Gelem/s" reads as GOP/s.
//!
//! `cargo bench -p q8-kernels --bench matmul [-- FILTER]`, e.g. `-- avx512vnni/Int8/`.
//! The scalar backend is benched at 1 and 4 tokens only (it is the reference, not a contender).
//! Quantizing the activations is benched separately (`quantize/…`): one quantization serves
//! several matmuls (q/k/v, gate/up).
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use q8_kernels::{
    quantize_q8_0, ActivationPrecision, AttentionPrecision, AttentionSpec, Backend, BlockQ8_0,
    Kernels, QuantizedActivations, Threads,
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
const PRECISIONS: [ActivationPrecision; 3] = [
    ActivationPrecision::Int8,
    ActivationPrecision::Int8x2,
    ActivationPrecision::F32,
];

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn matmul(c: &mut Criterion) {
    for kern in Kernels::available() {
        let tokens_list: &[usize] = if kern.backend() == Backend::Scalar {
            &[1, 4]
        } else {
            &TOKENS
        };
        for precision in PRECISIONS {
            let mut group = c.benchmark_group(format!("{}/{precision:?}", kern.name()));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
            for (n, k) in SHAPES {
                let wf: Vec<f32> = values(n * k, 7).iter().map(|v| v * 0.05).collect();
                let mut w = vec![BlockQ8_0::quantize(&[0.0; 32]); n * k / 32];
                quantize_q8_0(&wf, &mut w).expect("whole blocks");
                for &tokens in tokens_list {
                    let x = values(tokens * k, 11);
                    let mut acts = QuantizedActivations::new();
                    kern.quantize_activations(&x, k, precision, &mut acts, Threads::Current)
                        .expect("valid shape");
                    let mut y = vec![0.0; tokens * n];
                    group.throughput(Throughput::Elements(2 * (n * k * tokens) as u64));
                    group.bench_function(BenchmarkId::new(format!("{n}x{k}"), tokens), |b| {
                        b.iter(|| {
                            kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Single)
                                .expect("valid shape")
                        })
                    });
                    if kern.supports_packed_q8_0() && precision != ActivationPrecision::F32 {
                        let wp = kern.pack_q8_0(&w, n).expect("valid shape");
                        let id = BenchmarkId::new(format!("{n}x{k}-packed"), tokens);
                        group.bench_function(id, |b| {
                            b.iter(|| {
                                kern.matmul_packed_q8_0(&wp, &acts, &mut y, Threads::Single)
                                    .expect("valid shape")
                            })
                        });
                    }
                }
            }
            group.finish();
        }
    }
}

fn quantize(c: &mut Criterion) {
    let k = 768;
    let tokens = 128;
    let x = values(tokens * k, 3);
    for kern in Kernels::available() {
        let mut group = c.benchmark_group(format!("quantize/{}", kern.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements((tokens * k) as u64));
        for precision in PRECISIONS {
            let mut acts = QuantizedActivations::new();
            group.bench_function(format!("{precision:?}/{tokens}x{k}"), |b| {
                b.iter(|| {
                    kern.quantize_activations(&x, k, precision, &mut acts, Threads::Current)
                        .expect("valid shape")
                })
            });
        }
        group.finish();
    }
}

/// EmbeddingGemma's attention over 512 tokens (3 query heads, 1 KV head, dim 256), local
/// (window 256) and global; single thread.
fn attention(c: &mut Criterion) {
    let (seq, nh, nkv, d) = (512, 3, 1, 256);
    let q = values(seq * nh * d, 5);
    let k = values(seq * nkv * d, 6);
    let v = values(seq * nkv * d, 8);
    let mut out = vec![0.0; seq * nh * d];
    for kern in Kernels::available() {
        if kern.backend() == Backend::Scalar {
            continue;
        }
        let mut group = c.benchmark_group(format!("attention/{}", kern.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        for window in [Some(256), None] {
            let name = format!("{seq}x{nh}x{d}/window-{window:?}");
            let spec = AttentionSpec {
                seq_len: seq,
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: d,
                scale: 0.0625,
                window,
                precision: AttentionPrecision::F32,
            };
            group.bench_function(name, |b| {
                b.iter(|| {
                    kern.attention(&q, &k, &v, &spec, &mut out, Threads::Single)
                        .expect("valid shape")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, matmul, quantize, attention);
criterion_main!(benches);
