//! The SentencePiece tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys
//! (`tokenizer.ggml.model = "llama"`).

use gguf::Gguf;
use spm_tokenizer::{Tokenizer, VocabConfig};

use crate::gemma::optional;
use crate::RuntimeError;

/// Builds the tokenizer from `tokenizer.ggml.tokens`, `.scores`, `.token_type`, the special ids and
/// the `add_*` flags. Missing or wrong-typed required keys are errors; the optional ones
/// (`padding_token_id`, `add_space_prefix`, ...) take llama.cpp's defaults.
///
/// This is the tokenizer a model loaded from `file` uses; it reads only the metadata, never the
/// tensors, so it is the fast way to get the tokenizer alone.
///
/// # Errors
/// [`RuntimeError::Gguf`] for a missing or wrong-typed key, [`RuntimeError::InvalidHyperparameter`]
/// for a tokenizer model other than `"llama"`, [`RuntimeError::Tokenizer`] for an inconsistent
/// vocabulary.
pub fn from_gguf<B: AsRef<[u8]>>(file: &Gguf<B>) -> Result<Tokenizer, RuntimeError> {
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "llama" {
        return Err(RuntimeError::InvalidHyperparameter {
            key: "tokenizer.ggml.model".to_owned(),
            value: model.to_owned(),
            reason: "only SentencePiece (\"llama\") vocabularies are supported".to_owned(),
        });
    }
    let pieces = file.get_str_array("tokenizer.ggml.tokens")?;
    let scores = file.get_f32_array("tokenizer.ggml.scores")?;
    let types = file.get_i32_array("tokenizer.ggml.token_type")?;
    let id = |key: &str| optional(file.get_u32(key));
    let flag = |key: &str| optional(file.get_bool(key));
    let config = VocabConfig {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos: flag("tokenizer.ggml.add_bos_token")?.unwrap_or(true),
        add_eos: flag("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?.unwrap_or(true),
    };
    Ok(Tokenizer::from_parts(
        pieces,
        scores.iter(),
        types.iter(),
        config,
    )?)
}
