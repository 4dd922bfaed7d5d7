//! Int8 (Q8_0) and f32 transformer kernels with runtime CPU dispatch: AVX-512 VNNI, AVX2, NEON,
//! scalar.
//!
//! This crate holds the arithmetic of an embedding transformer: matrix products with Q8_0, f32,
//! f16 and bf16 weights, and the f32 pieces of a layer (RMSNorm, GeGLU, softmax, NeoX RoPE,
//! bidirectional windowed attention with grouped KV heads, mean pooling, L2 normalisation). It
//! does not know about GGUF: weights come in as slices.
//!
//! # Backends
//!
//! [`kernels()`] picks the fastest [`Backend`] the CPU supports once per process (run-time
//! detection, so a stock build uses AVX-512 VNNI where the CPU has it) and caches it. The
//! environment variable `Q8_KERNELS_BACKEND=scalar|avx2|avx512vnni|neon|neon-dotprod` forces one;
//! a name the CPU or the build cannot run is an error, never a silent fallback.
//! [`Kernels::with_backend`] builds a specific one (tests, benchmarks).
//!
//! | backend | Q8_0 × int8 activations | Q8_0 × f32 activations, float weights | f32 ops |
//! |---|---|---|---|
//! | `avx512vnni` | packed weights ([`PackedQ8_0`]): 16 rows × 8 tokens `VPDPBUSD` tiles; unpacked: the AVX2 kernel | 4 × 4 FMA tiles | AVX-512 (attention as tiles; bf16 `VDPBF16PS` tiles with AVX512_BF16, [`AttentionPrecision`]) |
//! | `avx2` | packed weights: 16 rows × 4 tokens `VPMADDUBSW` tiles (`Int8x2`: 16 rows × 2 tokens of 16-bit `VPMADDWD`); unpacked: 4 rows × 2 tokens | 4 × 4 FMA tiles (8 wide) | dot, axpy, GeGLU, softmax and activation quantization in AVX2, rest scalar |
//! | `neon`, `neon-dotprod` | 2 × 2, `SMULL`/`SADALP` or `SDOT` | scalar | dot, axpy, GeGLU, softmax and activation quantization in NEON, rest scalar |
//! | `scalar` | plain Rust reference | plain Rust | plain Rust |
//!
//! Every SIMD backend's Q8_0 × int8 result is bit-identical to the scalar one for the same
//! quantized activations (exact block integers, then `fma(I, dw·da, acc)` in block order).
//! Weights are used in place, except where [`Kernels::supports_packed_q8_0`] says the backend
//! has a faster kernel for a packed copy: [`Kernels::pack_q8_0`] makes it once (the same size as
//! the original), [`Kernels::matmul_packed_q8_0`] multiplies with it. The activation layout is
//! chosen by the backend when [`Kernels::quantize_activations`] runs, so a
//! [`QuantizedActivations`] only works with the `Kernels` that filled it.
//!
//! # Which activation precision
//!
//! [`ActivationPrecision::Int8`] is llama.cpp's choice and the fastest;
//! [`ActivationPrecision::Int8x2`] keeps ~16 bits of every activation, for twice the int8 work
//! with VNNI and NEON and about 1.2 times with AVX2, whose 16-bit multiply-add runs at the rate
//! of its 8-bit one; [`ActivationPrecision::F32`] is exact and runs on the FMA units. The GOP/s
//! of each are in `BENCHMARKS.md` (`examples/gops.rs`, `examples/roofline.rs`,
//! `benches/matmul.rs`).
//!
//! # Layouts
//!
//! * A weight matrix with GGUF shape `ne = [k, n]` is `n` rows of `k` values, row-major; for
//!   Q8_0, row `r` is `w[r*k/32 .. (r+1)*k/32]`.
//! * Activations `x` are `tokens × k`, row-major; outputs `y` are `tokens × n`, `y[t*n + r]`.
//! * Every matmul computes `y = x · Wᵀ`.
//!
//! # Threads
//!
//! `matmul_*`, [`Kernels::attention`] and [`Kernels::quantize_activations`] take a [`Threads`]:
//! [`Threads::Current`] splits their work over the current rayon pool (install a pool with
//! `ThreadPool::install` to bound it), or over a [`Team`] installed on the calling thread
//! ([`Team::install`]): its helpers stay awake between the ~120 parallel regions of a short text
//! instead of sleeping and being woken for each (4–7 % faster at 32–128 tokens on two threads).
//! [`Threads::Single`] runs on the calling thread, for callers that parallelise over texts. The
//! work is split into the same tasks either way, so results are the same.
//!
//! # How the crate is laid out
//!
//! One trait, `Kernel` (`src/kernel.rs`), lists every operation a backend may compute its own
//! way; its provided methods are the scalar reference (`src/scalar.rs`), so a backend overrides
//! what it speeds up, visibly, in its `impl Kernel` block, and the scalar backend overrides
//! nothing. The packed int8 product has no reference to fall back on: a backend that offers it
//! implements `PackedKernel`, whose product is a required method. [`Kernels`] checks every
//! argument, then calls the chosen backend through one dispatch point (`src/detect.rs`, which
//! also detects the CPU's features and reads `Q8_KERNELS_BACKEND`).
//!
//! | module | holds |
//! |---|---|
//! | `lib.rs` | [`Kernels`]: the checked entry points |
//! | `kernel.rs` | the `Kernel` and `PackedKernel` traits |
//! | `detect.rs` | [`Backend`], [`kernels()`], [`kernels_for()`], the dispatch from a backend's CPU-feature token to its `Kernel` |
//! | `error.rs` | [`KernelError`] and the shape checks |
//! | `scalar.rs` | the scalar backend: the reference of every operation |
//! | `x86_64/avx2*.rs`, `x86_64/avx512*.rs`, `aarch64/neon.rs` | the SIMD backends (leaf kernels and their `impl Kernel`) |
//! | `acts.rs`, `block.rs`, `packed.rs` | activation quantization, the Q8_0 block, packed weights |
//! | `attention.rs`, `rope.rs` | [`AttentionSpec`], the query-block split and the reference loop; [`RopeTable`] |
//! | `split.rs`, `team.rs` | [`Threads`] and the row splitter of the products; [`Team`] |
//!
//! A new backend is its module (a token type with `detect()` and `impl Kernel`), a
//! [`Backend`] variant, and its arms in `detect.rs`.
//!
//! # Example
//!
//! ```
//! use q8_kernels::{
//!     dequantize_q8_0, kernels, quantize_q8_0, ActivationPrecision, BlockQ8_0, QuantizedActivations,
//!     Threads,
//! };
//!
//! # fn main() -> Result<(), q8_kernels::KernelError> {
//! let kern = kernels()?;
//! let (n, k, tokens) = (4, 64, 2);
//! let w_f32: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect();
//! let mut w = vec![BlockQ8_0::quantize(&[0.0; 32]); n * k / 32];
//! quantize_q8_0(&w_f32, &mut w)?;
//! let x: Vec<f32> = (0..tokens * k).map(|i| (i % 5) as f32 * 0.25).collect();
//!
//! let mut acts = QuantizedActivations::new();
//! kern.quantize_activations(&x, k, ActivationPrecision::Int8x2, &mut acts, Threads::Current)?;
//! let mut y = vec![0.0; tokens * n];
//! kern.matmul_q8_0(&w, n, &acts, &mut y, Threads::Current)?;
//!
//! // The same product with the dequantized weights in f32.
//! let mut w_deq = vec![0.0; n * k];
//! dequantize_q8_0(&w, &mut w_deq)?;
//! let mut y_ref = vec![0.0; tokens * n];
//! kern.matmul_f32(&w_deq, n, k, &x, &mut y_ref, Threads::Single)?;
//! for (a, b) in y.iter().zip(&y_ref) {
//!     assert!((a - b).abs() < 1e-3 * b.abs().max(1.0));
//! }
//! println!("backend: {}", kern.name());
//! # Ok(())
//! # }
//! ```

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod acts;
mod attention;
mod block;
mod detect;
mod error;
mod kernel;
mod packed;
mod rope;
mod scalar;
mod split;
mod team;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use half::{bf16, f16};

