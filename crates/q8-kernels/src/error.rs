//! The crate's error type and the shape checks every entry point shares.

use crate::acts::ActivationPrecision;
use crate::Backend;

/// Errors of this crate: shapes and lengths that do not fit, and backends that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
pub(crate) fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, KernelError> {
    a.checked_mul(b).ok_or(KernelError::Overflow { what })
}

/// `len` must be a whole number of `row`-long rows (`row > 0`, or `len == 0`).
pub(crate) fn check_rows(what: &'static str, len: usize, row: usize) -> Result<(), KernelError> {
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
