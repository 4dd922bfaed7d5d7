//! Text embeddings from GGUF models (EmbeddingGemma) in pure Rust.
