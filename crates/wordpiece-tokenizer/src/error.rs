//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading a vocabulary or encoding/decoding text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a `vocab.txt` is not UTF-8.
    #[error("vocabulary line {line} is not valid UTF-8")]
    NotUtf8 {
        /// The line number (1-based), which is the token id plus one.
        line: usize,
    },
    /// The vocabulary is empty or too large for `u32` ids.
    #[error(
        "vocabulary size {size} is not usable (must be 1..=2^31 tokens of at most 4 GiB in all)"
    )]
    BadVocabSize {
        /// The size found.
        size: usize,
    },
    /// The token texts are too large in all to index (far beyond any real vocabulary).
    #[error("the vocabulary's tokens take {bytes} bytes or more, beyond the {max} this tokenizer accepts")]
    VocabTooLarge {
        /// Bytes of token text found (at least).
        bytes: usize,
        /// The most accepted.
        max: usize,
    },
    /// A special token the tokenizer needs is neither configured nor found by its usual name.
    #[error(
        "the vocabulary has no {which} token (looked for {name:?}); set its id in VocabConfig"
    )]
    MissingSpecialToken {
        /// `"unk"`, `"cls"` or `"sep"`.
        which: &'static str,
        /// The name looked up.
        name: &'static str,
    },
    /// A configured special-token id is outside the vocabulary.
    #[error("{which} token id {id} is outside the vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        /// `"unk"`, `"cls"`, `"sep"`, `"pad"` or `"mask"`.
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
    /// `max_length` cannot hold even the special tokens added to every sequence.
    #[error("max_length {max} is too small to hold the {specials} special token(s) added to every sequence")]
    MaxLengthTooSmall {
        /// The maximum asked for.
        max: usize,
        /// How many special tokens every sequence gets.
        specials: usize,
    },
}