pub use acts::{ActivationPrecision, QuantizedActivations};
pub use attention::{AttentionPrecision, AttentionSpec};
pub use block::{dequantize_q8_0, quantize_q8_0, BlockQ8_0, QK8_0};
pub use detect::{kernels, kernels_for, Backend, BACKEND_ENV};
pub use error::KernelError;
pub use packed::{PackedQ8_0, PACK_ROWS};
pub use rope::RopeTable;
pub use split::Threads;
pub use team::Team;

pub(crate) use error::check_len;
use error::{check_rows, mul};
use kernel::{FloatWeights, Kernel};
use split::{for_row_chunks, for_row_chunks_many};

/// The kernels of one backend. Get the process-wide choice with [`kernels()`].
///
/// Every method checks its arguments, then runs the backend's implementation of the operation
/// (the scalar reference for operations the backend does not speed up).
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    imp: detect::Imp,
}

impl Kernels {
    /// The backend's operations.
    fn kernel(&self) -> &dyn Kernel {
        self.imp.kernel()
    }

    /// Which backend these kernels are.
    pub fn backend(&self) -> Backend {
        self.kernel().backend()
    }

    /// The backend's name (`"avx512vnni"`, ...).
    pub fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// Quantizes `x` (`tokens × k`, row-major) for `precision` into `out`, in this backend's
    /// layout. `k` must be a non-zero multiple of 32 for the int8 precisions and non-zero for `F32`.
    /// Large inputs are split over the current team or rayon pool unless `threads` is
    /// [`Threads::Single`]; the result is the same on any number of threads.
    pub fn quantize_activations(
        &self,
        x: &[f32],
        k: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
        threads: Threads,
    ) -> Result<(), KernelError> {
        if k == 0 || !k.is_multiple_of(QK8_0) {
            return Err(KernelError::NotBlockMultiple { what: "k", len: k });
        }
        if !x.len().is_multiple_of(k) {
            return Err(KernelError::NotMultiple {
                what: "x",
                len: x.len(),
                of: k,
            });
        }
        let tokens = x.len() / k;
        if precision == ActivationPrecision::F32 {
            acts::quantize_portable(x, k, tokens, precision, out, threads.parallel());
        } else {
            self.kernel()
                .quantize_int8(x, k, tokens, precision, out, threads);
        }
        out.backend = Some(self.backend());
        Ok(())
    }

