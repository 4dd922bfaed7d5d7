//! Int8 (Q8_0) and f32 transformer kernels with runtime CPU dispatch: AVX-512 VNNI, AVX2, NEON, scalar.
