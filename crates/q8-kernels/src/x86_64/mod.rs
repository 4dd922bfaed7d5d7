//! x86-64 backends.

pub(crate) mod avx2;
pub(crate) mod avx2_f32;
pub(crate) mod avx512_bf16;
pub(crate) mod avx512_f32;
pub(crate) mod avx512vnni;

/// The Cephes `expf` reduction and polynomial shared by the AVX2 and AVX-512 `exp`:
/// `exp(x) = 2ⁿ·p(r)` with `n = round(x·log₂e)`, `r = x − n·ln 2` (ln 2 in two parts for an
/// exact reduction), `p(r) = 1 + r + r²·(c₀r⁵ + … + c₅)` with these coefficients `c₀ … c₅`.
pub(crate) const EXP_LN2_HI: f32 = 0.693_359_4;
/// The low part of ln 2 (see [`EXP_LN2_HI`]).
pub(crate) const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// The polynomial's coefficients, highest power first (see [`EXP_LN2_HI`]).
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