    /// `BackendMismatch` unless `acts` were quantized by these kernels.
    fn check_acts_backend(&self, acts: &QuantizedActivations) -> Result<(), KernelError> {
        if acts.backend == Some(self.backend()) {
            Ok(())
        } else {
            Err(KernelError::BackendMismatch {
                quantized_by: acts.backend.map_or("none", Backend::name),
                used_with: self.name(),
            })
        }
    }

    /// `y = x · Wᵀ` with Q8_0 weights `w` (`n` rows of `acts.k()` values) and activations
    /// quantized by [`Kernels::quantize_activations`]; `y` is `tokens × n`. Splits the rows over
    /// the current team or rayon pool unless `threads` is [`Threads::Single`].
    pub fn matmul_q8_0(
        &self,
        w: &[BlockQ8_0],
        n: usize,
        acts: &QuantizedActivations,
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        self.check_acts_backend(acts)?;
        check_len("w", w.len(), mul("w", n, acts.blocks_per_token())?)?;
        check_len("y", y.len(), mul("y", n, acts.tokens)?)?;
        let kernel = self.kernel();
        for_row_chunks(n, acts.tokens, y, threads, |rows, out| {
            kernel.matmul_q8_0(w, rows, acts, out)
        });
        Ok(())
    }

    /// Whether this backend has a kernel for [`PackedQ8_0`] weights (AVX-512 VNNI, AVX2). Where it
    /// has, packing the weights once ([`Kernels::pack_q8_0`]) makes the int8 products faster;
    /// elsewhere use [`Kernels::matmul_q8_0`] on the weights as they are.
    pub fn supports_packed_q8_0(&self) -> bool {
        self.kernel().packed().is_some()
    }

    /// Packs the Q8_0 matrix `w` (`n` rows of `w.len()/n` blocks) for this backend's int8
    /// kernel (see [`PackedQ8_0`]); the packed copy takes as much memory as `w`. Splits the work
    /// over the current rayon pool.
    ///
    /// Errors with `Unsupported` if the backend has no packed kernel
    /// ([`Kernels::supports_packed_q8_0`]), and on shapes that do not fit.
    pub fn pack_q8_0(&self, w: &[BlockQ8_0], n: usize) -> Result<PackedQ8_0, KernelError> {
        let Some(packed) = self.kernel().packed() else {
            return Err(KernelError::Unsupported {
                backend: self.backend(),
            });
        };
        if n == 0 || w.is_empty() || !w.len().is_multiple_of(n) {
            return Err(KernelError::NotMultiple {
                what: "w",
                len: w.len(),
                of: n,
            });
        }
        let nb = w.len() / n;
        packed::pack(self.backend(), w, n, nb, |rows, gq, gd| {
            packed.pack_group(rows, gq, gd)
        })
    }

