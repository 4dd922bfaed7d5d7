//! EmbeddingGemma forward pass over a memory-mapped GGUF file, and a Hugging Face to GGUF converter.

pub mod convert;
