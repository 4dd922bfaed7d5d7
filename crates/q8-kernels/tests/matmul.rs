//! Every backend this CPU runs against the scalar reference, and the precisions against f64.

mod common;

use common::{abs_bound, matmul_f64, q8_weights, Rng};
use half::{bf16, f16};
use q8_kernels::{
    ActivationPrecision, Backend, BlockQ8_0, KernelError, Kernels, PackedQ8_0,
    QuantizedActivations, Threads, QK8_0,
};

const PRECISIONS: [ActivationPrecision; 3] = [
    ActivationPrecision::Int8,
    ActivationPrecision::Int8x2,
    ActivationPrecision::F32,
];

fn scalar() -> Kernels {
    Kernels::with_backend(Backend::Scalar).unwrap()
}

/// Shapes covering 1 block, odd block counts, row counts not a multiple of any tile, token counts
/// not a multiple of any tile, and the model's k.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for &k in &[32, 64, 96, 224, 768] {
        for &n in &[1, 3, 4, 5, 8, 17, 33] {
            for &t in &[1, 2, 3, 4, 5, 7, 8, 9, 16, 33] {
                if k * n * t <= 768 * 17 * 33 {
                    v.push((n, k, t));
                }
            }
        }
    }
    v.push((70, 768, 40));
    v
}

/// `x` (`k` wide) quantized by `kern` at `precision`, and the scalar backend's product of the
/// same `x` with `w` (`n × k`), quantized by the scalar backend: the reference the SIMD products
/// are compared with.
fn quantized_and_reference(
    kern: &Kernels,
    w: &[BlockQ8_0],
    n: usize,
    k: usize,
    x: &[f32],
    precision: ActivationPrecision,
) -> (QuantizedActivations, Vec<f32>) {
    let reference = scalar();
    let mut acts_ref = QuantizedActivations::new();
    reference
        .quantize_activations(x, k, precision, &mut acts_ref, Threads::Current)
        .unwrap();
    let mut y_ref = vec![0.0; x.len() / k * n];
    reference
        .matmul_q8_0(w, n, &acts_ref, &mut y_ref, Threads::Single)
        .unwrap();
    let mut acts = QuantizedActivations::new();
    kern.quantize_activations(x, k, precision, &mut acts, Threads::Current)
        .unwrap();
    (acts, y_ref)
}

/// Each backend's Q8_0 matmul against the scalar one, for the same quantized activations.
///
/// Tolerance: the per-block integer dot products are exact in every backend, so the outputs can
/// differ only by the order of the f32 additions (blocks, lane partial sums, the two parts of
/// Int8x2, f32 products for `F32`). For a sum of at most `m` terms reassociation changes the
/// result by at most `2·m·ε·Σ|terms|`; `m ≤ k + 16` and `Σ|terms|` is bounded by
/// [`abs_bound`].
#[test]
fn q8_0_backends_match_scalar() {
    let mut rng = Rng::new(1);
    for kern in Kernels::available() {
        for (n, k, tokens) in shapes() {
            let (w, deq) = q8_weights(&mut rng, n, k);
            let x = rng.vec(tokens * k);
            let bound = abs_bound(&deq, n, k, &x);
            for precision in PRECISIONS {
                let (acts, y_ref) = quantized_and_reference(&kern, &w, n, k, &x, precision);
                for parallel in [false, true] {
                    let mut y = vec![f32::NAN; tokens * n];
                    if parallel {
                        kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Current)
                            .unwrap();
                    } else {
                        kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Single)
                            .unwrap();
                    }
                    if precision != ActivationPrecision::F32 {
                        // The int8 tiles do the scalar backend's operations in its order.
                        let same = y
                            .iter()
                            .zip(&y_ref)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{} {precision:?} n={n} k={k} tokens={tokens}: not bit-identical to scalar", kern.name());
                    }
                    for i in 0..y.len() {
                        let tol = 2.0 * (k + 16) as f64 * f64::from(f32::EPSILON) * bound[i];
                        let err = (f64::from(y[i]) - f64::from(y_ref[i])).abs();
                        assert!(
                            err <= tol,
                            "{} {precision:?} n={n} k={k} tokens={tokens} i={i}: {} vs scalar {} (tol {tol})",
                            kern.name(),
                            y[i],
                            y_ref[i]
                        );
                    }
                }
            }
        }
    }
}