    /// Checks `w`, `acts` and `y` of a packed matmul; returns the packed kernel.
    fn check_packed(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &[f32],
    ) -> Result<&dyn kernel::PackedKernel, KernelError> {
        let packed = self.kernel().packed();
        let Some(packed) = packed.filter(|_| w.backend == self.backend()) else {
            return Err(KernelError::PackedForOtherBackend {
                packed_for: w.backend.name(),
                used_with: self.name(),
            });
        };
        self.check_acts_backend(acts)?;
        if !matches!(
            acts.precision,
            Some(ActivationPrecision::Int8 | ActivationPrecision::Int8x2)
        ) {
            return Err(KernelError::PackedNeedsInt8 {
                precision: acts.precision,
            });
        }
        check_len("acts.k", acts.k, w.k)?;
        check_len("y", y.len(), mul("y", w.rows, acts.tokens)?)?;
        Ok(packed)
    }

    /// `y = x · Wᵀ` with packed Q8_0 weights (`w.rows()` rows of `w.k()` values) and `Int8` or
    /// `Int8x2` activations quantized by [`Kernels::quantize_activations`] with these kernels;
    /// `y` is `tokens × rows`. Bit-identical to [`Kernels::matmul_q8_0`] on the unpacked
    /// weights. Splits the rows over the current team or rayon pool unless `threads` is
    /// [`Threads::Single`].
    pub fn matmul_packed_q8_0(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        let packed = self.check_packed(w, acts, y)?;
        for_row_chunks(w.rows, acts.tokens, y, threads, |rows, out| {
            packed.matmul_packed(w, rows, acts, out)
        });
        Ok(())
    }

    /// Several [`Kernels::matmul_packed_q8_0`] products of the same activations in one
    /// parallel region: `ys[i] = x · ws[i]ᵀ`. Cheaper than one call per product when each is
    /// small (q, k and v of a short sequence), as the threads meet once instead of once per
    /// product.
    pub fn matmul_packed_q8_0_many(
        &self,
        ws: &[&PackedQ8_0],
        acts: &QuantizedActivations,
        ys: Vec<&mut [f32]>,
    ) -> Result<(), KernelError> {
        check_len("ys", ys.len(), ws.len())?;
        let mut packed = None;
        for (w, y) in ws.iter().zip(&ys) {
            packed = Some(self.check_packed(w, acts, y)?);
        }
        let Some(packed) = packed else {
            return Ok(());
        };
        let ns: Vec<usize> = ws.iter().map(|w| w.rows).collect();
        for_row_chunks_many(&ns, acts.tokens, ys, Threads::Current, |i, rows, out| {
            packed.matmul_packed(ws[i], rows, acts, out)
        });
        Ok(())
    }

    /// Checks and runs a float-weight matmul of `n` rows of `k` values.
    fn matmul_float(
        &self,
        w: FloatWeights<'_>,
        w_len: usize,
        (n, k): (usize, usize),
        x: &[f32],
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        if k == 0 {
            return Err(KernelError::InvalidShape { reason: "k is 0" });
        }
        check_len("w", w_len, mul("w", n, k)?)?;
        if !x.len().is_multiple_of(k) {
            return Err(KernelError::NotMultiple {
                what: "x",
                len: x.len(),
                of: k,
            });
        }
        let tokens = x.len() / k;
        check_len("y", y.len(), mul("y", n, tokens)?)?;
        let kernel = self.kernel();
        for_row_chunks(n, tokens, y, threads, |rows, out| {
            kernel.matmul_float(w, k, rows, x, out)
        });
        Ok(())
    }

    /// `y = x · Wᵀ` with f32 weights `w` (`n × k`), `x` `tokens × k`, `y` `tokens × n`.
    /// Splits the rows over the current team or rayon pool unless `threads` is
    /// [`Threads::Single`].
    pub fn matmul_f32(
        &self,
        w: &[f32],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        self.matmul_float(FloatWeights::F32(w), w.len(), (n, k), x, y, threads)
    }

