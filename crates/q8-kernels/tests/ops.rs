//! The f32 layer pieces of every backend this CPU runs against straightforward f64 references.
//!
//! Tolerances: these are short f32 computations (a few roundings per value, sums of ≤ 2·10³
//! terms), so relative errors stay far below 1e-5 of the magnitudes involved; the exp/tanh of the
//! SIMD backends are polynomial approximations accurate to a few ulp.

mod common;

use common::Rng;
use q8_kernels::{AttentionPrecision, AttentionSpec, KernelError, Kernels, RopeTable, Threads};

fn close(a: f32, b: f64, tol: f64) -> bool {
    (f64::from(a) - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn dot_and_l2() {
    let mut rng = Rng::new(10);
    for kern in Kernels::available() {
        for len in 0..=70 {
            let a = rng.vec(len);
            let b = rng.vec(len);
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let abs: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from((x * y).abs()))
                .sum();
            let got = kern.dot(&a, &b).unwrap();
            assert!(
                (f64::from(got) - exact).abs() <= 1e-6 * abs + 1e-30,
                "{} len {len}",
                kern.name()
            );

            let mut v = a.clone();
            kern.l2_normalize(&mut v);
            let norm: f64 = a
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            for (o, &x) in v.iter().zip(&a) {
                let want = if norm > 0.0 { f64::from(x) / norm } else { 0.0 };
                assert!(close(*o, want, 1e-6), "{} l2 len {len}", kern.name());
            }
        }
        assert!(matches!(
            kern.dot(&[1.0], &[]),
            Err(KernelError::LengthMismatch { .. })
        ));
        let mut z = vec![0.0; 5];
        kern.l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 5]);
    }
}

#[test]
fn rms_norm() {
    let mut rng = Rng::new(11);
    for kern in Kernels::available() {
        for dim in [1, 2, 7, 16, 17, 64, 255, 768] {
            let rows = 3;
            let x = rng.vec(rows * dim);
            let w = rng.vec(dim);
            let eps = 1e-6;
            let mut out = vec![0.0; x.len()];
            kern.rms_norm(&x, &w, eps, &mut out).unwrap();
            let mut inplace = x.clone();
            kern.rms_norm_inplace(&mut inplace, &w, eps).unwrap();
            for r in 0..rows {
                let xr = &x[r * dim..(r + 1) * dim];
                let ms: f64 = xr.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / dim as f64;
                let inv = 1.0 / (ms + f64::from(eps)).sqrt();
                for j in 0..dim {
                    let want = f64::from(xr[j]) * inv * f64::from(w[j]);
                    assert!(
                        close(out[r * dim + j], want, 2e-6),
                        "{} dim {dim}",
                        kern.name()
                    );
                    assert!(
                        close(inplace[r * dim + j], want, 2e-6),
                        "{} dim {dim}",
                        kern.name()
                    );
                }
            }
        }
        let mut out = vec![0.0; 5];
        assert!(kern.rms_norm(&[0.0; 5], &[1.0; 2], 1e-6, &mut out).is_err());
    }
}

fn gelu_tanh_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

#[test]
fn geglu() {
    let mut rng = Rng::new(12);
    for kern in Kernels::available() {
        for len in (0..=40).chain([1152, 1153]) {
            let mut gate = rng.vec(len);
            if len > 3 {
                gate[0] = -30.0;
                gate[1] = 30.0;
                gate[2] = 0.0;
            }
            let up = rng.vec(len);
            let mut out = vec![0.0; len];
            kern.geglu(&gate, &up, &mut out).unwrap();
            for i in 0..len {
                let want = gelu_tanh_f64(f64::from(gate[i])) * f64::from(up[i]);
                assert!(
                    close(out[i], want, 1e-5),
                    "{} len {len} i {i}: {} vs {want}",
                    kern.name(),
                    out[i]
                );
            }
        }
    }
}

#[test]
fn softmax() {
    let mut rng = Rng::new(13);
    for kern in Kernels::available() {
        for len in 0..=70 {
            let x: Vec<f32> = rng.vec(len).iter().map(|v| v * 10.0).collect();
            let mut y = x.clone();
            kern.softmax(&mut y);
            let max = x
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let sum: f64 = x.iter().map(|&v| (f64::from(v) - max).exp()).sum();
            for i in 0..len {
                let want = (f64::from(x[i]) - max).exp() / sum;
                assert!(
                    (f64::from(y[i]) - want).abs() <= 1e-6 * want.max(1e-3),
                    "{} len {len}",
                    kern.name()
                );
            }
        }
    }
}

fn rope_f64(x: &[f32], base: f64, pos: usize) -> Vec<f64> {
    let d = x.len();
    let half = d / 2;
    let mut out = vec![0.0; d];
    for i in 0..half {
        let theta = pos as f64 * base.powf(-2.0 * i as f64 / d as f64);
        let (x0, x1) = (f64::from(x[i]), f64::from(x[i + half]));
        out[i] = x0 * theta.cos() - x1 * theta.sin();
        out[i + half] = x0 * theta.sin() + x1 * theta.cos();
    }
    out
}

