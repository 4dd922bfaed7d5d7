//! The gguf-inspect command: summary, metadata, tensors and statistics of GGUF files.

fn main() {}
