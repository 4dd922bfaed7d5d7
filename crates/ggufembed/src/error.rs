//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or embedding text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file does not exist.
    #[error(
        "model file {} not found; run `cargo xtask fetch-model` to download and convert \
         EmbeddingGemma, or set {} to the path of a GGUF embedding model",
        path.display(),
        crate::MODEL_ENV
    )]
    ModelNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The model path names something that is not a regular file (a directory, a FIFO, a
    /// device, a socket): reading it could block forever or never end, so it is refused before
    /// it is opened.
    #[error("{} is {kind}, not a model file; give the path of a GGUF file", path.display())]
    ModelNotAFile {
        /// The path that was given.
        path: PathBuf,
        /// What is there: "a directory", "a FIFO (named pipe)", "a character device", ...
        kind: &'static str,
    },
    /// The runtime could not load the model or failed while running it.
    #[error(transparent)]
    Runtime(#[from] gemma_runtime::RuntimeError),
    /// The tokenizer rejected the text or the ids.
    #[error(transparent)]
    Tokenizer(#[from] spm_tokenizer::TokenizerError),
    /// The requested output dimension is not one the model was trained for.
    #[error(
        "output dimension {requested} is not supported by this model; choose one of {}",
        list(supported)
    )]
    UnsupportedDimension {
        /// The dimension asked for.
        requested: usize,
        /// The dimensions the model offers (Matryoshka sizes), largest first.
        supported: Vec<usize>,
    },
    /// A text is longer than the model's context and truncation was set to
    /// [`Truncation::Error`](crate::Truncation::Error).
    #[error(
        "text {index} encodes to {tokens} tokens (prompt and special tokens included), more than \
         the model's context of {max}; shorten it or use Truncation::Truncate"
    )]
    TooLong {
        /// Position of the text in the batch.
        index: usize,
        /// Number of tokens it encodes to.
        tokens: usize,
        /// The model's context length.
        max: usize,
    },
    /// The model gave a vector with values that are not finite numbers (NaN or infinity) for a
    /// text: the model file's weights are broken. Never returned as a vector.
    #[error(
        "text {index} gave an embedding with {count} non-finite values (NaN or infinity): the \
         model's weights are broken"
    )]
    NonFinite {
        /// Position of the text in the batch.
        index: usize,
        /// How many values of its vector (full dimension, before normalisation) are not finite.
        count: usize,
    },
    /// A named prompt that the model does not define.
    #[error("the model has no task prompt named {name:?}; known prompts: {}", available.join(", "))]
    UnknownPrompt {
        /// The name asked for.
        name: String,
        /// The prompt names the model defines.
        available: Vec<String>,
    },
    /// An option has a value that cannot work (for example a batch size of zero).
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why the value was rejected.
        reason: String,
    },
    /// The thread pool could not be created.
    #[error("cannot start the thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// The worker threads for single texts could not be started.
    #[error("cannot start the worker threads: {0}")]
    Threads(#[source] std::io::Error),
    /// The runtime returned a batch of the wrong shape (a bug in the runtime).
    #[error("the runtime returned {got} values for a text, expected {expected}")]
    BadOutput {
        /// How many values the runtime returned (or how many vectors, for a batch).
        got: usize,
        /// How many were expected.
        expected: usize,
    },
}

fn list(dims: &[usize]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Result` with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