#[test]
fn rope() {
    let mut rng = Rng::new(14);
    for kern in Kernels::available() {
        for (d, base) in [(2usize, 10000.0f32), (8, 10000.0), (256, 1e6), (256, 1e4)] {
            let table = RopeTable::new(d, base, 600).unwrap();
            for pos in [0, 1, 7, 255, 599] {
                let x = rng.vec(d);
                let mut y = x.clone();
                kern.rope_neox(&mut y, &table, pos).unwrap();
                let want = rope_f64(&x, f64::from(base), pos);
                for i in 0..d {
                    // cos/sin of angles up to ~600 rad in f32: ~600·2⁻²⁴ absolute.
                    assert!(
                        close(y[i], want[i], 1e-5),
                        "{} d {d} pos {pos} i {i}",
                        kern.name()
                    );
                }
            }
            // Whole sequence: 3 heads, token t at position t.
            let (seq, heads) = (5, 3);
            let x = rng.vec(seq * heads * d);
            let mut y = x.clone();
            kern.rope_neox_seq(&mut y, heads, &table).unwrap();
            for t in 0..seq {
                for h in 0..heads {
                    let o = (t * heads + h) * d;
                    let want = rope_f64(&x[o..o + d], f64::from(base), t);
                    for i in 0..d {
                        assert!(close(y[o + i], want[i], 1e-5));
                    }
                }
            }
            let mut y = vec![0.0; d];
            assert!(matches!(
                kern.rope_neox(&mut y, &table, 600),
                Err(KernelError::PositionOutOfRange { .. })
            ));
        }
        assert!(RopeTable::new(3, 1e4, 4).is_err());
    }
}

/// Exact attention in f64, and a bound on the f32 rounding error of each output: a score
/// `scale·q·k` summed in f32 errs by `|Δs| ≤ (d+2)·ε·scale·Σ|q_i k_i|`, which changes each
/// softmax weight by a factor `exp(±2·max|Δs|)`; the weighted sum of values adds
/// `(keys + d)·ε` relative to `Σ p_j |v_j|`.
fn attention_f64(q: &[f32], k: &[f32], v: &[f32], spec: &AttentionSpec) -> (Vec<f64>, Vec<f64>) {
    let (seq, nh, nkv, d) = (spec.seq_len, spec.n_heads, spec.n_kv_heads, spec.head_dim);
    let (scale, window) = (spec.scale, spec.window);
    let eps = f64::from(f32::EPSILON);
    let mut out = vec![0.0; seq * nh * d];
    let mut bound = vec![0.0; seq * nh * d];
    for h in 0..nh {
        let kvh = h / (nh / nkv);
        for i in 0..seq {
            let qv = &q[(i * nh + h) * d..(i * nh + h + 1) * d];
            let keys: Vec<usize> = (0..seq)
                .filter(|&j| window.is_none_or(|w| i.abs_diff(j) <= w))
                .collect();
            let mut ds_max = 0.0f64;
            let s: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    let kv = &k[(j * nkv + kvh) * d..(j * nkv + kvh + 1) * d];
                    let abs: f64 = qv
                        .iter()
                        .zip(kv)
                        .map(|(&a, &b)| f64::from(a * b).abs())
                        .sum();
                    ds_max = ds_max.max((d + 2) as f64 * eps * f64::from(scale) * abs);
                    qv.iter()
                        .zip(kv)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>()
                        * f64::from(scale)
                })
                .collect();
            let m = s.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let e: Vec<f64> = s.iter().map(|&x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            let rel = (2.0 * ds_max).exp_m1() + (keys.len() + d + 4) as f64 * eps;
            for (p, &j) in e.iter().zip(&keys) {
                let vv = &v[(j * nkv + kvh) * d..(j * nkv + kvh + 1) * d];
                for c in 0..d {
                    out[(i * nh + h) * d + c] += p / z * f64::from(vv[c]);
                    bound[(i * nh + h) * d + c] += p / z * f64::from(vv[c]).abs() * rel;
                }
            }
        }
    }
    (out, bound)
}

/// The spec of a test case `(seq, nh, nkv, d, window)` with scale `1/√d`.
fn spec(
    (seq_len, n_heads, n_kv_heads, head_dim, window): (usize, usize, usize, usize, Option<usize>),
    precision: AttentionPrecision,
) -> AttentionSpec {
    AttentionSpec {
        seq_len,
        n_heads,
        n_kv_heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        window,
        precision,
    }
}

/// `kern`'s attention of `spec` over the current rayon pool or on the calling thread.
fn run_attention(
    kern: &Kernels,
    (q, k, v): (&[f32], &[f32], &[f32]),
    spec: &AttentionSpec,
    parallel: bool,
) -> Vec<f32> {
    let mut out = vec![f32::NAN; spec.seq_len * spec.n_heads * spec.head_dim];
    if parallel {
        kern.attention(q, k, v, spec, &mut out, Threads::Current)
    } else {
        kern.attention(q, k, v, spec, &mut out, Threads::Single)
    }
    .unwrap();
    out
}

