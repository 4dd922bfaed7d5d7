//! Helpers for tests, examples and benchmarks that need the real model files.
//!
//! The cache-directory rule is the one of `ggufembed::model_cache_dir` (this crate cannot depend
//! on the facade): `$GGUFEMBED_CACHE`, else `$XDG_CACHE_HOME/ggufembed`, else
//! `$HOME/.cache/ggufembed`.

use std::path::PathBuf;

/// The model cache directory.
pub fn model_cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("GGUFEMBED_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("ggufembed");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".cache").join("ggufembed");
    }
    PathBuf::from(".ggufembed-cache")
}

/// The EmbeddingGemma GGUF of `file_type` (`"q8_0"`, `"f32"`, `"f16"`, `"bf16"`) in the cache.
pub fn cached_model_path(file_type: &str) -> PathBuf {
    model_cache_dir().join(format!("embeddinggemma-300m-{file_type}.gguf"))
}

/// The cached model of `file_type`, or an error message that says how to get it.
pub fn require_model(file_type: &str) -> Result<PathBuf, String> {
    let path = cached_model_path(file_type);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "model file {} not found; run `cargo xtask fetch-model --type {file_type}` first",
            path.display()
        ))
    }
}