/// Int8x2 and F32 activations are closer to the exact product (f64, dequantized weights) than
/// Int8, and each is within its own error bound.
#[test]
fn precise_paths_are_more_precise() {
    let mut rng = Rng::new(2);
    let (n, k, tokens) = (64, 768, 8);
    let (w, deq) = q8_weights(&mut rng, n, k);
    let x = rng.vec(tokens * k);
    let exact = matmul_f64(&deq, n, k, &x);
    let bound = abs_bound(&deq, n, k, &x);
    for kern in Kernels::available() {
        let mut err = [0.0f64; 3];
        for (pi, precision) in PRECISIONS.into_iter().enumerate() {
            let mut acts = QuantizedActivations::new();
            kern.quantize_activations(&x, k, precision, &mut acts, Threads::Current)
                .unwrap();
            let mut y = vec![0.0; tokens * n];
            kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Current)
                .unwrap();
            for i in 0..y.len() {
                let e = (f64::from(y[i]) - exact[i]).abs();
                // `bound` ≥ Σ|w|·(max|x block|/127). Per value, Int8 errs by ≤ d/2 =
                // (max/127)/2; Int8x2 by ≤ d/(2·254) = (max/127)/508; F32 not at all; plus the
                // f32 summation error ≤ 2·(k+16)·ε·bound for all three.
                let rnd = 2.0 * (k + 16) as f64 * f64::from(f32::EPSILON);
                let per_value_rel = match precision {
                    ActivationPrecision::Int8 => 0.5 + rnd,
                    ActivationPrecision::Int8x2 => 1.0 / 508.0 + rnd,
                    ActivationPrecision::F32 => rnd,
                };
                assert!(
                    e <= per_value_rel * bound[i] + 1e-6,
                    "{} {precision:?} i={i}",
                    kern.name()
                );
                err[pi] += e * e;
            }
        }
        assert!(
            err[1] * 100.0 < err[0],
            "{}: Int8x2 error {} not 10x below Int8 {}",
            kern.name(),
            err[1].sqrt(),
            err[0].sqrt()
        );
        assert!(err[2] * 100.0 < err[0], "{}: F32 vs Int8", kern.name());
    }
}

