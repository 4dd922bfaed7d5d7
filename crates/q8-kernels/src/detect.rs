//! Run-time detection: which backends exist, which this CPU can run, and the process-wide
//! choice.
//!
//! Each SIMD backend is a CPU-feature token (`Avx2`, `Avx512Vnni`, `Neon`, `NeonDotprod`) that
//! only its `detect()` makes, after checking the CPU at run time: a stock build runs the fast
//! path on the machine it lands on. [`Imp`] holds the token of the chosen backend and
//! [`Imp::kernel`] is the one place that turns it into the backend's [`Kernel`]; adding a
//! backend is its module, one variant here, and its arms in [`Imp::detect`] and
//! [`Imp::kernel`] (a missing arm does not compile).

use std::sync::OnceLock;

#[cfg(target_arch = "aarch64")]
use crate::aarch64;
use crate::kernel::Kernel;
use crate::scalar::Portable;
#[cfg(target_arch = "x86_64")]
use crate::x86_64;
use crate::{KernelError, Kernels};

/// A kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
pub(crate) enum Imp {
    Scalar(Portable),
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni(x86_64::avx512vnni::Avx512Vnni),
    #[cfg(target_arch = "x86_64")]
    Avx2(x86_64::avx2::Avx2),
    #[cfg(target_arch = "aarch64")]
    Neon(aarch64::neon::Neon),
    #[cfg(target_arch = "aarch64")]
    NeonDotprod(aarch64::neon::NeonDotprod),
}

impl Imp {
    /// The token of `backend` if this CPU (and this build's architecture) can run it.
    fn detect(backend: Backend) -> Option<Imp> {
        match backend {
            Backend::Scalar => Some(Imp::Scalar(Portable)),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Vnni => x86_64::avx512vnni::Avx512Vnni::detect().map(Imp::Avx512Vnni),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86_64::avx2::Avx2::detect().map(Imp::Avx2),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => aarch64::neon::Neon::detect().map(Imp::Neon),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod => aarch64::neon::NeonDotprod::detect().map(Imp::NeonDotprod),
            // Backends of another architecture.
            _ => None,
        }
    }

    /// The backend's operations: the one dispatch point of the crate.
    pub(crate) fn kernel(&self) -> &dyn Kernel {
        match self {
            Imp::Scalar(t) => t,
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512Vnni(t) => t,
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2(t) => t,
            #[cfg(target_arch = "aarch64")]
            Imp::Neon(t) => t,
            #[cfg(target_arch = "aarch64")]
            Imp::NeonDotprod(t) => t,
        }
    }
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
            .unwrap_or(Kernels {
                imp: Imp::Scalar(Portable),
            })
    }

    /// The kernels of `backend`, or `Unsupported` if this CPU/build cannot run it.
    pub fn with_backend(backend: Backend) -> Result<Kernels, KernelError> {
        Imp::detect(backend)
            .map(|imp| Kernels { imp })
            .ok_or(KernelError::Unsupported { backend })
    }

    /// Every backend this CPU can run (for tests and benchmarks).
    pub fn available() -> Vec<Kernels> {
        Backend::ALL
            .into_iter()
            .filter_map(|b| Kernels::with_backend(b).ok())
            .collect()
    }
}
