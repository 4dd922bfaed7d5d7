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
//! `matmul_*`, [`Kernels::attention`] and [`Kernels::quantize_activations`] split their work over
//! the current rayon pool (install a pool with `ThreadPool::install` to bound it), or over a
//! [`Team`] installed on the calling thread ([`Team::install`]): its helpers stay awake between
//! the ~120 parallel regions of a short text instead of sleeping and being woken for each (4–7 %
//! faster at 32–128 tokens on two threads). The work is split into the same tasks either way, so
//! results are the same. The `*_single_thread` forms run on the calling thread, for callers that
//! parallelise over texts.
//!
//! # Example
//!
//! ```
//! use q8_kernels::{
//!     dequantize_q8_0, kernels, quantize_q8_0, ActivationPrecision, BlockQ8_0, QuantizedActivations,
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
//! kern.quantize_activations(&x, k, ActivationPrecision::Int8x2, &mut acts)?;
//! let mut y = vec![0.0; tokens * n];
//! kern.matmul_q8_0(&w, n, &acts, &mut y)?;
//!
//! // The same product with the dequantized weights in f32.
//! let mut w_deq = vec![0.0; n * k];
//! dequantize_q8_0(&w, &mut w_deq)?;
//! let mut y_ref = vec![0.0; tokens * n];
//! kern.matmul_f32(&w_deq, n, k, &x, &mut y_ref)?;
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
mod block;
mod packed;
mod scalar;
mod team;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use core::ops::Range;
use std::sync::OnceLock;

use half::{bf16, f16};

pub use acts::{ActivationPrecision, QuantizedActivations};
pub use block::{dequantize_q8_0, quantize_q8_0, BlockQ8_0, QK8_0};
pub use packed::{PackedQ8_0, PACK_ROWS};
pub use team::Team;

/// Errors of this crate: shapes and lengths that do not fit, and backends that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A slice does not have the length the other arguments imply.
    #[error("`{what}` has length {len}, expected {expected}")]
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length the other arguments imply.
        expected: usize,
    },
    /// A length that must be a multiple of something is not.
    #[error("`{what}` has length {len}, which is not a multiple of {of}")]
    NotMultiple {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
        /// What it must be a multiple of.
        of: usize,
    },
    /// A Q8_0 row length is not a multiple of the 32-value block.
    #[error("`{what}` has length {len}, which is not a multiple of 32 (the Q8_0 block size)")]
    NotBlockMultiple {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A shape's element count does not fit in `usize`.
    #[error("the shape of `{what}` overflows usize")]
    Overflow {
        /// Which argument.
        what: &'static str,
    },
    /// A shape parameter is invalid (for example zero heads, or heads not a multiple of KV heads).
    #[error("invalid shape: {reason}")]
    InvalidShape {
        /// What is wrong.
        reason: &'static str,
    },
    /// The requested backend cannot run on this CPU or was not built for this architecture.
    #[error("backend `{}` is not supported on this CPU/architecture", backend.name())]
    Unsupported {
        /// The backend asked for.
        backend: Backend,
    },
    /// `Q8_KERNELS_BACKEND` names no backend.
    #[error("Q8_KERNELS_BACKEND={name:?} is not a backend; use scalar, avx2, avx512vnni, neon or neon-dotprod")]
    UnknownBackend {
        /// The value found.
        name: String,
    },
    /// The activations were quantized by a different backend or for no/another shape.
    #[error("activations were quantized by backend `{quantized_by}`, but are used with `{used_with}`; quantize with the same `Kernels`")]
    BackendMismatch {
        /// The backend that quantized them (`none` if never quantized).
        quantized_by: &'static str,
        /// The backend of the matmul.
        used_with: &'static str,
    },
    /// Packed weights were made for another backend.
    #[error("weights were packed for backend `{packed_for}`, but are used with `{used_with}`; pack with the same `Kernels`")]
    PackedForOtherBackend {
        /// The backend the weights were packed for.
        packed_for: &'static str,
        /// The backend of the matmul.
        used_with: &'static str,
    },
    /// Packed weights need int8 activations (`Int8` or `Int8x2`).
    #[error("packed Q8_0 weights need Int8 or Int8x2 activations, got {precision:?}")]
    PackedNeedsInt8 {
        /// The activations' precision (`None`: never quantized).
        precision: Option<ActivationPrecision>,
    },
    /// A RoPE position beyond the table.
    #[error("RoPE position {pos} is beyond the table's {max_pos} positions")]
    PositionOutOfRange {
        /// The position asked for.
        pos: usize,
        /// The table's number of positions.
        max_pos: usize,
    },
}