    /// [`Kernels::matmul_f32`] with f16 weights.
    pub fn matmul_f16(
        &self,
        w: &[f16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        self.matmul_float(FloatWeights::F16(w), w.len(), (n, k), x, y, threads)
    }

    /// [`Kernels::matmul_f32`] with bf16 weights.
    pub fn matmul_bf16(
        &self,
        w: &[bf16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        self.matmul_float(FloatWeights::Bf16(w), w.len(), (n, k), x, y, threads)
    }

    /// `Σ a[i]·b[i]`.
    pub fn dot(&self, a: &[f32], b: &[f32]) -> Result<f32, KernelError> {
        check_len("b", b.len(), a.len())?;
        Ok(self.kernel().dot(a, b))
    }

    /// RMSNorm of each row of `x` (rows of `weight.len()` values):
    /// `out = x / sqrt(mean(x²) + eps) * weight`.
    pub fn rms_norm(
        &self,
        x: &[f32],
        weight: &[f32],
        eps: f32,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        check_rows("x", x.len(), weight.len())?;
        check_len("out", out.len(), x.len())?;
        out.copy_from_slice(x);
        self.kernel().rms_norm(out, weight, eps);
        Ok(())
    }

    /// [`Kernels::rms_norm`] in place.
    pub fn rms_norm_inplace(
        &self,
        x: &mut [f32],
        weight: &[f32],
        eps: f32,
    ) -> Result<(), KernelError> {
        check_rows("x", x.len(), weight.len())?;
        self.kernel().rms_norm(x, weight, eps);
        Ok(())
    }

    /// `out = gelu_tanh(gate) * up`, with ggml's (and PyTorch's `approximate="tanh"`) GELU
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    pub fn geglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
        check_len("up", up.len(), gate.len())?;
        check_len("out", out.len(), gate.len())?;
        self.kernel().geglu(gate, up, out);
        Ok(())
    }

    /// In-place softmax of `x` (max-subtracted; an empty slice is left alone).
    pub fn softmax(&self, x: &mut [f32]) {
        self.kernel().softmax(x);
    }

    /// NeoX-style RoPE of one head `x` (`table.head_dim()` values) at position `pos`: element `i`
    /// of the first half and element `i` of the second half rotate by `pos · base^(−2i/d)`.
    pub fn rope_neox(
        &self,
        x: &mut [f32],
        table: &RopeTable,
        pos: usize,
    ) -> Result<(), KernelError> {
        rope::head(self.kernel(), x, table, pos)
    }

    /// NeoX RoPE of a whole sequence: `x` is `seq × n_heads × head_dim`, token `t` at position `t`.
    pub fn rope_neox_seq(
        &self,
        x: &mut [f32],
        n_heads: usize,
        table: &RopeTable,
    ) -> Result<(), KernelError> {
        rope::sequence(self.kernel(), x, n_heads, table)
    }

    /// Bidirectional multi-head attention with grouped KV heads, shaped by `spec` (see
    /// [`AttentionSpec`]): `q` and `out` are `seq_len × n_heads × head_dim`, `k` and `v` are
    /// `seq_len × n_kv_heads × head_dim`. Splits query blocks over the current team or rayon
    /// pool unless `threads` is [`Threads::Single`].
    pub fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spec: &AttentionSpec,
        out: &mut [f32],
        threads: Threads,
    ) -> Result<(), KernelError> {
        attention::check(q, k, v, spec, out)?;
        if spec.seq_len == 0 {
            return Ok(());
        }
        self.kernel().attention(q, k, v, spec, out, threads);
        Ok(())
    }

    /// Whether [`AttentionPrecision::Bf16`] rounds to bf16 here (AVX-512 VNNI backend on a CPU
    /// with AVX512_BF16), rather than computing exactly like [`Kernels::attention`].
    pub fn has_bf16_attention(&self) -> bool {
        self.kernel().has_bf16_attention()
    }

    /// `out[j] = mean over rows of x[row*dim + j]`; `x` is `rows × dim` with `dim = out.len()`.
    /// An empty `x` gives zeros.
    pub fn mean_pool(&self, x: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
        let dim = out.len();
        check_rows("x", x.len(), dim)?;
        out.fill(0.0);
        if dim == 0 {
            return Ok(());
        }
        let rows = x.len() / dim;
        for r in x.chunks_exact(dim) {
            for (o, &v) in out.iter_mut().zip(r) {
                *o += v;
            }
        }
        if rows > 0 {
            let inv = 1.0 / rows as f32;
            for o in out.iter_mut() {
                *o *= inv;
            }
        }
        Ok(())
    }

    /// Scales `x` to unit L2 norm (a zero vector stays zero).
    pub fn l2_normalize(&self, x: &mut [f32]) {
        let norm = self.dot(x, x).unwrap_or(0.0).sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            for v in x.iter_mut() {
                *v *= inv;
            }
        }
    }

    /// `a[i] += b[i]` (residual connections).
    pub fn add_assign(&self, a: &mut [f32], b: &[f32]) -> Result<(), KernelError> {
        check_len("b", b.len(), a.len())?;
        for (x, &y) in a.iter_mut().zip(b) {
            *x += y;
        }
        Ok(())
    }

    /// `x[i] *= s`.
    pub fn scale(&self, x: &mut [f32], s: f32) {
        for v in x.iter_mut() {
            *v *= s;
        }
    }
}