/// f32, f16 and bf16 weights: every backend against f64 (reassociation and the weights' own
/// rounding only, which the f64 reference applies too).
#[test]
fn float_weights_match_f64() {
    let mut rng = Rng::new(3);
    for kern in Kernels::available() {
        for &(n, k, tokens) in &[
            (1, 1, 1),
            (3, 5, 2),
            (17, 31, 3),
            (33, 100, 9),
            (64, 768, 5),
        ] {
            let w32 = rng.vec(n * k);
            let x = rng.vec(tokens * k);
            let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
            let wb16: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let cases: [(Vec<f32>, &str); 3] = [
                (w32.clone(), "f32"),
                (w16.iter().map(|v| v.to_f32()).collect(), "f16"),
                (wb16.iter().map(|v| v.to_f32()).collect(), "bf16"),
            ];
            for (wf, name) in cases {
                let exact = matmul_f64(&wf, n, k, &x);
                let abs: Vec<f64> = matmul_f64(
                    &wf.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                    n,
                    k,
                    &x.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                );
                for parallel in [false, true] {
                    let mut y = vec![f32::NAN; tokens * n];
                    match (name, parallel) {
                        ("f32", true) => kern.matmul_f32(&w32, n, k, &x, &mut y, Threads::Current),
                        ("f32", false) => kern.matmul_f32(&w32, n, k, &x, &mut y, Threads::Single),
                        ("f16", true) => kern.matmul_f16(&w16, n, k, &x, &mut y, Threads::Current),
                        ("f16", false) => kern.matmul_f16(&w16, n, k, &x, &mut y, Threads::Single),
                        ("bf16", true) => {
                            kern.matmul_bf16(&wb16, n, k, &x, &mut y, Threads::Current)
                        }
                        _ => kern.matmul_bf16(&wb16, n, k, &x, &mut y, Threads::Single),
                    }
                    .unwrap();
                    for i in 0..y.len() {
                        // f32 summation of k products: |error| ≤ (k+1)·ε·Σ|terms| (+ lane sums).
                        let tol = (k + 17) as f64 * f64::from(f32::EPSILON) * abs[i];
                        let err = (f64::from(y[i]) - exact[i]).abs();
                        assert!(
                            err <= tol,
                            "{} {name} n={n} k={k} t={tokens} i={i}",
                            kern.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn shape_errors() {
    let kern = q8_kernels::kernels().unwrap();
    let mut acts = QuantizedActivations::new();
    assert!(matches!(
        kern.quantize_activations(
            &[0.0; 48],
            48,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current
        ),
        Err(KernelError::NotBlockMultiple { .. })
    ));
    assert!(matches!(
        kern.quantize_activations(
            &[0.0; 96],
            64,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current
        ),
        Err(KernelError::NotMultiple { .. })
    ));
    let mut rng = Rng::new(4);
    let (w, _) = q8_weights(&mut rng, 4, 64);
    // Never quantized: a mismatch, not a panic.
    let mut y = vec![0.0; 4];
    assert!(matches!(
        kern.matmul_q8_0(&w, 4, &acts, &mut y, Threads::Current),
        Err(KernelError::BackendMismatch { .. })
    ));
    kern.quantize_activations(
        &rng.vec(64),
        64,
        ActivationPrecision::Int8,
        &mut acts,
        Threads::Current,
    )
    .unwrap();
    assert!(matches!(
        kern.matmul_q8_0(&w, 5, &acts, &mut y, Threads::Current),
        Err(KernelError::LengthMismatch { what: "w", .. })
    ));
    assert!(matches!(
        kern.matmul_q8_0(&w, 4, &acts, &mut y[..3], Threads::Current),
        Err(KernelError::LengthMismatch { what: "y", .. })
    ));
    assert!(matches!(
        kern.matmul_q8_0(&w, usize::MAX, &acts, &mut y, Threads::Current),
        Err(KernelError::Overflow { .. })
    ));
    // Activations quantized by another backend are refused.
    for other in Kernels::available() {
        if other.backend() != kern.backend() {
            let mut a2 = QuantizedActivations::new();
            other
                .quantize_activations(
                    &rng.vec(64),
                    64,
                    ActivationPrecision::Int8,
                    &mut a2,
                    Threads::Current,
                )
                .unwrap();
            assert!(matches!(
                kern.matmul_q8_0(&w, 4, &a2, &mut y, Threads::Current),
                Err(KernelError::BackendMismatch { .. })
            ));
        }
    }
    assert!(matches!(
        kern.matmul_f32(&[0.0; 6], 2, 3, &[0.0; 4], &mut [0.0; 2], Threads::Current),
        Err(KernelError::NotMultiple { .. })
    ));
}

#[test]
fn empty_inputs() {
    for kern in Kernels::available() {
        let mut acts = QuantizedActivations::new();
        kern.quantize_activations(
            &[],
            64,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        assert_eq!(acts.tokens(), 0);
        let mut rng = Rng::new(5);
        let (w, _) = q8_weights(&mut rng, 3, 64);
        kern.matmul_q8_0(&w, 3, &acts, &mut [], Threads::Current)
            .unwrap();
        kern.quantize_activations(
            &rng.vec(128),
            64,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        kern.matmul_q8_0(&[], 0, &acts, &mut [], Threads::Current)
            .unwrap();
    }
}

#[test]
fn backend_names_round_trip() {
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    assert_eq!(Backend::from_name("sse2"), None);
    // The scalar backend is available everywhere; detection picks something this CPU runs.
    assert!(Kernels::with_backend(Backend::Scalar).is_ok());
    let best = Kernels::detect();
    assert!(Kernels::with_backend(best.backend()).is_ok());
    #[cfg(target_arch = "x86_64")]
    {
        assert!(matches!(
            Kernels::with_backend(Backend::Neon),
            Err(KernelError::Unsupported { .. })
        ));
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert!(matches!(
            Kernels::with_backend(Backend::Avx2),
            Err(KernelError::Unsupported { .. })
        ));
    }
}

#[test]
fn quantize_q8_0_matches_ggml_rounding() {
    // max 127·0.5 → d = 0.5; 0.25/0.5 = 0.5 rounds away from zero to 1, -0.75/0.5 = -1.5 to -2.
    let mut x = [0.0f32; QK8_0];
    x[0] = 63.5;
    x[1] = 0.25;
    x[2] = -0.75;
    x[3] = -63.5;
    let b = q8_kernels::BlockQ8_0::quantize(&x);
    assert_eq!(b.d.to_f32(), 0.5);
    assert_eq!(&b.qs[..5], &[127, 1, -2, -127, 0]);
    let z = q8_kernels::BlockQ8_0::quantize(&[0.0; QK8_0]);
    assert_eq!(z.d.to_f32(), 0.0);
    assert_eq!(z.qs, [0; QK8_0]);
}

/// Packed weights give exactly the scalar backend's results on the unpacked weights, on every
/// backend that packs, for both int8 precisions, with and without threads; the packing is
/// lossless.
#[test]
fn packed_q8_0_matches_scalar() {
    let mut rng = Rng::new(7);
    let packers: Vec<Kernels> = Kernels::available()
        .into_iter()
        .filter(Kernels::supports_packed_q8_0)
        .collect();
    for kern in &packers {
        let mut shapes = shapes();
        shapes.extend([(16, 768, 9), (48, 1152, 13), (35, 64, 64), (1152, 768, 4)]);
        for (n, k, tokens) in shapes {
            let (w, _) = q8_weights(&mut rng, n, k);
            let packed = kern.pack_q8_0(&w, n).unwrap();
            assert_eq!((packed.rows(), packed.k()), (n, k));
            for (i, blk) in w.iter().enumerate() {
                assert_eq!(packed.block(i / (k / QK8_0), i % (k / QK8_0)), *blk);
            }
            let x = rng.vec(tokens * k);
            for precision in [ActivationPrecision::Int8, ActivationPrecision::Int8x2] {
                let (acts, y_ref) = quantized_and_reference(kern, &w, n, k, &x, precision);
                for parallel in [false, true] {
                    let mut y = vec![f32::NAN; tokens * n];
                    if parallel {
                        kern.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Current)
                            .unwrap();
                    } else {
                        kern.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Single)
                            .unwrap();
                    }
                    let first_diff = y
                        .iter()
                        .zip(&y_ref)
                        .position(|(a, b)| a.to_bits() != b.to_bits());
                    assert_eq!(
                        first_diff,
                        None,
                        "{} packed {precision:?} n={n} k={k} tokens={tokens} parallel={parallel}",
                        kern.name()
                    );
                }
            }
        }
    }
}

/// Packing is refused where there is no packed kernel, and packed products check their inputs.
#[test]
fn packed_q8_0_errors() {
    let mut rng = Rng::new(8);
    let (w, _) = q8_weights(&mut rng, 20, 64);
    assert!(!scalar().supports_packed_q8_0());
    assert_eq!(
        scalar().pack_q8_0(&w, 20).unwrap_err(),
        KernelError::Unsupported {
            backend: Backend::Scalar
        }
    );
    for kern in Kernels::available()
        .into_iter()
        .filter(Kernels::supports_packed_q8_0)
    {
        assert!(matches!(
            kern.pack_q8_0(&w, 3),
            Err(KernelError::NotMultiple { .. })
        ));
        assert!(matches!(
            kern.pack_q8_0(&w, 0),
            Err(KernelError::NotMultiple { .. })
        ));
        let packed = kern.pack_q8_0(&w, 20).unwrap();
        let x = rng.vec(3 * 64);
        let mut acts = QuantizedActivations::new();
        let mut y = vec![0.0; 3 * 20];
        // Never quantized.
        assert!(matches!(
            kern.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Current),
            Err(KernelError::BackendMismatch { .. })
        ));
        kern.quantize_activations(
            &x,
            64,
            ActivationPrecision::F32,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        assert_eq!(
            kern.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Current),
            Err(KernelError::PackedNeedsInt8 {
                precision: Some(ActivationPrecision::F32)
            })
        );
        kern.quantize_activations(
            &x,
            64,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        assert!(matches!(
            kern.matmul_packed_q8_0(&packed, &acts, &mut y[1..], Threads::Current),
            Err(KernelError::LengthMismatch { what: "y", .. })
        ));
        // Activations of another k.
        kern.quantize_activations(
            &x,
            32,
            ActivationPrecision::Int8,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        assert!(matches!(
            kern.matmul_packed_q8_0(&packed, &acts, &mut vec![0.0; 6 * 20], Threads::Current),
            Err(KernelError::LengthMismatch { what: "acts.k", .. })
        ));
        // Activations of another backend.
        scalar()
            .quantize_activations(
                &x,
                64,
                ActivationPrecision::Int8,
                &mut acts,
                Threads::Current,
            )
            .unwrap();
        assert!(matches!(
            kern.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Current),
            Err(KernelError::BackendMismatch { .. })
        ));
        // Weights packed by another backend are refused by the others.
        for other in Kernels::available() {
            if other.backend() != kern.backend() {
                other
                    .quantize_activations(
                        &x,
                        64,
                        ActivationPrecision::Int8,
                        &mut acts,
                        Threads::Current,
                    )
                    .unwrap();
                assert!(matches!(
                    other.matmul_packed_q8_0(&packed, &acts, &mut y, Threads::Current),
                    Err(KernelError::PackedForOtherBackend { .. })
                ));
            }
        }
    }
}

/// Several packed products in one parallel region equal the products one by one.
#[test]
fn packed_many_matches_one_by_one() {
    let mut rng = Rng::new(9);
    for kern in Kernels::available()
        .into_iter()
        .filter(Kernels::supports_packed_q8_0)
    {
        for tokens in [1, 4, 37] {
            let k = 96;
            let ns = [48, 16, 5, 0, 33];
            let packed: Vec<_> = ns
                .iter()
                .filter(|&&n| n > 0)
                .map(|&n| kern.pack_q8_0(&q8_weights(&mut rng, n, k).0, n).unwrap())
                .collect();
            let x = rng.vec(tokens * k);
            let mut acts = QuantizedActivations::new();
            kern.quantize_activations(
                &x,
                k,
                ActivationPrecision::Int8x2,
                &mut acts,
                Threads::Current,
            )
            .unwrap();
            let mut one: Vec<Vec<f32>> = packed
                .iter()
                .map(|w| vec![0.0; tokens * w.rows()])
                .collect();
            for (w, y) in packed.iter().zip(one.iter_mut()) {
                kern.matmul_packed_q8_0(w, &acts, y, Threads::Single)
                    .unwrap();
            }
            let mut many: Vec<Vec<f32>> = packed
                .iter()
                .map(|w| vec![f32::NAN; tokens * w.rows()])
                .collect();
            let refs: Vec<&PackedQ8_0> = packed.iter().collect();
            kern.matmul_packed_q8_0_many(
                &refs,
                &acts,
                many.iter_mut().map(|y| y.as_mut_slice()).collect(),
            )
            .unwrap();
            assert_eq!(one, many, "{} tokens={tokens}", kern.name());
            // Outputs must match the products.
            assert!(matches!(
                kern.matmul_packed_q8_0_many(&refs[..1], &acts, vec![]),
                Err(KernelError::LengthMismatch { what: "ys", .. })
            ));
        }
    }
}

/// A packed matrix read back from its bytes (as from a cache file) multiplies exactly like the
/// original, and bad ranges are refused.
#[test]
fn packed_q8_0_from_shared_bytes() {
    let mut rng = Rng::new(10);
    for kern in Kernels::available()
        .into_iter()
        .filter(Kernels::supports_packed_q8_0)
    {
        let (n, k, tokens) = (37, 96, 5);
        let (w, _) = q8_weights(&mut rng, n, k);
        let packed = kern.pack_q8_0(&w, n).unwrap();
        assert_eq!(Some(packed.as_bytes().len()), PackedQ8_0::byte_len(n, k));
        // 64 bytes of something else first, as in a file with a header.
        let mut file = vec![0u8; 64];
        file.extend_from_slice(packed.as_bytes());
        // Owned 64-byte-aligned storage: copy into aligned memory.
        #[repr(C, align(64))]
        struct Line([u8; 64]);
        let aligned: Vec<Line> = file
            .chunks(64)
            .map(|c| {
                let mut a = [0u8; 64];
                a[..c.len()].copy_from_slice(c);
                Line(a)
            })
            .collect();
        struct Aligned(Vec<Line>);
        impl AsRef<[u8]> for Aligned {
            fn as_ref(&self) -> &[u8] {
                // SAFETY: `Line` is 64 plain bytes without padding.
                unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 64) }
            }
        }
        let owner: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> =
            std::sync::Arc::new(Aligned(aligned));
        let len = packed.as_bytes().len();
        let shared =
            PackedQ8_0::from_shared(kern.backend(), n, k, owner.clone(), 64..64 + len).unwrap();
        let x = rng.vec(tokens * k);
        let mut acts = QuantizedActivations::new();
        kern.quantize_activations(
            &x,
            k,
            ActivationPrecision::Int8x2,
            &mut acts,
            Threads::Current,
        )
        .unwrap();
        let (mut y1, mut y2) = (vec![0.0; tokens * n], vec![1.0; tokens * n]);
        kern.matmul_packed_q8_0(&packed, &acts, &mut y1, Threads::Current)
            .unwrap();
        kern.matmul_packed_q8_0(&shared, &acts, &mut y2, Threads::Current)
            .unwrap();
        assert_eq!(y1, y2);
        // Wrong length, outside the owner, misaligned, unsupported backend.
        assert!(
            PackedQ8_0::from_shared(kern.backend(), n, k, owner.clone(), 64..63 + len).is_err()
        );
        assert!(
            PackedQ8_0::from_shared(kern.backend(), n + 16, k, owner.clone(), 64..64 + len)
                .is_err()
        );
        assert!(PackedQ8_0::from_shared(kern.backend(), n, k, owner.clone(), 1..1 + len).is_err());
        assert!(
            PackedQ8_0::from_shared(kern.backend(), 2 * n, k, owner.clone(), 64..64 + 2 * len)
                .is_err()
        );
        assert_eq!(
            PackedQ8_0::from_shared(Backend::Scalar, n, k, owner, 64..64 + len).unwrap_err(),
            KernelError::Unsupported {
                backend: Backend::Scalar
            }
        );
    }
}
