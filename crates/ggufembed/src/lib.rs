//! Text embeddings from GGUF models (EmbeddingGemma) in pure Rust.

mod paths;

pub use paths::{
    cached_model_path, default_model_path, model_cache_dir, CACHE_ENV, DEFAULT_MODEL_FILE,
    MODEL_ENV,
};