/// The operand precision of [`Kernels::attention`] ([`AttentionSpec::precision`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttentionPrecision {
    /// f32 throughout.
    F32,
    /// Scores and `P·V` from bf16-rounded operands where the CPU has AVX512_BF16.
    Bf16,
}

/// The shape of one [`Kernels::attention`] call: `seq_len` positions of `n_heads` query heads
/// that share `n_kv_heads` key/value heads (query head `h` uses KV head
/// `h / (n_heads / n_kv_heads)`), `head_dim` values each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Positions (tokens).
    pub seq_len: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` must be a multiple).
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Scores are `scale · q·k`.
    pub scale: f32,
    /// Query `i` attends to keys `j` with `|i − j| <= w` for `Some(w)` (keys outside the window
    /// are never touched), else to all keys.
    pub window: Option<usize>,
    /// With [`AttentionPrecision::Bf16`] the scores `q·k` and the products `P·V` are computed from
    /// operands rounded to bf16 (8-bit mantissas, sums in f32) on CPUs with AVX512_BF16, at twice
    /// the multiply-adds per instruction of f32 (llama.cpp rounds K and V to f16 the same way);
    /// elsewhere, and for head dimensions that are not a multiple of 32, exactly like
    /// [`AttentionPrecision::F32`] ([`Kernels::has_bf16_attention`]).
    pub precision: AttentionPrecision,
}

/// `Err(LengthMismatch)` unless `len == expected`.
pub(crate) fn check_len(
    what: &'static str,
    len: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if len == expected {
        Ok(())
    } else {
        Err(KernelError::LengthMismatch {
            what,
            len,
            expected,
        })
    }
}

/// `a * b`, or `Overflow { what }`.
fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, KernelError> {
    a.checked_mul(b).ok_or(KernelError::Overflow { what })
}

/// A kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable Rust, the reference.
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI.
    Avx512Vnni,
    /// aarch64 NEON without the dot-product extension.
    Neon,
    /// aarch64 NEON with `sdot` (the `dotprod` extension).
    NeonDotprod,
}

impl Backend {
    /// Every backend, fastest first within each architecture.
    pub const ALL: [Backend; 5] = [
        Backend::Avx512Vnni,
        Backend::Avx2,
        Backend::NeonDotprod,
        Backend::Neon,
        Backend::Scalar,
    ];

    /// The name used by `Q8_KERNELS_BACKEND` and printed by tools.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512Vnni => "avx512vnni",
            Backend::Neon => "neon",
            Backend::NeonDotprod => "neon-dotprod",
        }
    }

    /// The backend called `name` (as in `Q8_KERNELS_BACKEND`), if any.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A proof that a backend can run here; each SIMD variant carries its CPU-feature token.
#[derive(Clone, Copy, Debug)]
enum Imp {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni(x86_64::avx512vnni::Avx512Vnni),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86_64::avx2::Avx2),
    #[cfg(target_arch = "aarch64")]
    Neon(aarch64::neon::Neon),
    #[cfg(target_arch = "aarch64")]
    NeonDotprod(aarch64::neon::NeonDotprod),
}

/// The kernels of one backend. Get the process-wide choice with [`kernels()`].
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    imp: Imp,
}

/// The environment variable that forces a backend.
pub const BACKEND_ENV: &str = "Q8_KERNELS_BACKEND";

/// The kernels for this process: the backend named by `Q8_KERNELS_BACKEND` if set, else the
/// fastest one the CPU supports. Detected once and cached.
///
/// Errors if the variable names an unknown backend or one this CPU cannot run.
pub fn kernels() -> Result<&'static Kernels, KernelError> {
    static CHOICE: OnceLock<Result<Kernels, KernelError>> = OnceLock::new();
    CHOICE
        .get_or_init(|| match std::env::var(BACKEND_ENV) {
            Ok(name) if !name.is_empty() => {
                let b = Backend::from_name(&name).ok_or(KernelError::UnknownBackend { name })?;
                Kernels::with_backend(b)
            }
            _ => Ok(Kernels::detect()),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The kernels of `backend` for this process, made once and cached (for callers that hold a
/// `&'static Kernels` and want a backend other than the process-wide choice, such as tests that
/// run every backend the CPU has).
///
/// Errors with `Unsupported` if this CPU or build cannot run `backend`.
pub fn kernels_for(backend: Backend) -> Result<&'static Kernels, KernelError> {
    static EACH: [OnceLock<Result<Kernels, KernelError>>; Backend::ALL.len()] =
        [const { OnceLock::new() }; Backend::ALL.len()];
    let i = Backend::ALL
        .iter()
        .position(|&b| b == backend)
        .ok_or(KernelError::Unsupported { backend })?;
    EACH[i]
        .get_or_init(|| Kernels::with_backend(backend))
        .as_ref()
        .map_err(Clone::clone)
}

