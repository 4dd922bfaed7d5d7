//! Text embeddings from GGUF models (EmbeddingGemma-300M) in pure Rust: no C, no BLAS.
//!
//! Load a model once, share it between threads, embed many texts:
//!
//! ```no_run
//! use ggufembed::{EmbedOptions, Model, Options, Prompt};
//!
//! # fn main() -> Result<(), ggufembed::Error> {
//! let model = Model::open(ggufembed::default_model_path(), Options::default().threads(2))?;
//!
//! // Plain embeddings: one L2-normalised 768-value vector per text.
//! let v: Vec<Vec<f32>> = model.embed(&["hello world", "goodbye world"])?;
//! assert_eq!(v[0].len(), 768);
//!
//! // Retrieval: queries and documents get their task prompts; 256 values (Matryoshka).
//! let q = model.embed_with(&["which planet is red?"], EmbedOptions::default().prompt(Prompt::Query).dim(256))?;
//! let d = model.embed_with(
//!     &["Mars is the fourth planet from the Sun.", "Venus is the second planet."],
//!     EmbedOptions::default().prompt(Prompt::Document).dim(256),
//! )?;
//! let scores: Vec<f32> = d.iter().map(|d| ggufembed::cosine_similarity(&q[0], d)).collect();
//! assert!(scores[0] > scores[1]);
//!
//! let one = model.embed_one("Hello, world!")?;
//! println!("{} values, backend {}", one.len(), model.backend());
//! # Ok(())
//! # }
//! ```
//!
//! Options are plain builders, and every failure is a typed [`enum@Error`] whose message says what to do:
//!
//! ```
//! use ggufembed::{EmbedOptions, Error, Model, Options, Prompt, Truncation};
//!
//! let opts = EmbedOptions::default()
//!     .prompt(Prompt::Named("Clustering".into()))
//!     .dim(128)
//!     .truncation(Truncation::Error)
//!     .batch_size(8);
//! assert_eq!(opts.dim_value(), Some(128));
//!
//! match Model::open("/no/such/model.gguf", Options::default()) {
//!     Err(e @ Error::ModelNotFound { .. }) => assert!(e.to_string().contains("cargo xtask fetch-model")),
//!     other => panic!("expected ModelNotFound, got {other:?}"),
//! }
//! ```
//!
//! # What the model computes
//!
//! Each text is tokenised as `<bos>` + SentencePiece pieces + `<eos>` (with the prompt, a plain text
//! prefix, in front), run through the transformer, mean-pooled, projected by the model's two dense
//! layers and L2-normalised — the same numbers as sentence-transformers within the quantisation
//! error of the weights. A shorter output ([`EmbedOptions::dim`]) keeps the first values and
//! normalises again (Matryoshka). Texts longer than the context (2048 tokens) are cut like
//! sentence-transformers does, or rejected with [`Truncation::Error`].
//!
//! # Threads
//!
//! A [`Model`] owns a rayon pool of [`Options::threads`] workers (default: one per core) and
//! runs all its work there. Batches are processed in chunks of [`EmbedOptions::batch_size`] texts,
//! which bounds memory.
//!
//! # Converting checkpoints
//!
//! [`convert`] turns a Hugging Face (sentence-transformers) EmbeddingGemma directory into a GGUF
//! file (`q8_0`, `f32`, `f16` or `bf16`).

mod error;
mod model;
mod options;
mod paths;
mod tokenizer_file;

pub use error::{Error, Result};
pub use model::{cosine_similarity, l2_normalize, Model, EMBEDDINGGEMMA_PROMPTS};
pub use options::{
    EmbedOptions, Options, Precision, Prompt, Truncation, DEFAULT_BATCH_SIZE, NO_PACK_CACHE_ENV,
};
pub use paths::{
    cached_model_path, default_model_path, model_cache_dir, CACHE_ENV, DEFAULT_MODEL_FILE,
    MODEL_ENV,
};

/// The Hugging Face → GGUF converter (re-exported from `gemma-runtime`).
pub use gemma_runtime::convert;
pub use gemma_runtime::{EmbeddingModel, ModelInfo, RuntimeError};
pub use spm_tokenizer::Tokenizer;
pub use spm_tokenizer::TokenizerError;
pub use tokenizer_file::load_tokenizer;

/// The SentencePiece tokenizer crate (for [`tokenizer::EncodeOptions`] and friends).
pub use spm_tokenizer as tokenizer;

/// Name of the matrix-kernel backend chosen for this CPU (e.g. `avx512vnni`, `avx2`, `neon`,
/// `scalar`); `Q8_KERNELS_BACKEND` forces one. If that variable names a backend this CPU cannot
/// run, returns `"unavailable"` (and loading a model fails with the reason).
pub fn backend() -> &'static str {
    q8_kernels::kernels().map_or("unavailable", |k| k.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Model>();
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = vec![0.0; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }

    #[test]
    fn missing_model_says_how_to_fetch() {
        let err = Model::open("/definitely/not/here.gguf", Options::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cargo xtask fetch-model"), "{msg}");
        assert!(msg.contains(MODEL_ENV), "{msg}");
    }

    #[test]
    fn unsupported_dimension_lists_choices() {
        let e = Error::UnsupportedDimension {
            requested: 300,
            supported: vec![768, 512, 256, 128],
        };
        assert_eq!(
            e.to_string(),
            "output dimension 300 is not supported by this model; choose one of 768, 512, 256, 128"
        );
    }
}
