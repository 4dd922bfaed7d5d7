//! The gemma-embed command: embed, tokenize, convert and benchmark with GGUF embedding models.

fn main() {}
