//! The converter's error type.

use std::path::PathBuf;

/// Everything that can go wrong while converting a Hugging Face checkpoint to GGUF.
///
/// Every variant that concerns a file carries its path, so the message alone says which file to
/// look at. On any error [`crate::convert::convert`] removes its partial output: no half-written
/// GGUF file is ever left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The output type string is not one of `q8_0`, `f32`, `f16`, `bf16`.
    #[error("unknown output type {given:?}: expected one of q8_0, f32, f16, bf16")]
    UnknownType {
        /// The string given.
        given: String,
    },

    /// A file the converter needs does not exist.
    #[error("{path}: file not found (is this a sentence-transformers EmbeddingGemma directory?)")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },

    /// Reading (or memory-mapping) an input file failed.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file does not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON file lacks a key the converter needs.
    #[error("{path}: missing key {key:?}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },

    /// A JSON key has a value of the wrong type or out of range.
    #[error("{path}: key {key:?} should be {expected}, found {found}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What the converter expected (`"an unsigned 32-bit integer"`...).
        expected: &'static str,
        /// The value found, as JSON.
        found: String,
    },

    /// `config.json` describes a model other than EmbeddingGemma.
    #[error("{path}: architecture {found:?} (model_type {model_type:?}) is not supported: this converter only handles EmbeddingGemma (Gemma3TextModel, model_type gemma3_text)")]
    WrongArchitecture {
        /// The `config.json`.
        path: PathBuf,
        /// The `architectures` entry found (or `"<none>"`).
        found: String,
        /// The `model_type` found (or `"<none>"`).
        model_type: String,
    },

    /// A safetensors file is malformed or truncated.
    #[error("{path}: invalid or truncated safetensors file: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// A tensor the converter does not know how to map to a GGUF name.
    #[error("{path}: unexpected tensor {name:?} (not part of an EmbeddingGemma checkpoint)")]
    UnknownTensor {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },

    /// A tensor the model needs is missing.
    #[error("{path}: tensor {name:?} is missing")]
    MissingTensor {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },

    /// A tensor has a data type the converter does not read.
    #[error("{path}: tensor {name:?} has dtype {dtype}, expected F32, F16 or BF16")]
    UnsupportedDtype {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },

    /// A tensor's shape does not fit the configuration (or cannot be stored in GGUF).
    #[error("{path}: tensor {name:?} has shape {shape:?}: {reason}")]
    BadShape {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape found (slowest dimension first, as safetensors stores it).
        shape: Vec<usize>,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor holds a value that cannot be quantised (NaN or infinity).
    #[error("{path}: tensor {name:?} holds a non-finite value ({value}) at element {index}; it cannot be quantised to Q8_0")]
    NonFinite {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The element index.
        index: u64,
        /// The value.
        value: f32,
    },

    /// `tokenizer.model` is not a valid SentencePiece model.
    #[error("{path}: invalid SentencePiece model: {source}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: spm_tokenizer::TokenizerError,
    },

    /// Something in the tokenizer files is inconsistent (a token id out of range...).
    #[error("{path}: {reason}")]
    BadTokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Writing the output file failed.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The output file being written (the temporary name).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The GGUF writer rejected the data.
    #[error("{path}: {source}")]
    Gguf {
        /// The output file being written (the temporary name).
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: gguf::GgufError,
    },
}
