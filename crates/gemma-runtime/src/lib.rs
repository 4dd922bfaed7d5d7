//! EmbeddingGemma forward pass over a memory-mapped GGUF file, and a Hugging Face to GGUF
//! converter.
//!
//! [`open`] maps a GGUF file, reads `general.architecture` and returns a boxed
//! [`EmbeddingModel`]: token ids in, one embedding per sequence out (pooled and projected, not
//! normalised). The weights stay in the file's format (Q8_0, F32, F16 or BF16) and are read
//! from the memory map; Q8_0 matrices are packed once for the int8 kernel where the CPU has one
//! (optionally cached on disk, [`RuntimeOptions::pack_cache_dir`]). The arithmetic is `q8-kernels`' (run-time CPU dispatch); the
//! tokenizer is `spm-tokenizer`, built from the file's `tokenizer.ggml.*` keys.
//!
//! ```no_run
//! use gemma_runtime::{open, RuntimeOptions};
//! # fn main() -> Result<(), gemma_runtime::RuntimeError> {
//! let model = open("embeddinggemma-300m-q8_0.gguf".as_ref(), &RuntimeOptions::default())?;
//! let ids = [2, 9259, 1902, 1]; // <bos> Hello world <eos>
//! let v = model.embed_ids(&ids)?;
//! assert_eq!(v.len(), model.info().output_dim);
//! # Ok(())
//! # }
//! ```

pub mod convert;
mod error;
mod gemma;
mod model;
mod pack_cache;
pub mod testing;
mod tokenizer;
mod weights;

pub use error::RuntimeError;
pub use gemma::EMBEDDINGGEMMA_PROMPTS;
pub use model::{
    open, EmbeddingModel, ModelInfo, Precision, RuntimeOptions, SUPPORTED_ARCHITECTURES,
};
pub use tokenizer::from_gguf as tokenizer_from_gguf;
