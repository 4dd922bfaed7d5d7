//! x86-64 backends.

pub(crate) mod avx512vnni;