impl Kernels {
    /// The fastest backend this CPU supports (ignores `Q8_KERNELS_BACKEND`).
    pub fn detect() -> Kernels {
        Backend::ALL
            .into_iter()
            .find_map(|b| Kernels::with_backend(b).ok())
            .unwrap_or(Kernels { imp: Imp::Scalar })
    }

    /// The kernels of `backend`, or `Unsupported` if this CPU/build cannot run it.
    pub fn with_backend(backend: Backend) -> Result<Kernels, KernelError> {
        let imp = match backend {
            Backend::Scalar => Some(Imp::Scalar),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Vnni => x86_64::avx512vnni::Avx512Vnni::detect().map(Imp::Avx512Vnni),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86_64::avx2::Avx2::detect().map(Imp::Avx2),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => aarch64::neon::Neon::detect().map(Imp::Neon),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod => aarch64::neon::NeonDotprod::detect().map(Imp::NeonDotprod),
            _ => None,
        };
        imp.map(|imp| Kernels { imp })
            .ok_or(KernelError::Unsupported { backend })
    }

    /// Every backend this CPU can run (for tests and benchmarks).
    pub fn available() -> Vec<Kernels> {
        Backend::ALL
            .into_iter()
            .filter_map(|b| Kernels::with_backend(b).ok())
            .collect()
    }

    /// Which backend these kernels are.
    pub fn backend(&self) -> Backend {
        match self.imp {
            Imp::Scalar => Backend::Scalar,
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(_) => Backend::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(_) => Backend::Avx2,
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(_) => Backend::Neon,
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(_) => Backend::NeonDotprod,
        }
    }

    /// The backend's name (`"avx512vnni"`, ...).
    pub fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// Quantizes `x` (`tokens × k`, row-major) for `precision` into `out`, in this backend's
    /// layout. `k` must be a non-zero multiple of 32 for the int8 precisions and non-zero for `F32`.
    /// Large inputs are split over the current rayon pool; the result is the same on any number
    /// of threads.
    pub fn quantize_activations(
        &self,
        x: &[f32],
        k: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
    ) -> Result<(), KernelError> {
        self.quantize_activations_impl(x, k, precision, out, true)
    }

    /// [`Kernels::quantize_activations`] on the calling thread only.
    pub fn quantize_activations_single_thread(
        &self,
        x: &[f32],
        k: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
    ) -> Result<(), KernelError> {
        self.quantize_activations_impl(x, k, precision, out, false)
    }

