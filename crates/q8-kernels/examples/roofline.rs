//! The ceiling of an int8 Q8_0 kernel on this core: GOP/s of the bare inner-loop instruction
//! sequence, on registers only (no loads, no scales), for the AVX2 kernels.
//!
//! `cargo run --release -p q8-kernels --example roofline`
//!
//! One "step" is the work of 4 values × 8 rows × 1 token (32 multiply-adds = 64 ops) in the
//! packed AVX2 tile: `VPSIGNB`, `VPMADDUBSW`, `VPMADDWD` (by ones), `VPADDD`. The sequence runs
//! on 8 independent accumulators (more than the latency × throughput product), so it measures
//! throughput. Compare with `examples/gops.rs`, which times the real kernels.

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::run();
    #[cfg(not(target_arch = "x86_64"))]
    println!("roofline: only the x86-64 AVX2 sequence is measured here");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::time::Instant;

    /// Steps per call of [`steps`].
    const ITERS: usize = 1 << 22;

    pub fn run() {
        if !is_x86_feature_detected!("avx2") {
            println!("roofline: this CPU has no AVX2");
            return;
        }
        let mut best = f64::INFINITY;
        let mut sink = 0i32;
        for _ in 0..7 {
            let t = Instant::now();
            // SAFETY: AVX2 was detected above.
            sink = sink.wrapping_add(unsafe { steps(ITERS) });
            best = best.min(t.elapsed().as_secs_f64());
        }
        let step_ops = 64.0 * 8.0 * ITERS as f64; // 8 accumulators per iteration
        println!(
            "AVX2 sign + maddubs + madd + add: {:.1} GOP/s on one core (int8 multiply-adds x 2), \
             {:.2} ns per 8-row x 4-value step  [{sink}]",
            step_ops / best / 1e9,
            best * 1e9 / (8.0 * ITERS as f64)
        );
        let mut best = f64::INFINITY;
        for _ in 0..7 {
            let t = Instant::now();
            // SAFETY: AVX2 was detected above.
            sink = sink.wrapping_add(unsafe { maddubs_only(ITERS) });
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "AVX2 maddubs + madd + add (no sign): {:.1} GOP/s  [{sink}]",
            step_ops / best / 1e9
        );
    }

    /// `iters` × 8 independent steps of the packed tile's inner sequence.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    unsafe fn steps(iters: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let w = _mm256_set1_epi32(0x0102_fd04);
        let mag = _mm256_abs_epi8(w);
        let mut x = _mm256_set1_epi32(0x0305_0709);
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                let p = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(x, w));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
            }
            // A dependency the compiler cannot hoist, off the critical path.
            x = core::hint::black_box(x);
        }
        let s = acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &a| _mm256_add_epi32(s, a));
        _mm256_extract_epi32::<0>(s)
    }

    /// The same without `VPSIGNB` (what a layout with unsigned activations would need).
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    unsafe fn maddubs_only(iters: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let mag = _mm256_set1_epi32(0x0102_0304);
        let mut x = _mm256_set1_epi32(0x0305_0709);
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                let p = _mm256_maddubs_epi16(mag, x);
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
            }
            x = core::hint::black_box(x);
        }
        let s = acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &a| _mm256_add_epi32(s, a));
        _mm256_extract_epi32::<0>(s)
    }
}
