//! Fast SentencePiece tokenizer (BPE by piece score, byte fallback) with exact Gemma parity.
//!
//! Gives the same ids as SentencePiece, llama.cpp's SPM tokenizer and Hugging Face's Gemma tokenizer:
//! text is normalized (spaces become `▁`), special-token text (CONTROL, USER_DEFINED and UNKNOWN
//! pieces, e.g. `<start_of_turn>`, `\n`, `<table>`) is matched leftmost-longest, every other stretch
//! is split into UTF-8 characters that are merged pairwise, highest piece score first (leftmost on
//! ties), and characters no piece covers fall back to `<0xXX>` byte pieces.
//!
//! Build a [`Tokenizer`] from plain vocabulary arrays ([`Tokenizer::from_parts`], as stored in GGUF)
//! or from a SentencePiece `tokenizer.model` ([`Tokenizer::from_model_file`]); the [`proto`] module
//! reads that file for other uses (e.g. converting a checkpoint to GGUF).
//!
//! ```
//! use spm_tokenizer::{Tokenizer, VocabConfig};
//! // pieces, scores, SentencePiece token types (1 normal, 3 control, 6 byte)
//! let pieces = ["<bos>", "<eos>", "▁", "h", "i", "hi", "▁hi"];
//! let scores = [0.0, 0.0, -3.0, -4.0, -5.0, -1.0, -2.0];
//! let types = [3, 3, 1, 1, 1, 1, 1];
//! let config = VocabConfig { bos: Some(0), eos: Some(1), add_bos: true, ..Default::default() };
//! let tok = Tokenizer::from_parts(pieces, scores, types, config)?;
//! assert_eq!(tok.encode("hi hi"), vec![0, 5, 6]);
//! assert_eq!(tok.decode(&[0, 5, 6])?, "hi hi");
//! # Ok::<(), spm_tokenizer::TokenizerError>(())
//! ```
//!
//! # Performance
//! The vocabulary lives in one byte arena with open-addressing tables keyed by piece bytes, so
//! building from 262,144 pieces allocates a handful of buffers (the tables and the per-piece scan
//! are built in parallel), and the merge loop looks pieces up by slices of the input without
//! creating strings. Text is cut into words before `▁` wherever the vocabulary proves no piece can
//! span the cut; short words are merged in fixed stack arrays, long ones with a priority queue.
//!
//! Each thread that encodes keeps scratch buffers and a bounded cache of word encodings (at most
//! 16,384 words of up to 64 bytes, about 1 MB), so repeated words skip merging; the cache belongs to
//! one tokenizer at a time and [`Tokenizer::clear_thread_cache`] empties it. Results never depend on
//! the cache.
//!
//! # Limits
//! Only BPE-type SentencePiece models with identity normalization are read from `tokenizer.model`
//! (Gemma, Llama 2 and similar); unigram models and precompiled character maps are rejected with
//! [`TokenizerError::UnsupportedValue`].

mod cache;
mod error;
mod map;
pub mod proto;
mod special;
mod tokenizer;

pub use error::TokenizerError;
pub use proto::PieceType;
pub use tokenizer::{DecodeOptions, EncodeOptions, Tokenizer, Truncation, VocabConfig};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tokenizer_is_send_sync() {
        assert_send_sync::<Tokenizer>();
    }
}