    fn quantize_activations_impl(
        &self,
        x: &[f32],
        k: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
        parallel: bool,
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
        let int8 = precision != ActivationPrecision::F32;
        match self.imp {
            // The packed kernel's layout: the portable one plus the block corrections.
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) if int8 => {
                let block = |x: &_, hi: &mut _, lo: Option<&mut _>| t.quantize_block(x, hi, lo);
                acts::quantize_int8(x, k, tokens, precision, out, parallel, true, &block)
            }
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) if int8 => {
                let block =
                    |x: &_, hi: &mut _, lo: Option<&mut _>| (t.quantize_block(x, hi, lo), 0, 0);
                acts::quantize_int8(x, k, tokens, precision, out, parallel, false, &block)
            }
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) if int8 => {
                let block =
                    |x: &_, hi: &mut _, lo: Option<&mut _>| (t.quantize_block(x, hi, lo), 0, 0);
                acts::quantize_int8(x, k, tokens, precision, out, parallel, false, &block)
            }
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) if int8 => {
                let block =
                    |x: &_, hi: &mut _, lo: Option<&mut _>| (t.quantize_block(x, hi, lo), 0, 0);
                acts::quantize_int8(x, k, tokens, precision, out, parallel, false, &block)
            }
            _ => acts::quantize_portable(x, k, tokens, precision, out, parallel),
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

    /// Checks `w`, `n`, `acts` and `y` of a Q8_0 matmul.
    fn check_q8_0(
        &self,
        w: &[BlockQ8_0],
        n: usize,
        acts: &QuantizedActivations,
        y: &[f32],
    ) -> Result<(), KernelError> {
        self.check_acts_backend(acts)?;
        check_len("w", w.len(), mul("w", n, acts.blocks_per_token())?)?;
        check_len("y", y.len(), mul("y", n, acts.tokens)?)
    }

    /// `y = x · Wᵀ` with Q8_0 weights `w` (`n` rows of `acts.k()` values) and activations
    /// quantized by [`Kernels::quantize_activations`]; `y` is `tokens × n`. Splits the rows over
    /// the current rayon pool.
    pub fn matmul_q8_0(
        &self,
        w: &[BlockQ8_0],
        n: usize,
        acts: &QuantizedActivations,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.check_q8_0(w, n, acts, y)?;
        for_row_chunks(n, acts.tokens, y, true, |rows, out| {
            self.q8_0_rows(w, rows, acts, out)
        });
        Ok(())
    }

    /// [`Kernels::matmul_q8_0`] on the calling thread only.
    pub fn matmul_q8_0_single_thread(
        &self,
        w: &[BlockQ8_0],
        n: usize,
        acts: &QuantizedActivations,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.check_q8_0(w, n, acts, y)?;
        for_row_chunks(n, acts.tokens, y, false, |rows, out| {
            self.q8_0_rows(w, rows, acts, out)
        });
        Ok(())
    }

    /// The Q8_0 kernel for a range of rows; `out[t]` is token `t`'s part of `y` for those rows.
    fn q8_0_rows(
        &self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.matmul_q8_0(w, rows, acts, out),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.matmul_q8_0(w, rows, acts, out),
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) => t.matmul_q8_0(w, rows, acts, out),
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) => t.matmul_q8_0(w, rows, acts, out),
            _ => scalar::matmul_q8_0(w, rows, acts, out),
        }
    }

    /// Whether this backend has a kernel for [`PackedQ8_0`] weights (AVX-512 VNNI, AVX2). Where it
    /// has, packing the weights once ([`Kernels::pack_q8_0`]) makes the int8 products faster;
    /// elsewhere use [`Kernels::matmul_q8_0`] on the weights as they are.
    pub fn supports_packed_q8_0(&self) -> bool {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(_) | Imp::Avx2(_) => true,
            _ => false,
        }
    }

    /// Packs the Q8_0 matrix `w` (`n` rows of `w.len()/n` blocks) for this backend's int8
    /// kernel (see [`PackedQ8_0`]); the packed copy takes as much memory as `w`. Splits the work
    /// over the current rayon pool.
    ///
    /// Errors with `Unsupported` if the backend has no packed kernel
    /// ([`Kernels::supports_packed_q8_0`]), and on shapes that do not fit.
    pub fn pack_q8_0(&self, w: &[BlockQ8_0], n: usize) -> Result<PackedQ8_0, KernelError> {
        if !self.supports_packed_q8_0() {
            return Err(KernelError::Unsupported {
                backend: self.backend(),
            });
        }
        if n == 0 || w.is_empty() || !w.len().is_multiple_of(n) {
            return Err(KernelError::NotMultiple {
                what: "w",
                len: w.len(),
                of: n,
            });
        }
        let nb = w.len() / n;
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => packed::pack(self.backend(), w, n, nb, |rows, gq, gd| {
                t.pack_group(rows, gq, gd)
            }),
            _ => packed::pack(self.backend(), w, n, nb, packed::pack_group_portable),
        }
    }

    /// Checks `w`, `acts` and `y` of a packed matmul.
    fn check_packed(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &[f32],
    ) -> Result<(), KernelError> {
        if w.backend != self.backend() {
            return Err(KernelError::PackedForOtherBackend {
                packed_for: w.backend.name(),
                used_with: self.name(),
            });
        }
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
        check_len("y", y.len(), mul("y", w.rows, acts.tokens)?)
    }

    /// `y = x · Wᵀ` with packed Q8_0 weights (`w.rows()` rows of `w.k()` values) and `Int8` or
    /// `Int8x2` activations quantized by [`Kernels::quantize_activations`] with these kernels;
    /// `y` is `tokens × rows`. Bit-identical to [`Kernels::matmul_q8_0`] on the unpacked
    /// weights. Splits the rows over the current rayon pool.
    pub fn matmul_packed_q8_0(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_packed_impl(w, acts, y, true)
    }

    /// [`Kernels::matmul_packed_q8_0`] on the calling thread only.
    pub fn matmul_packed_q8_0_single_thread(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_packed_impl(w, acts, y, false)
    }

    /// Checks and runs a packed product, on the current rayon pool if `parallel`.
    fn matmul_packed_impl(
        &self,
        w: &PackedQ8_0,
        acts: &QuantizedActivations,
        y: &mut [f32],
        parallel: bool,
    ) -> Result<(), KernelError> {
        self.check_packed(w, acts, y)?;
        for_row_chunks(w.rows, acts.tokens, y, parallel, |rows, out| {
            self.packed_rows(w, rows, acts, out)
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
        for (w, y) in ws.iter().zip(&ys) {
            self.check_packed(w, acts, y)?;
        }
        let ns: Vec<usize> = ws.iter().map(|w| w.rows).collect();
        for_row_chunks_many(&ns, acts.tokens, ys, true, |i, rows, out| {
            self.packed_rows(ws[i], rows, acts, out)
        });
        Ok(())
    }

    /// The packed kernel for a range of rows (checked shapes, packed for this backend).
    fn packed_rows(
        &self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.matmul_packed(w, rows, acts, out),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.matmul_packed(w, rows, acts, out),
            // Only backends with a packed kernel pack (and `check_packed` matched the backend);
            // the unpacking reference keeps every arm total.
            _ => scalar::matmul_packed(w, rows, acts, out),
        }
    }

    /// Checks and runs a float-weight matmul.
    #[allow(clippy::too_many_arguments)]
    fn matmul_float<T: WeightElem>(
        &self,
        w: &[T],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        parallel: bool,
    ) -> Result<(), KernelError> {
        if k == 0 {
            return Err(KernelError::InvalidShape { reason: "k is 0" });
        }
        check_len("w", w.len(), mul("w", n, k)?)?;
        if !x.len().is_multiple_of(k) {
            return Err(KernelError::NotMultiple {
                what: "x",
                len: x.len(),
                of: k,
            });
        }
        let tokens = x.len() / k;
        check_len("y", y.len(), mul("y", n, tokens)?)?;
        for_row_chunks(n, tokens, y, parallel, |rows, out| match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.matmul_rows16(
                &x86_64::avx512_f32::FloatRows { w, stride: k },
                k,
                rows,
                x,
                out,
            ),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.matmul_rows8(&x86_64::avx2_f32::FloatRows8 { w, k }, k, rows, x, out),
            _ => scalar::matmul_float(w, k, rows, x, out),
        });
        Ok(())
    }

    /// `y = x · Wᵀ` with f32 weights `w` (`n × k`), `x` `tokens × k`, `y` `tokens × n`.
    /// Splits the rows over the current rayon pool.
    pub fn matmul_f32(
        &self,
        w: &[f32],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, true)
    }

    /// [`Kernels::matmul_f32`] on the calling thread only.
    pub fn matmul_f32_single_thread(
        &self,
        w: &[f32],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, false)
    }

    /// [`Kernels::matmul_f32`] with f16 weights.
    pub fn matmul_f16(
        &self,
        w: &[f16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, true)
    }

    /// [`Kernels::matmul_f16`] on the calling thread only.
    pub fn matmul_f16_single_thread(
        &self,
        w: &[f16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, false)
    }

    /// [`Kernels::matmul_f32`] with bf16 weights.
    pub fn matmul_bf16(
        &self,
        w: &[bf16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, true)
    }

    /// [`Kernels::matmul_bf16`] on the calling thread only.
    pub fn matmul_bf16_single_thread(
        &self,
        w: &[bf16],
        n: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        self.matmul_float(w, n, k, x, y, false)
    }

    /// `Σ a[i]·b[i]`.
    pub fn dot(&self, a: &[f32], b: &[f32]) -> Result<f32, KernelError> {
        check_len("b", b.len(), a.len())?;
        Ok(match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.dot(a, b),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.dot(a, b),
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) => t.dot(a, b),
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) => t.dot(a, b),
            _ => scalar::dot(a, b),
        })
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
        self.rms_norm_rows(out, weight, eps);
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
        self.rms_norm_rows(x, weight, eps);
        Ok(())
    }

    /// In-place RMSNorm of each `weight.len()`-long row of `x` (shape checked).
    fn rms_norm_rows(&self, x: &mut [f32], weight: &[f32], eps: f32) {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => {
                for row in x.chunks_exact_mut(weight.len()) {
                    let ss = t.dot(row, row);
                    let inv = 1.0 / (ss / weight.len() as f32 + eps).sqrt();
                    t.scale_mul(row, inv, Some(weight));
                }
            }
            _ => scalar::rms_norm_inplace(x, weight, eps),
        }
    }

    /// `out = gelu_tanh(gate) * up`, with ggml's (and PyTorch's `approximate="tanh"`) GELU
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    pub fn geglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
        check_len("up", up.len(), gate.len())?;
        check_len("out", out.len(), gate.len())?;
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.geglu(gate, up, out),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.geglu(gate, up, out),
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) => t.geglu(gate, up, out),
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) => t.geglu(gate, up, out),
            _ => scalar::geglu(gate, up, out),
        }
        Ok(())
    }

    /// In-place softmax of `x` (max-subtracted; an empty slice is left alone).
    pub fn softmax(&self, x: &mut [f32]) {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.softmax(x),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t.softmax(x),
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) => t.softmax(x),
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) => t.softmax(x),
            _ => scalar::softmax(x),
        }
    }

    /// NeoX-style RoPE of one head `x` (`table.head_dim()` values) at position `pos`: element `i`
    /// of the first half and element `i` of the second half rotate by `pos · base^(−2i/d)`.
    pub fn rope_neox(
        &self,
        x: &mut [f32],
        table: &RopeTable,
        pos: usize,
    ) -> Result<(), KernelError> {
        check_len("x", x.len(), table.head_dim)?;
        if pos >= table.max_pos {
            return Err(KernelError::PositionOutOfRange {
                pos,
                max_pos: table.max_pos,
            });
        }
        scalar::rope_neox(x, table, pos);
        Ok(())
    }

    /// NeoX RoPE of a whole sequence: `x` is `seq × n_heads × head_dim`, token `t` at position `t`.
    pub fn rope_neox_seq(
        &self,
        x: &mut [f32],
        n_heads: usize,
        table: &RopeTable,
    ) -> Result<(), KernelError> {
        let row = mul("x", n_heads, table.head_dim)?;
        if row == 0 {
            return Err(KernelError::InvalidShape {
                reason: "n_heads or head_dim is 0",
            });
        }
        check_rows("x", x.len(), row)?;
        let seq = x.len() / row;
        if seq > table.max_pos {
            return Err(KernelError::PositionOutOfRange {
                pos: seq - 1,
                max_pos: table.max_pos,
            });
        }
        for (pos, xr) in x.chunks_exact_mut(row).enumerate() {
            for head in xr.chunks_exact_mut(table.head_dim) {
                scalar::rope_neox(head, table, pos);
            }
        }
        Ok(())
    }

    /// Checks the arguments of [`Kernels::attention`].
    fn check_attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: &AttentionSpec,
        out: &[f32],
    ) -> Result<(), KernelError> {
        let s = shape;
        if s.n_heads == 0 || s.n_kv_heads == 0 || s.head_dim == 0 {
            return Err(KernelError::InvalidShape {
                reason: "n_heads, n_kv_heads and head_dim must be non-zero",
            });
        }
        if !s.n_heads.is_multiple_of(s.n_kv_heads) {
            return Err(KernelError::InvalidShape {
                reason: "n_heads must be a multiple of n_kv_heads",
            });
        }
        let q_len = mul("q", mul("q", s.seq_len, s.n_heads)?, s.head_dim)?;
        let kv_len = mul("k", mul("k", s.seq_len, s.n_kv_heads)?, s.head_dim)?;
        check_len("q", q.len(), q_len)?;
        check_len("k", k.len(), kv_len)?;
        check_len("v", v.len(), kv_len)?;
        check_len("out", out.len(), q_len)
    }

    /// Bidirectional multi-head attention with grouped KV heads, shaped by `spec` (see
    /// [`AttentionSpec`]): `q` and `out` are `seq_len × n_heads × head_dim`, `k` and `v` are
    /// `seq_len × n_kv_heads × head_dim`. Splits query blocks over the current team or rayon
    /// pool.
    pub fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spec: &AttentionSpec,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        self.attention_impl(q, k, v, spec, out, true)
    }

    /// [`Kernels::attention`] on the calling thread only.
    pub fn attention_single_thread(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spec: &AttentionSpec,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        self.attention_impl(q, k, v, spec, out, false)
    }

    /// Whether [`AttentionPrecision::Bf16`] rounds to bf16 here (AVX-512 VNNI backend on a CPU
    /// with AVX512_BF16), rather than computing exactly like [`Kernels::attention`].
    pub fn has_bf16_attention(&self) -> bool {
        match self.imp {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t.bf16,
            _ => false,
        }
    }

    /// Checks the arguments and runs attention over blocks of queries, on the current team or
    /// rayon pool if `parallel`.
    fn attention_impl(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: &AttentionSpec,
        out: &mut [f32],
        parallel: bool,
    ) -> Result<(), KernelError> {
        const QUERY_BLOCK: usize = 16;
        Self::check_attention(q, k, v, shape, out)?;
        let row = shape.n_heads * shape.head_dim;
        if row == 0 || shape.seq_len == 0 {
            return Ok(());
        }
        // The AVX-512 f32 path reads the keys transposed, made once here for every block.
        #[cfg(target_arch = "x86_64")]
        let keys = match self.imp {
            Imp::Avx512Vnni(t) => Some(t.keys(k, shape)),
            _ => None,
        };
        let block = |(bi, ob): (usize, &mut [f32])| {
            let q0 = bi * QUERY_BLOCK;
            let queries = q0..q0 + ob.len() / row;
            #[cfg(target_arch = "x86_64")]
            if let (Imp::Avx512Vnni(t), Some(keys)) = (self.imp, &keys) {
                t.attention_block(q, keys, v, shape, queries, ob);
                return;
            }
            let mut scores = Vec::new();
            for h in 0..shape.n_heads {
                let qs = queries.clone();
                match self.imp {
                    #[cfg(target_arch = "x86_64")]
                    Imp::Avx512Vnni(t) => {
                        scalar::attention_rows(t, q, k, v, shape, h, qs, &mut scores, ob)
                    }
                    #[cfg(target_arch = "x86_64")]
                    Imp::Avx2(t) => {
                        scalar::attention_rows(t, q, k, v, shape, h, qs, &mut scores, ob)
                    }
                    #[cfg(target_arch = "aarch64")]
                    Imp::Neon(t) => {
                        scalar::attention_rows(t, q, k, v, shape, h, qs, &mut scores, ob)
                    }
                    #[cfg(target_arch = "aarch64")]
                    Imp::NeonDotprod(t) => {
                        scalar::attention_rows(t, q, k, v, shape, h, qs, &mut scores, ob)
                    }
                    _ => scalar::attention_rows(
                        scalar::Portable,
                        q,
                        k,
                        v,
                        shape,
                        h,
                        qs,
                        &mut scores,
                        ob,
                    ),
                }
            }
        };
        let blocks: Vec<(usize, &mut [f32])> =
            out.chunks_mut(QUERY_BLOCK * row).enumerate().collect();
        team::for_each_task(parallel, blocks, block);
        Ok(())
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

/// `len` must be a whole number of `row`-long rows (`row > 0`, or `len == 0`).
fn check_rows(what: &'static str, len: usize, row: usize) -> Result<(), KernelError> {
    if row == 0 {
        return if len == 0 {
            Ok(())
        } else {
            Err(KernelError::InvalidShape {
                reason: "row length is 0",
            })
        };
    }
    if !len.is_multiple_of(row) {
        return Err(KernelError::NotMultiple { what, len, of: row });
    }
    Ok(())
}

/// A block of queries of one attention call ([`AttentionSpec::block`]): the query rows of all
/// heads that share a KV head are gathered into one matrix of `rows` rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct AttentionBlock {
    /// Query heads per KV head.
    pub(crate) group: usize,
    /// Distance between positions in `q` and `out`.
    pub(crate) q_stride: usize,
    /// Distance between positions in `k` and `v`.
    pub(crate) kv_stride: usize,
    /// The first and one-past-last key any query of the block sees.
    pub(crate) k0: usize,
    pub(crate) k1: usize,
    /// Query rows per KV head: queries × `group`.
    pub(crate) rows: usize,
}

