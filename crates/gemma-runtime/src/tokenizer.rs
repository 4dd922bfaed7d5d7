//! The SentencePiece tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys
//! (`tokenizer.ggml.model = "llama"`).

use gguf::Gguf;
// TEMPORARY until spm-tokenizer lands its Tokenizer: a stand-in with the same constructor.
pub use shim::{Tokenizer, VocabConfig};
#[allow(missing_docs, dead_code)]
mod shim {
    #[derive(Debug)]
    pub struct Tokenizer {
        n: usize,
    }
    pub struct VocabConfig {
        pub bos: Option<u32>,
        pub eos: Option<u32>,
        pub unk: Option<u32>,
        pub pad: Option<u32>,
        pub add_bos: bool,
        pub add_eos: bool,
        pub add_space_prefix: bool,
    }
    impl Tokenizer {
        pub fn from_parts(
            p: Vec<String>,
            _s: Vec<f32>,
            _t: Vec<i32>,
            _c: VocabConfig,
        ) -> Result<Self, spm_tokenizer::TokenizerError> {
            Ok(Tokenizer { n: p.len() })
        }
        pub fn vocab_size(&self) -> usize {
            self.n
        }
    }
}

use crate::gemma::optional;
use crate::RuntimeError;

/// Builds the tokenizer from `tokenizer.ggml.tokens`, `.scores`, `.token_type`, the special ids and
/// the `add_*` flags. Missing or wrong-typed required keys are errors; the optional ones
/// (`padding_token_id`, `add_space_prefix`, ...) take llama.cpp's defaults.
pub(crate) fn from_gguf<B: AsRef<[u8]>>(file: &Gguf<B>) -> Result<Tokenizer, RuntimeError> {
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "llama" {
        return Err(RuntimeError::InvalidHyperparameter {
            key: "tokenizer.ggml.model".to_owned(),
            value: model.to_owned(),
            reason: "only SentencePiece (\"llama\") vocabularies are supported".to_owned(),
        });
    }
    let pieces: Vec<String> = file
        .get_str_array("tokenizer.ggml.tokens")?
        .map(str::to_owned)
        .collect();
    let scores = file.get_f32_array("tokenizer.ggml.scores")?.to_vec();
    let types = file.get_i32_array("tokenizer.ggml.token_type")?.to_vec();
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
    Ok(Tokenizer::from_parts(pieces, scores, types, config)?)
}