#[test]
fn attention() {
    let mut rng = Rng::new(15);
    for kern in Kernels::available() {
        for &case in &[
            (1, 1, 1, 4, None),
            (5, 3, 1, 8, Some(1)),
            (17, 3, 1, 16, None),
            (17, 4, 2, 16, Some(4)),
            (40, 3, 1, 256, Some(7)),
            (40, 2, 2, 32, Some(0)),
            (70, 3, 1, 64, Some(100)),
        ] {
            let (seq, nh, nkv, d, window) = case;
            let spec = spec(case, AttentionPrecision::F32);
            let q = rng.vec(seq * nh * d);
            let k = rng.vec(seq * nkv * d);
            let v = rng.vec(seq * nkv * d);
            let (want, bound) = attention_f64(&q, &k, &v, &spec);
            for parallel in [false, true] {
                let out = run_attention(&kern, (&q, &k, &v), &spec, parallel);
                for i in 0..out.len() {
                    assert!(
                        (f64::from(out[i]) - want[i]).abs() <= 2.0 * bound[i] + 1e-30,
                        "{} seq {seq} nh {nh} d {d} w {window:?} i {i}: {} vs {}",
                        kern.name(),
                        out[i],
                        want[i]
                    );
                }
            }
        }
        let mut out = vec![0.0; 8];
        let bad = spec((1, 2, 3, 4, None), AttentionPrecision::F32);
        assert!(matches!(
            kern.attention(
                &[0.0; 8],
                &[0.0; 4],
                &[0.0; 4],
                &bad,
                &mut out,
                Threads::Current
            ),
            Err(KernelError::InvalidShape { .. })
        ));
    }
}

/// `x` rounded to bf16 (round to nearest even), as f32.
fn round_bf16(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect()
}

/// bf16 attention: exactly `attention` where the CPU has no bf16 path (or the head dimension is
/// not a multiple of 32); elsewhere the exact attention of the bf16-rounded q, k and v, within
/// the f32 bound plus the rounding of the probabilities (relative 2⁻⁸ of Σ p·|v| ≤ max |v|).
#[test]
fn attention_bf16() {
    let mut rng = Rng::new(17);
    for kern in Kernels::available() {
        for &case in &[
            (1, 1, 1, 32, None),
            (5, 3, 1, 8, Some(1)),
            (17, 3, 1, 64, None),
            (17, 4, 2, 96, Some(4)),
            (40, 3, 1, 256, Some(7)),
            (70, 3, 1, 256, Some(100)),
            (33, 2, 2, 32, Some(0)),
        ] {
            let (seq, nh, nkv, d, window) = case;
            let (f32_spec, bf16_spec) = (
                spec(case, AttentionPrecision::F32),
                spec(case, AttentionPrecision::Bf16),
            );
            let q = rng.vec(seq * nh * d);
            let k = rng.vec(seq * nkv * d);
            let v = rng.vec(seq * nkv * d);
            let exact = run_attention(&kern, (&q, &k, &v), &f32_spec, false);
            let rounds = kern.has_bf16_attention() && d % 32 == 0;
            let (want, bound) =
                attention_f64(&round_bf16(&q), &round_bf16(&k), &round_bf16(&v), &f32_spec);
            let v_max = v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
            for parallel in [false, true] {
                let f32_out = run_attention(&kern, (&q, &k, &v), &f32_spec, parallel);
                assert_eq!(f32_out, exact, "{}: F32 is the f32 attention", kern.name());
                let out = run_attention(&kern, (&q, &k, &v), &bf16_spec, parallel);
                if !rounds {
                    assert_eq!(out, exact, "{} d {d}: not the f32 attention", kern.name());
                    continue;
                }
                assert_ne!(
                    out,
                    exact,
                    "{} d {d}: the bf16 path did not run",
                    kern.name()
                );
                for i in 0..out.len() {
                    let tol = 2.0 * bound[i] + v_max / 256.0;
                    assert!(
                        (f64::from(out[i]) - want[i]).abs() <= tol,
                        "{} seq {seq} nh {nh} d {d} w {window:?} i {i}: {} vs {} (tol {tol})",
                        kern.name(),
                        out[i],
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn mean_pool() {
    let mut rng = Rng::new(16);
    for kern in Kernels::available() {
        for (rows, dim) in [(0, 3), (1, 768), (5, 17), (33, 64)] {
            let x = rng.vec(rows * dim);
            let mut out = vec![f32::NAN; dim];
            kern.mean_pool(&x, &mut out).unwrap();
            for j in 0..dim {
                let want = if rows == 0 {
                    0.0
                } else {
                    (0..rows).map(|r| f64::from(x[r * dim + j])).sum::<f64>() / rows as f64
                };
                assert!(close(out[j], want, 1e-6), "{} rows {rows}", kern.name());
            }
        }
    }
}