impl AttentionSpec {
    /// The geometry of the block of queries `queries` (`None` if it is empty), for the block
    /// kernels of the x86-64 backends.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn block(&self, queries: &Range<usize>) -> Option<AttentionBlock> {
        if queries.is_empty() {
            return None;
        }
        let group = self.n_heads / self.n_kv_heads;
        Some(AttentionBlock {
            group,
            q_stride: self.n_heads * self.head_dim,
            kv_stride: self.n_kv_heads * self.head_dim,
            k0: self.key_range(queries.start).start,
            k1: self.key_range(queries.end - 1).end,
            rows: queries.len() * group,
        })
    }

    /// The keys query `i` sees.
    pub(crate) fn key_range(&self, i: usize) -> Range<usize> {
        match self.window {
            None => 0..self.seq_len,
            Some(w) => i.saturating_sub(w)..i.saturating_add(w).saturating_add(1).min(self.seq_len),
        }
    }
}

/// Precomputed NeoX RoPE rotations: `cos`/`sin` of `pos · base^(−2i/head_dim)` for
/// `pos < max_pos`, `i < head_dim/2` (computed in f64, stored as f32).
#[derive(Clone, Debug)]
pub struct RopeTable {
    head_dim: usize,
    max_pos: usize,
    /// `max_pos × head_dim/2` cosines.
    cos: Vec<f32>,
    /// `max_pos × head_dim/2` sines.
    sin: Vec<f32>,
}

