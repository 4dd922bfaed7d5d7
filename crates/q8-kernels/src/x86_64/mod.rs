//! x86-64 backends.

pub(crate) mod avx2;
pub(crate) mod avx2_f32;
pub(crate) mod avx2_packed;
pub(crate) mod avx512_bf16;
pub(crate) mod avx512_f32;
pub(crate) mod avx512vnni;
