//! The one error type of the runtime.

/// Everything that can go wrong while opening a model or computing an embedding.
///
/// Errors of the crates underneath (the GGUF reader, the tokenizer, the kernels) are wrapped
/// unchanged, so a caller can match e.g. `RuntimeError::Gguf(gguf::GgufError::MissingKey { .. })`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The GGUF file could not be opened or parsed, or a metadata key is missing or has the wrong
    /// type, or a tensor is missing.
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),

    /// The tokenizer stored in the GGUF file could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] spm_tokenizer::TokenizerError),

    /// A kernel rejected its arguments (a bug in the runtime or an unusable tensor shape).
    #[error("kernel: {0}")]
    Kernel(#[from] q8_kernels::KernelError),

    /// `general.architecture` names a model family this runtime does not implement.
    #[error("unsupported architecture {architecture:?} (supported: {supported:?})")]
    UnsupportedArchitecture {
        /// The value of `general.architecture`.
        architecture: String,
        /// The architectures this runtime can run.
        supported: &'static [&'static str],
    },

    /// A hyperparameter read from the metadata is present and well-typed but unusable
    /// (zero, inconsistent with another key, or too large).
    #[error("metadata key {key:?} = {value}: {reason}")]
    InvalidHyperparameter {
        /// The metadata key.
        key: String,
        /// Its value, printed.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A tensor's shape does not match what the hyperparameters say it must be.
    #[error(
        "tensor {name:?} has shape {found:?}, expected {expected:?} (ne, fastest dimension first)"
    )]
    TensorShape {
        /// The tensor name.
        name: String,
        /// The shape implied by the hyperparameters.
        expected: Vec<u64>,
        /// The shape in the file.
        found: Vec<u64>,
    },

    /// A tensor has a ggml type the runtime cannot compute with in that role.
    #[error("tensor {name:?} has type {ggml_type}, which is not supported here (supported: {supported})")]
    UnsupportedTensorType {
        /// The tensor name.
        name: String,
        /// The type's ggml name.
        ggml_type: String,
        /// The types accepted in that role.
        supported: &'static str,
    },

    /// The pooling type stored in the file is not one the runtime implements.
    #[error("pooling type {value} is not supported (supported: 1 = mean, 2 = cls, 3 = last)")]
    UnsupportedPooling {
        /// The value of `{arch}.pooling_type`.
        value: u32,
    },

    /// A token id is not below the vocabulary size.
    #[error(
        "token id {id} at position {position} is outside the vocabulary of {vocab_size} tokens"
    )]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Its index in the sequence.
        position: usize,
        /// The number of rows of the token embedding.
        vocab_size: usize,
    },

    /// An empty token sequence was given; there is nothing to pool.
    #[error("empty token sequence (at least one token, normally <bos> and <eos>, is needed)")]
    EmptySequence,

    /// A sequence is longer than the model's context length.
    #[error("sequence of {len} tokens is longer than the context length {max}; truncate it first")]
    SequenceTooLong {
        /// The number of tokens given.
        len: usize,
        /// The model's context length.
        max: usize,
    },

    /// The file holds a tensor the graph does not read and that is not a known optional one
    /// (e.g. `blk.23.*` with `block_count = 23`): running without it would give wrong vectors.
    #[error("tensor {name:?} is not used by the {architecture} graph: {reason}")]
    UnusedTensor {
        /// The tensor name.
        name: String,
        /// The value of `general.architecture`.
        architecture: String,
        /// Why it is not used (which key decides).
        reason: String,
    },

    /// A special token the vocabulary adds to every sequence has no id in the file.
    ///
    /// llama.cpp falls back to the SentencePiece defaults (`<s>` = 1, `</s>` = 2) there, which
    /// are Gemma's `<eos>` and `<bos>` swapped: the file is refused instead.
    #[error(
        "{flag} asks for the token on every sequence but {key} is missing (no default id is right \
         for every model: llama.cpp's SentencePiece defaults are Gemma's <eos> and <bos> swapped)"
    )]
    MissingSpecialToken {
        /// The missing id key (`tokenizer.ggml.bos_token_id` or `.eos_token_id`).
        key: &'static str,
        /// The flag that asks for the token (`tokenizer.ggml.add_bos_token` or
        /// `.add_eos_token`).
        flag: &'static str,
    },
}
