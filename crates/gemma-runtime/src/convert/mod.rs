//! Hugging Face (sentence-transformers) EmbeddingGemma checkpoint → GGUF converter.
