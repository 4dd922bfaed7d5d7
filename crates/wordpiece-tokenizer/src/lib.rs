//! Fast BERT WordPiece tokenizer with exact Hugging Face parity.
//!
//! Gives the same ids as Hugging Face's `tokenizers` with a BERT `tokenizer.json`
//! (`BertNormalizer`, `BertPreTokenizer`, `WordPiece`, `[CLS] … [SEP]`), for the vocabularies of
//! all-MiniLM, bge, gte, e5 and bert-base models:
//!
//! 1. special-token text in the input (`[SEP]`, `[MASK]`…) is matched first, leftmost-longest;
//! 2. the rest is normalized: control and format characters removed, whitespace made spaces,
//!    CJK ideographs surrounded by spaces, accents stripped (NFD, non-spacing marks removed) and
//!    lower-cased as the [`Normalization`] says;
//! 3. it is cut into words at whitespace and around every punctuation character;
//! 4. each word becomes its greedy longest-match WordPiece tokens (continuations written `##…`),
//!    or one `[UNK]` if some part of it matches no token or it has more than 100 characters;
//! 5. `[CLS]` and `[SEP]` go around the sequence; truncation keeps them at the ends.
//!
//! Build a [`Tokenizer`] from a `vocab.txt` ([`Tokenizer::from_vocab_file`]) or from the tokens in
//! id order ([`Tokenizer::from_parts`]), as GGUF stores them in `tokenizer.ggml.tokens` (llama.cpp
//! writes them with a `▁` on word-initial tokens instead of `##` on the others; both forms are read).
//!
//! ```
//! use wordpiece_tokenizer::{EncodeOptions, Tokenizer, VocabConfig};
//! let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", ",", "!"];
//! let tok = Tokenizer::from_parts(vocab, VocabConfig::default())?;
//! assert_eq!(tok.encode("Hello, UNAFFABLE!"), vec![2, 7, 8, 4, 5, 6, 9, 3]);
//! assert_eq!(tok.encode("héllo wörld"), vec![2, 7, 1, 3]); // "world" is not in the vocabulary
//! let opts = EncodeOptions { max_length: Some(4), ..EncodeOptions::default() };
//! assert_eq!(tok.encode_with("hello hello hello", &opts)?, vec![2, 7, 7, 3]);
//! assert_eq!(tok.decode(&[2, 7, 8, 4, 5, 6, 9, 3])?, "hello, unaffable!");
//! # Ok::<(), wordpiece_tokenizer::TokenizerError>(())
//! ```
//!
//! # Performance
//! ASCII text takes one table lookup per byte to normalize and pre-tokenize; only runs of
//! non-ASCII characters go through the general Unicode path (category tables, NFD,
//! lower-casing). Each piece of a word is found by one walk over a byte trie of the vocabulary, and
//! nothing is allocated per word or per candidate (per-thread scratch buffers are reused).
//!
//! # Exactness
//! The character classes are those `tokenizers` uses, not current Unicode's: categories from the
//! `unicode_categories` crate's tables (so e.g. `⹏` U+2E4F, punctuation only since Unicode 11,
//! stays inside a word), whitespace and lower-casing from Rust's `char`. NFD comes from the
//! `unicode-normalization` crate; `tokenizers` uses an older fork of it, so characters whose
//! canonical decomposition was added to Unicode since could differ.

mod chars;
mod error;
// Generated range tables, kept compact.
#[rustfmt::skip]
mod tables;
mod tokenizer;
mod trie;

pub use error::TokenizerError;
pub use tokenizer::{
    DecodeOptions, EncodeOptions, Normalization, Tokenizer, Truncation, VocabConfig, VocabStyle,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tokenizer_is_send_sync() {
        assert_send_sync::<Tokenizer>();
    }
}
