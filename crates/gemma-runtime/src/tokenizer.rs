//! The SentencePiece tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys
//! (`tokenizer.ggml.model = "llama"`).

use gguf::Gguf;
use spm_tokenizer::{Tokenizer, VocabConfig};

use crate::gemma::optional;
use crate::RuntimeError;

const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";

/// Builds the tokenizer from `tokenizer.ggml.tokens`, `.scores`, `.token_type`, the special ids and
/// the `add_*` flags. Missing or wrong-typed required keys are errors; the optional ones
/// (`padding_token_id`, `add_space_prefix`, the `add_*` flags, ...) take llama.cpp's defaults.
/// `bos_token_id` is required while `add_bos_token` is true (its default) and `eos_token_id`
/// while `add_eos_token` is true: llama.cpp's defaults for them (1 and 2) are those of
/// Llama's SentencePiece vocabulary, not of Gemma's (`<eos>` = 1, `<bos>` = 2).
///
/// This is the tokenizer a model loaded from `file` uses; it reads only the metadata, never the
/// tensors, so it is the fast way to get the tokenizer alone.
///
/// # Errors
/// [`RuntimeError::Gguf`] for a missing or wrong-typed key, [`RuntimeError::InvalidHyperparameter`]
/// for a tokenizer model other than `"llama"`, [`RuntimeError::MissingSpecialToken`] for a
/// `bos`/`eos` the flags ask for without its id, [`RuntimeError::Tokenizer`] for an
/// inconsistent vocabulary.
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
    let add_bos = flag(ADD_BOS)?.unwrap_or(true);
    let add_eos = flag(ADD_EOS)?.unwrap_or(false);
    // A token the vocabulary adds to every sequence must have its id in the file. llama.cpp
    // falls back to the SentencePiece defaults (bos 1, eos 2) for a "llama" vocabulary, which are
    // Gemma's <eos> and <bos> swapped; leaving the token out instead changes every vector.
    let required = |key: &'static str, flag: &'static str, wanted: bool| match id(key)? {
        None if wanted => Err(RuntimeError::MissingSpecialToken { key, flag }),
        found => Ok(found),
    };
    let config = VocabConfig {
        bos: required(BOS_ID, ADD_BOS, add_bos)?,
        eos: required(EOS_ID, ADD_EOS, add_eos)?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos,
        add_eos,
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?.unwrap_or(true),
    };
    Ok(Tokenizer::from_parts(
        pieces,
        scores.iter(),
        types.iter(),
        config,
    )?)
}