impl RopeTable {
    /// A table for heads of `head_dim` values (even, non-zero) and positions `0..max_pos`.
    pub fn new(head_dim: usize, base: f32, max_pos: usize) -> Result<RopeTable, KernelError> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(KernelError::InvalidShape {
                reason: "RoPE head_dim must be even and non-zero",
            });
        }
        let half = head_dim / 2;
        let len = mul("rope table", max_pos, half)?;
        let mut cos = Vec::with_capacity(len);
        let mut sin = Vec::with_capacity(len);
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| f64::from(base).powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        for pos in 0..max_pos {
            for &f in &inv_freq {
                let theta = pos as f64 * f;
                cos.push(theta.cos() as f32);
                sin.push(theta.sin() as f32);
            }
        }
        Ok(RopeTable {
            head_dim,
            max_pos,
            cos,
            sin,
        })
    }

    /// The head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The number of positions.
    pub fn max_pos(&self) -> usize {
        self.max_pos
    }

    /// `(cos, sin)` of position `pos` (`pos < max_pos`).
    pub(crate) fn row(&self, pos: usize) -> (&[f32], &[f32]) {
        let half = self.head_dim / 2;
        (
            &self.cos[pos * half..(pos + 1) * half],
            &self.sin[pos * half..(pos + 1) * half],
        )
    }
}

