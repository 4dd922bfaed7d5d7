//! Matmul benchmarks (filled in with the SIMD backends).
fn main() {}
