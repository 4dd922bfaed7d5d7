//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading a vocabulary or encoding/decoding text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The `tokenizer.model` bytes are not a valid SentencePiece `ModelProto`.
    #[error("malformed SentencePiece model at byte {offset}: {what}")]
    MalformedProto {
        /// Byte offset (in the whole file) where the problem was found.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A field of the model holds a value this crate does not know.
    #[error("SentencePiece model field `{field}` has unsupported value {value}")]
    UnsupportedValue {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The vocabulary arrays have different lengths.
    #[error(
        "vocabulary arrays differ in length: {pieces} pieces, {scores} scores, {types} token types"
    )]
    LengthMismatch {
        /// Number of pieces.
        pieces: usize,
        /// Number of scores.
        scores: usize,
        /// Number of token types.
        types: usize,
    },
    /// The vocabulary is empty or too large for `u32` ids.
    #[error("vocabulary size {size} is not usable (must be 1..=2^31)")]
    BadVocabSize {
        /// The size found.
        size: usize,
    },
    /// A token type outside SentencePiece's numbering (1..=6).
    #[error("token {id} has unknown token type {value} (expected 1..=6)")]
    InvalidTokenType {
        /// The token id.
        id: u32,
        /// The value found.
        value: i32,
    },
    /// A configured special-token id is outside the vocabulary.
    #[error("{which} token id {id} is outside the vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        /// `"bos"`, `"eos"`, `"unk"` or `"pad"`.
        which: &'static str,
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// A token id passed to `decode` is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownId {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// The encoded text is longer than `max_length` and truncation was set to `Error`.
    #[error("text encodes to {tokens} tokens, more than the maximum of {max}; shorten it or allow truncation")]
    TooLong {
        /// Number of tokens the text encodes to (special tokens included).
        tokens: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// `max_length` cannot hold even the requested special tokens.
    #[error("max_length {max} is too small to hold the {specials} special token(s) added to every sequence")]
    MaxLengthTooSmall {
        /// The maximum asked for.
        max: usize,
        /// How many special tokens every sequence gets.
        specials: usize,
    },
}