/// A float weight element (f32, f16, bf16).
#[cfg(target_arch = "x86_64")]
pub(crate) trait WeightElem:
    Copy + Send + Sync + 'static + x86_64::avx512_f32::Load16 + x86_64::avx2_f32::Load8
{
    /// The value as f32.
    fn to_f32(self) -> f32;
}

/// A float weight element (f32, f16, bf16).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) trait WeightElem: Copy + Send + Sync + 'static {
    /// The value as f32.
    fn to_f32(self) -> f32;
}

impl WeightElem for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl WeightElem for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl WeightElem for bf16 {
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// Row granularity of the parallel split (a multiple of every backend's row tile).
const ROW_ALIGN: usize = 16;

/// Calls `f(rows, out)` over chunks of the `n` output rows, where `out[t]` is
/// `y[t*n + rows.start .. t*n + rows.end]` — on the current rayon pool if `parallel`.
fn for_row_chunks<F>(n: usize, tokens: usize, y: &mut [f32], parallel: bool, f: F)
where
    F: Fn(Range<usize>, &mut [&mut [f32]]) + Sync,
{
    for_row_chunks_many(&[n], tokens, vec![y], parallel, |_, rows, out| f(rows, out));
}

/// One task of [`for_row_chunks_many`]: product index, its rows, and each token's output slice
/// for those rows.
type RowChunk<'a> = (usize, Range<usize>, Vec<&'a mut [f32]>);

