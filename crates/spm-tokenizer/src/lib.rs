//! Fast SentencePiece (unigram/BPE-by-score, byte fallback) tokenizer with exact Gemma parity.

mod error;
pub mod proto;

pub use error::TokenizerError;
