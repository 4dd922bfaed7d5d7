//! The tokenizer metadata: token texts, scores and types from `tokenizer.model`, corrected by
//! `added_tokens.json` and `tokenizer_config.json`, and the special-token ids and flags, exactly as
//! llama.cpp's `_create_vocab_sentencepiece` and gguf-py's `SpecialVocab` derive them.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use spm_tokenizer::proto::{parse_model_proto, PieceType};

use super::source::{read_file, JsonFile};
use super::ConvertError;

/// SentencePiece token types, numbered as GGUF's `tokenizer.ggml.token_type` stores them.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// The vocabulary arrays and special-token metadata.
#[derive(Debug, Clone)]
pub(crate) struct Vocab {
    /// `tokenizer.ggml.tokens`
    pub(crate) tokens: Vec<String>,
    /// `tokenizer.ggml.scores`
    pub(crate) scores: Vec<f32>,
    /// `tokenizer.ggml.token_type`
    pub(crate) types: Vec<i32>,
    /// `(kind, id)` for `tokenizer.ggml.<kind>_token_id`, in the order gguf-py adds them.
    pub(crate) special_ids: Vec<(&'static str, u32)>,
    /// `(kind, flag)` for `tokenizer.ggml.add_<kind>_token`, in the order gguf-py adds them.
    pub(crate) add_flags: Vec<(&'static str, bool)>,
}

/// gguf-py's `SpecialVocab.special_token_types`.
const SPECIAL_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

impl Vocab {
    /// Reads the vocabulary of `dir`; `vocab_size` is `config.json`'s (the token arrays are padded
    /// to it), or the number of SentencePiece pieces when the config has none.
    pub(crate) fn read(dir: &Path, vocab_size: Option<u32>) -> Result<Self, ConvertError> {
        let model_path = dir.join("tokenizer.model");
        let bytes = read_file(&model_path)?;
        let proto = parse_model_proto(&bytes).map_err(|source| ConvertError::Tokenizer {
            path: model_path.clone(),
            source,
        })?;
        drop(bytes);
        let n_pieces = proto.pieces.len();
        let vocab_size = match vocab_size {
            Some(n) => n as usize,
            None => n_pieces,
        };
        if vocab_size == 0 || vocab_size > 1 << 24 {
            return Err(ConvertError::BadTokenizer {
                path: dir.join("config.json"),
                reason: format!("vocab_size {vocab_size} is out of range (1..=16777216)"),
            });
        }

        let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
        let mut scores = vec![-10000.0f32; vocab_size];
        let mut types = vec![UNUSED; vocab_size];
        for (id, piece) in proto.pieces.into_iter().enumerate().take(vocab_size) {
            // SentencePieceProcessor's IsUnknown / IsControl / IsUnused / IsByte, else NORMAL
            // (a USER_DEFINED piece of the model proto is NORMAL here, as in llama.cpp).
            types[id] = match piece.kind {
                PieceType::Unknown => UNKNOWN,
                PieceType::Control => CONTROL,
                PieceType::Unused => UNUSED,
                PieceType::Byte => BYTE,
                PieceType::Normal | PieceType::UserDefined => NORMAL,
            };
            scores[id] = piece.score;
            tokens[id] = piece.piece;
        }

        // added_tokens.json: user-defined tokens (ids past the vocabulary are ignored).
        let added_path = dir.join("added_tokens.json");
        if let Some(added) = JsonFile::read_optional(&added_path)? {
            for (text, id) in added.object()? {
                let id = id.as_u64().ok_or_else(|| ConvertError::BadValue {
                    path: added_path.clone(),
                    key: text.clone(),
                    expected: "a token id",
                    found: id.to_string(),
                })?;
                let Some(id) = usize::try_from(id).ok().filter(|&i| i < vocab_size) else {
                    continue;
                };
                tokens[id] = text.clone();
                scores[id] = -1000.0;
                types[id] = USER_DEFINED;
            }
        }

        // tokenizer_config.json: added_tokens_decoder makes tokens control or user-defined.
        let config_path = dir.join("tokenizer_config.json");
        let tokenizer_config = JsonFile::read_optional(&config_path)?;
        if let Some(config) = &tokenizer_config {
            if let Some(decoder) = config
                .get("added_tokens_decoder")
                .and_then(Value::as_object)
            {
                for (id_text, data) in decoder {
                    let bad = |reason: String| ConvertError::BadTokenizer {
                        path: config_path.clone(),
                        reason,
                    };
                    let id: usize = id_text.parse().map_err(|_| {
                        bad(format!(
                            "added_tokens_decoder key {id_text:?} is not a token id"
                        ))
                    })?;
                    let content = data.get("content").and_then(Value::as_str).ok_or_else(|| {
                        bad(format!("added_tokens_decoder[{id_text:?}] has no content"))
                    })?;
                    if id >= vocab_size {
                        continue;
                    }
                    let special = data.get("special").and_then(Value::as_bool) == Some(true);
                    let content = if special || looks_special(content) {
                        types[id] = CONTROL;
                        content.to_owned()
                    } else {
                        types[id] = USER_DEFINED;
                        // pre-normalize user-defined spaces
                        content.replace('\u{2581}', " ")
                    };
                    scores[id] = -1000.0;
                    tokens[id] = content;
                }
            }
        }

        let (special_ids, add_flags) = special_vocab(dir, tokenizer_config.as_ref(), vocab_size)?;
        Ok(Vocab {
            tokens,
            scores,
            types,
            special_ids,
            add_flags,
        })
    }
}

/// llama.cpp's `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// The parts of `tokenizer.json` gguf-py's `SpecialVocab` reads (the large `model` is skipped).
#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    post_processor: Option<Value>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: Option<u64>,
    content: Option<String>,
}

/// gguf-py's `SpecialVocab` for a SentencePiece model: special token ids (from
/// `tokenizer_config.json` looked up in `tokenizer.json`'s added tokens, then `config.json`'s
/// `*_token_id`) and the add-bos/eos/sep flags (from `tokenizer.json`'s post-processor, then
/// `tokenizer_config.json`).
#[allow(clippy::type_complexity)]
fn special_vocab(
    dir: &Path,
    tokenizer_config: Option<&JsonFile>,
    n_vocab: usize,
) -> Result<(Vec<(&'static str, u32)>, Vec<(&'static str, bool)>), ConvertError> {
    let mut ids: Vec<(&'static str, u32)> = Vec::new();
    let mut flags: Vec<(&'static str, bool)> = Vec::new();
    let set_id = |ids: &mut Vec<(&'static str, u32)>, kind: &'static str, id: Option<u64>| {
        let Some(id) = id.and_then(|i| u32::try_from(i).ok()) else {
            return;
        };
        if (id as usize) < n_vocab && !ids.iter().any(|(k, _)| *k == kind) {
            ids.push((kind, id));
        }
    };
    let set_flag =
        |flags: &mut Vec<(&'static str, bool)>, kind: &'static str, value: bool| match flags
            .iter_mut()
            .find(|(k, _)| *k == kind)
        {
            Some(entry) => entry.1 = value,
            None => flags.push((kind, value)),
        };

    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer: Option<TokenizerJson> = if tokenizer_path.is_file() {
        let bytes = read_file(&tokenizer_path)?;
        Some(
            serde_json::from_slice(&bytes).map_err(|source| ConvertError::Json {
                path: tokenizer_path.clone(),
                source,
            })?,
        )
    } else {
        None
    };

    let config_str = |key: &str| -> Option<String> {
        tokenizer_config
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // Extra special-token kinds the post-processor may add (eot/eom); not needed for Gemma.
    if let Some(tokenizer) = &tokenizer {
        let special_bos = config_str("bos_token");
        let special_cls = config_str("cls_token");
        let special_eos = config_str("eos_token");
        if let Some(pp) = &tokenizer.post_processor {
            let processors: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![pp],
            };
            for processor in processors {
                match processor.get("type").and_then(Value::as_str) {
                    Some("ByteLevel") => {
                        if !flags.iter().any(|(k, _)| *k == "bos") {
                            flags.push(("bos", false));
                        }
                        if !flags.iter().any(|(k, _)| *k == "eos") {
                            flags.push(("eos", false));
                        }
                    }
                    Some("RobertaProcessing") => {
                        set_flag(&mut flags, "bos", true);
                        set_flag(&mut flags, "eos", true);
                        set_flag(&mut flags, "sep", true);
                    }
                    Some("TemplateProcessing") => template_flags(
                        processor,
                        special_bos.as_deref(),
                        special_cls.as_deref(),
                        special_eos.as_deref(),
                        config_str("sep_token").as_deref(),
                        &mut |kind, value| set_flag(&mut flags, kind, value),
                    ),
                    _ => {}
                }
            }
        }
    }

    if let Some(config) = tokenizer_config {
        let added: HashMap<&str, u64> = tokenizer
            .as_ref()
            .map(|t| {
                let mut map = HashMap::new();
                for a in &t.added_tokens {
                    if let (Some(content), Some(id)) = (a.content.as_deref(), a.id) {
                        // the first match wins
                        map.entry(content).or_insert(id);
                    }
                }
                map
            })
            .unwrap_or_default();
        for kind in SPECIAL_TYPES {
            if let Some(flag) = config
                .get(&format!("add_{kind}_token"))
                .and_then(Value::as_bool)
            {
                if !flags.iter().any(|(k, _)| *k == kind) {
                    flags.push((kind, flag));
                }
            }
            let content = match config.get(&format!("{kind}_token")) {
                Some(Value::String(s)) => Some(s.as_str()),
                Some(Value::Object(o)) => o.get("content").and_then(Value::as_str),
                _ => None,
            };
            if let Some(content) = content {
                set_id(&mut ids, kind, added.get(content).copied());
            }
        }
    }

    if let Some(config) = JsonFile::read_optional(&dir.join("config.json"))? {
        for kind in SPECIAL_TYPES {
            let key = format!("{kind}_token_id");
            let id = config.get(&key).or_else(|| {
                config
                    .get("text_config")
                    .and_then(|t| t.get(&key))
                    .filter(|v| !v.is_null())
            });
            set_id(&mut ids, kind, id.and_then(Value::as_u64));
        }
    }
    Ok((ids, flags))
}

/// gguf-py's "crude parsing of TemplateProcessing" for the add-bos/eos/sep flags.
fn template_flags(
    processor: &Value,
    special_bos: Option<&str>,
    special_cls: Option<&str>,
    special_eos: Option<&str>,
    special_sep: Option<&str>,
    set: &mut dyn FnMut(&'static str, bool),
) {
    let special_id = |v: &Value| -> Option<String> {
        v.get("SpecialToken")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let seq_id = |v: &Value| -> Option<String> {
        v.get("Sequence")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let empty = Vec::new();
    let single = processor
        .get("single")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let pair = processor
        .get("pair")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut special_first = None;
    let mut special_last = None;
    let mut special_eos = special_eos.map(str::to_owned);
    if single.len() > 1 {
        special_first = single.first().and_then(special_id);
        if let Some(first) = &special_first {
            // gguf-py adopts the template's first token as bos/cls when either is unset.
            let is_bos = special_bos.is_none()
                || special_cls.is_none()
                || Some(first.as_str()) == special_bos
                || Some(first.as_str()) == special_cls;
            set("bos", is_bos);
        }
        special_last = single.last().and_then(special_id);
        if let Some(last) = &special_last {
            // gguf-py makes the template's last token the eos token, so the flag is always set.
            special_eos = Some(last.clone());
            set("eos", true);
        }
    }
    if pair.is_empty() {
        return;
    }
    let start =
        usize::from(special_first.is_some() && pair.first().and_then(special_id) == special_first);
    let stop_trim =
        usize::from(special_last.is_some() && pair.last().and_then(special_id) == special_last);
    if start + stop_trim > pair.len() {
        return;
    }
    let inner = &pair[start..pair.len() - stop_trim];
    if inner.is_empty() {
        return;
    }
    let (Some(a), Some(b)) = (
        inner.first().and_then(seq_id),
        inner.last().and_then(seq_id),
    ) else {
        return;
    };
    if a != "A" || b != "B" || inner.len() < 2 {
        return;
    }
    let middle = &inner[1..inner.len() - 1];
    if middle.is_empty() {
        return;
    }
    let is_sep_or_eos = |s: &str| Some(s) == special_sep || Some(s) == special_eos.as_deref();
    let mut add_sep = false;
    if let Some(entry) = special_id(&middle[0]) {
        if is_sep_or_eos(&entry) && special_last.is_none() {
            add_sep = true;
        }
    }
    if middle.len() == 2 {
        if let Some(entry) = special_id(&middle[1]) {
            if is_sep_or_eos(&entry) {
                add_sep = true;
            }
        }
    }
    set("sep", add_sep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_template_flags() {
        let pp: Value = serde_json::from_str(
            r#"{"type":"TemplateProcessing",
            "single":[{"SpecialToken":{"id":"<bos>"}},{"Sequence":{"id":"A"}},{"SpecialToken":{"id":"<eos>"}}],
            "pair":[{"SpecialToken":{"id":"<bos>"}},{"Sequence":{"id":"A"}},{"SpecialToken":{"id":"<eos>"}},
                    {"SpecialToken":{"id":"<bos>"}},{"Sequence":{"id":"B"}},{"SpecialToken":{"id":"<eos>"}}]}"#,
        )
        .unwrap();
        let mut got = Vec::new();
        template_flags(
            &pp,
            Some("<bos>"),
            None,
            Some("<eos>"),
            None,
            &mut |k, v| got.push((k, v)),
        );
        assert_eq!(got, [("bos", true), ("eos", true), ("sep", false)]);
    }

    #[test]
    fn special_looking_tokens() {
        assert!(looks_special("<mask>"));
        assert!(looks_special("<unused12>"));
        assert!(looks_special("<|im_start|>"));
        assert!(!looks_special("[multimodal]"));
    }
}