/// [`for_row_chunks`] over several products at once, in one parallel region: product `i` has
/// `ns[i]` output rows and output `ys[i]` (`tokens × ns[i]`); `f(i, rows, out)` computes a chunk
/// of product `i`. Chunks are sized from the rows of all products together, so small products
/// (q, k and v of a few tokens) share one fork-join instead of one each.
///
/// The chunks of the outputs are made with `split_at_mut`, so every task owns its disjoint
/// pieces.
fn for_row_chunks_many<F>(ns: &[usize], tokens: usize, ys: Vec<&mut [f32]>, parallel: bool, f: F)
where
    F: Fn(usize, Range<usize>, &mut [&mut [f32]]) + Sync,
{
    let total: usize = ns.iter().sum();
    if total == 0 || tokens == 0 {
        return;
    }
    let threads = if parallel { team::current_threads() } else { 1 };
    if threads <= 1 || total <= ROW_ALIGN {
        for (i, (&n, y)) in ns.iter().zip(ys).enumerate() {
            if n > 0 {
                let mut out: Vec<&mut [f32]> = y.chunks_mut(n).collect();
                f(i, 0..n, &mut out);
            }
        }
        return;
    }
    // About 4 chunks per thread for load balance, but only one per thread for small products
    // (a few µs of work, where waking threads costs as much as the imbalance); each chunk a
    // multiple of ROW_ALIGN rows.
    let per_thread = if total.saturating_mul(tokens) < 4096 {
        1
    } else {
        4
    };
    let chunk = total
        .div_ceil(threads * per_thread)
        .div_ceil(ROW_ALIGN)
        .max(1)
        * ROW_ALIGN;
    let mut parts: Vec<RowChunk<'_>> = Vec::new();
    for (i, (&n, y)) in ns.iter().zip(ys).enumerate() {
        if n == 0 {
            continue;
        }
        let first = parts.len();
        for c in 0..n.div_ceil(chunk) {
            let rows = c * chunk..((c + 1) * chunk).min(n);
            parts.push((i, rows, Vec::with_capacity(tokens)));
        }
        for mut row in y.chunks_mut(n) {
            for (_, range, outs) in parts[first..].iter_mut() {
                let (head, tail) = row.split_at_mut(range.len());
                outs.push(head);
                row = tail;
            }
        }
    }
    team::for_each_task(true, parts, |(i, range, mut outs)| f(i, range, &mut outs));
}
