//! Zero-copy reader and writer for GGUF model files, hardened against malformed input.
