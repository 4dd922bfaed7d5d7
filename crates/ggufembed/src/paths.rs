//! Where models live on disk.

use std::path::PathBuf;

/// File name of the default model (EmbeddingGemma-300M, Q8_0) inside [`model_cache_dir`].
pub const DEFAULT_MODEL_FILE: &str = "embeddinggemma-300m-q8_0.gguf";

/// Environment variable that names the model file to use instead of [`default_model_path`].
pub const MODEL_ENV: &str = "GGUFEMBED_MODEL";

/// Environment variable that overrides [`model_cache_dir`].
pub const CACHE_ENV: &str = "GGUFEMBED_CACHE";

/// The directory that holds downloaded and converted models.
///
/// `$GGUFEMBED_CACHE`, else `$XDG_CACHE_HOME/ggufembed`, else `$HOME/.cache/ggufembed`, else
/// `.ggufembed-cache` in the current directory (a process with no home directory).
pub fn model_cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(CACHE_ENV) {
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

/// The GGUF file of the given type (`"q8_0"`, `"f32"`, `"f16"`, `"bf16"`) inside [`model_cache_dir`].
pub fn cached_model_path(file_type: &str) -> PathBuf {
    model_cache_dir().join(format!("embeddinggemma-300m-{file_type}.gguf"))
}

/// The model used when none is given: `$GGUFEMBED_MODEL`, else the Q8_0 file in [`model_cache_dir`].
pub fn default_model_path() -> PathBuf {
    match std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => model_cache_dir().join(DEFAULT_MODEL_FILE),
    }
}
