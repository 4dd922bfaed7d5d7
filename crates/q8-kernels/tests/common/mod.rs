//! Shared helpers for the integration tests: a deterministic generator and f64 references.
#![allow(dead_code)]

use q8_kernels::{quantize_q8_0, BlockQ8_0, QK8_0};

/// xorshift64*: deterministic, dependency-free test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Roughly normal (sum of 4 uniforms), with occasional outliers like transformer activations.
    pub fn activation(&mut self) -> f32 {
        let v = (self.uniform() + self.uniform() + self.uniform() + self.uniform()) * 0.9;
        if self.next_u64().is_multiple_of(97) {
            v * 20.0
        } else {
            v
        }
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.activation()).collect()
    }
}

/// Random Q8_0 weights `n × k` and their dequantized f32 values.
pub fn q8_weights(rng: &mut Rng, n: usize, k: usize) -> (Vec<BlockQ8_0>, Vec<f32>) {
    let raw: Vec<f32> = (0..n * k).map(|_| rng.uniform() * 0.1).collect();
    let mut w = vec![BlockQ8_0::quantize(&[0.0; QK8_0]); n * k / QK8_0];
    quantize_q8_0(&raw, &mut w).unwrap();
    let deq: Vec<f32> = w.iter().flat_map(|b| b.dequantize()).collect();
    (w, deq)
}

/// `y[t*n + r] = Σ_j w[r*k + j] x[t*k + j]` in f64.
pub fn matmul_f64(w: &[f32], n: usize, k: usize, x: &[f32]) -> Vec<f64> {
    let tokens = x.len() / k;
    let mut y = vec![0.0; tokens * n];
    for t in 0..tokens {
        for r in 0..n {
            y[t * n + r] = (0..k)
                .map(|j| f64::from(w[r * k + j]) * f64::from(x[t * k + j]))
                .sum();
        }
    }
    y
}

/// `Σ_j |w[r*k + j]| · (|x[t*k + j]| + max|x block| / 127)`: bounds the sum of the absolute values
/// of the terms any of the kernels adds up for output `(t, r)`.
pub fn abs_bound(w: &[f32], n: usize, k: usize, x: &[f32]) -> Vec<f64> {
    let tokens = x.len() / k;
    let mut y = vec![0.0; tokens * n];
    for t in 0..tokens {
        let xt = &x[t * k..(t + 1) * k];
        for r in 0..n {
            let mut s = 0.0f64;
            for (b, xb) in xt.chunks_exact(QK8_0).enumerate() {
                let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (j, &xv) in xb.iter().enumerate() {
                    let wv = w[r * k + b * QK8_0 + j];
                    s += f64::from(wv.abs()) * (f64::from(xv.abs()) + f64::from(amax) / 127.0);
                }
            }
            y[t * n + r] = s;
        }
    }
    y
}
