//! Reading the small files of a sentence-transformers EmbeddingGemma directory: `config.json`,
//! `modules.json`, the Dense and Pooling module configs, `generation_config.json` and the model
//! card's YAML front matter.
//!
//! Each reader mirrors what llama.cpp's `convert_hf_to_gguf.py` takes from the same file, and
//! nothing more: the point is to write the same metadata llama.cpp writes.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ConvertError;

/// Reads a whole file, mapping "not found" to [`ConvertError::MissingFile`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ConvertError> {
    std::fs::read(path).map_err(|source| io_error(path, source))
}

/// Maps an I/O error on an input file to the matching [`ConvertError`].
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> ConvertError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ConvertError::MissingFile {
            path: path.to_path_buf(),
        }
    } else {
        ConvertError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A parsed JSON file that remembers its path for error messages.
pub(crate) struct JsonFile {
    pub(crate) path: PathBuf,
    pub(crate) value: Value,
}

impl JsonFile {
    /// Reads and parses `path`.
    pub(crate) fn read(path: &Path) -> Result<Self, ConvertError> {
        let bytes = read_file(path)?;
        let value = serde_json::from_slice(&bytes).map_err(|source| ConvertError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonFile {
            path: path.to_path_buf(),
            value,
        })
    }

    /// Reads `path` if it exists; `None` when it does not.
    pub(crate) fn read_optional(path: &Path) -> Result<Option<Self>, ConvertError> {
        if path.is_file() {
            Self::read(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The top-level object (an error naming the file when the JSON is not an object).
    pub(crate) fn object(&self) -> Result<&Map<String, Value>, ConvertError> {
        self.value
            .as_object()
            .ok_or_else(|| ConvertError::BadValue {
                path: self.path.clone(),
                key: String::new(),
                expected: "a JSON object at the top level",
                found: short(&self.value),
            })
    }

    /// A top-level key, `None` when absent or `null` (as Python's `dict.get` sees it).
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, expected: &'static str, found: &Value) -> ConvertError {
        ConvertError::BadValue {
            path: self.path.clone(),
            key: key.to_owned(),
            expected,
            found: short(found),
        }
    }

    /// A required key holding a `u32`.
    pub(crate) fn u32(&self, key: &str) -> Result<u32, ConvertError> {
        match self.get(key) {
            None => Err(ConvertError::MissingKey {
                path: self.path.clone(),
                key: key.to_owned(),
            }),
            Some(v) => self.as_u32(key, v),
        }
    }

    /// An optional key holding a `u32`, else `default`.
    pub(crate) fn u32_or(&self, key: &str, default: u32) -> Result<u32, ConvertError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => self.as_u32(key, v),
        }
    }

    fn as_u32(&self, key: &str, v: &Value) -> Result<u32, ConvertError> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.bad(key, "an unsigned 32-bit integer", v))
    }

    /// An optional key holding a number, else `default`.
    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64, ConvertError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.bad(key, "a number", v)),
        }
    }

    /// An optional key holding a string.
    pub(crate) fn str_opt(&self, key: &str) -> Result<Option<&str>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a string", v)),
        }
    }
}

/// A JSON value cut to a readable length for an error message.
fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// The hyperparameters of `config.json` that end up in the GGUF file.
#[derive(Debug, Clone)]
pub(crate) struct HfConfig {
    pub(crate) block_count: u32,
    pub(crate) context_length: u32,
    pub(crate) embedding_length: u32,
    pub(crate) feed_forward_length: u32,
    pub(crate) head_count: u32,
    pub(crate) head_count_kv: u32,
    pub(crate) rope_freq_base: f64,
    pub(crate) rope_freq_base_swa: Option<f64>,
    pub(crate) rms_eps: f64,
    pub(crate) head_dim: u32,
    pub(crate) sliding_window: u32,
    pub(crate) vocab_size: Option<u32>,
}

/// The architecture llama.cpp maps to `gemma-embedding`.
pub(crate) const HF_ARCHITECTURE: &str = "Gemma3TextModel";
/// The `model_type` of that architecture.
pub(crate) const HF_MODEL_TYPE: &str = "gemma3_text";

impl HfConfig {
    /// Reads and checks `config.json`.
    pub(crate) fn read(path: &Path) -> Result<Self, ConvertError> {
        let json = JsonFile::read(path)?;
        json.object()?;
        let arch = json
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        let model_type = json.get("model_type").and_then(Value::as_str);
        if arch != Some(HF_ARCHITECTURE) || model_type.is_some_and(|m| m != HF_MODEL_TYPE) {
            return Err(ConvertError::WrongArchitecture {
                path: path.to_path_buf(),
                found: arch.unwrap_or("<none>").to_owned(),
                model_type: model_type.unwrap_or("<none>").to_owned(),
            });
        }
        // rope_theta as llama.cpp finds it: rope_parameters / rope_scaling ["full_attention"]
        // ["rope_theta"], else the top-level rope_theta (default 1e6 in Gemma3Model).
        let rope_params = json
            .get("rope_parameters")
            .or_else(|| json.get("rope_scaling"))
            .and_then(Value::as_object);
        let nested = |section: &str| -> Option<f64> {
            rope_params
                .and_then(|p| p.get(section))
                .and_then(|s| s.get("rope_theta"))
                .and_then(Value::as_f64)
        };
        let rope_freq_base = match nested("full_attention") {
            Some(v) => v,
            None => json.f64_or("rope_theta", 1_000_000.0)?,
        };
        let rope_freq_base_swa = match nested("sliding_attention") {
            Some(v) => Some(v),
            None => match json.get("rope_local_base_freq") {
                Some(_) => Some(json.f64_or("rope_local_base_freq", 0.0)?),
                None => None,
            },
        };
        let vocab_size = match json.get("vocab_size") {
            Some(_) => Some(json.u32("vocab_size")?),
            None => None,
        };
        Ok(HfConfig {
            block_count: json.u32("num_hidden_layers")?,
            context_length: json.u32_or("max_position_embeddings", 131_072)?,
            embedding_length: json.u32("hidden_size")?,
            feed_forward_length: json.u32("intermediate_size")?,
            head_count: json.u32_or("num_attention_heads", 8)?,
            head_count_kv: json.u32_or("num_key_value_heads", 4)?,
            rope_freq_base,
            rope_freq_base_swa,
            rms_eps: json.f64_or("rms_norm_eps", 1e-6)?,
            head_dim: json.u32_or("head_dim", 256)?,
            sliding_window: json.u32("sliding_window")?,
            vocab_size,
        })
    }
}

/// One Dense module of the sentence-transformers pipeline.
#[derive(Debug, Clone)]
pub(crate) struct DenseModule {
    /// `dense_2` or `dense_3` (llama.cpp's naming: `2_Dense` → `dense_2`, anything else → `dense_3`).
    pub(crate) prefix: &'static str,
    /// The module's `model.safetensors`.
    pub(crate) weights: PathBuf,
    /// `(in_features, out_features)` from the module's `config.json`, when it has them.
    pub(crate) dims: Option<(u32, u32)>,
}

/// What `modules.json` says about the pipeline after the transformer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Modules {
    /// The Dense modules with weights, in `modules.json` order.
    pub(crate) dense: Vec<DenseModule>,
    /// The pooling type (GGUF numbering: 1 mean, 2 cls, 3 last), if there is a Pooling module.
    pub(crate) pooling: Option<u32>,
}

impl Modules {
    /// Reads `modules.json` (required: an EmbeddingGemma directory without it has no Dense layers
    /// and no pooling, and the embeddings would silently differ) and the module configs it names.
    pub(crate) fn read(dir: &Path) -> Result<Self, ConvertError> {
        let path = dir.join("modules.json");
        let json = JsonFile::read(&path)?;
        let list = json
            .value
            .as_array()
            .ok_or_else(|| ConvertError::BadValue {
                path: path.clone(),
                key: String::new(),
                expected: "a JSON array of modules",
                found: short(&json.value),
            })?;
        let mut out = Modules::default();
        for module in list {
            let field = |key: &str| -> Result<&str, ConvertError> {
                module
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConvertError::MissingKey {
                        path: path.clone(),
                        key: key.to_owned(),
                    })
            };
            let kind = field("type")?;
            if kind.ends_with("Pooling") && out.pooling.is_none() {
                let mod_path = field("path")?;
                out.pooling = Some(read_pooling(&dir.join(mod_path).join("config.json"))?);
            } else if kind.ends_with("Dense") {
                let mod_path = field("path")?;
                let weights = dir.join(mod_path).join("model.safetensors");
                if !weights.is_file() {
                    // llama.cpp skips a Dense module without weights; so do we.
                    continue;
                }
                let prefix = if mod_path == "2_Dense" {
                    "dense_2"
                } else {
                    "dense_3"
                };
                let conf_path = dir.join(mod_path).join("config.json");
                let dims = match JsonFile::read_optional(&conf_path)? {
                    Some(conf) => match (conf.get("in_features"), conf.get("out_features")) {
                        (Some(_), Some(_)) => {
                            Some((conf.u32("in_features")?, conf.u32("out_features")?))
                        }
                        _ => None,
                    },
                    None => None,
                };
                out.dense.push(DenseModule {
                    prefix,
                    weights,
                    dims,
                });
            }
        }
        Ok(out)
    }
}

/// The pooling type of a sentence-transformers Pooling module config (GGUF numbering).
fn read_pooling(path: &Path) -> Result<u32, ConvertError> {
    let json = JsonFile::read(path)?;
    let flag = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
    if flag("pooling_mode_mean_tokens") {
        return Ok(1);
    }
    if flag("pooling_mode_cls_token") {
        return Ok(2);
    }
    if flag("pooling_mode_lasttoken") {
        return Ok(3);
    }
    match json.str_opt("pooling_mode")? {
        Some("mean") => Ok(1),
        Some("cls") => Ok(2),
        Some("lasttoken") => Ok(3),
        _ => Err(ConvertError::BadValue {
            path: path.to_path_buf(),
            key: "pooling_mode".to_owned(),
            expected: "mean, cls or last-token pooling",
            found: short(&json.value),
        }),
    }
}

/// A sampling default from `generation_config.json`, in the order and with the GGUF type
/// llama.cpp's `Metadata.set_gguf_meta_model` writes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sampling {
    /// `general.sampling.sequence`
    Str(&'static str, String),
    /// An `int32` key.
    I32(&'static str, i32),
    /// A `float32` key.
    F32(&'static str, f32),
}

/// Reads the sampling defaults of `generation_config.json` (absent or unreadable: none, as in
/// llama.cpp, which ignores an invalid file).
pub(crate) fn read_sampling(dir: &Path) -> Vec<Sampling> {
    let path = dir.join("generation_config.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let mut out = Vec::new();
    if let Some(s) = get("sequence").and_then(Value::as_str) {
        out.push(Sampling::Str("general.sampling.sequence", s.to_owned()));
    }
    let int = |out: &mut Vec<Sampling>, key: &'static str, v: Option<&Value>| {
        if let Some(n) = v
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
        {
            out.push(Sampling::I32(key, n));
        }
    };
    let float = |out: &mut Vec<Sampling>, key: &'static str, v: Option<&Value>| {
        if let Some(x) = v.and_then(Value::as_f64) {
            // Python packs a float into a GGUF float32 with struct.pack("f"): round to nearest.
            out.push(Sampling::F32(key, x as f32));
        }
    };
    int(&mut out, "general.sampling.top_k", get("top_k"));
    float(&mut out, "general.sampling.top_p", get("top_p"));
    float(&mut out, "general.sampling.min_p", get("min_p"));
    float(
        &mut out,
        "general.sampling.xtc_probability",
        get("xtc_probability"),
    );
    float(
        &mut out,
        "general.sampling.xtc_threshold",
        get("xtc_threshold"),
    );
    float(&mut out, "general.sampling.temp", get("temperature"));
    int(
        &mut out,
        "general.sampling.penalty_last_n",
        get("penalty_last_n"),
    );
    float(
        &mut out,
        "general.sampling.penalty_repeat",
        get("penalty_repeat").or_else(|| get("repetition_penalty")),
    );
    int(&mut out, "general.sampling.mirostat", get("mirostat"));
    float(
        &mut out,
        "general.sampling.mirostat_tau",
        get("mirostat_tau"),
    );
    float(
        &mut out,
        "general.sampling.mirostat_eta",
        get("mirostat_eta"),
    );
    out
}

/// The parts of the model card (`README.md` YAML front matter) llama.cpp copies into GGUF.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ModelCard {
    /// `license` (a list is joined with commas).
    pub(crate) license: Option<String>,
    /// `tags`, then `pipeline_tag` appended (llama.cpp appends, duplicates included).
    pub(crate) tags: Vec<String>,
    /// `languages`, then `language` appended.
    pub(crate) languages: Vec<String>,
}

/// Reads the front matter of `README.md`, if any.
///
/// Only the flat YAML subset model cards use is understood (`key: value`, `key: [a, b]` and
/// `key:` followed by `- item` lines); anything else is ignored, like llama.cpp ignores front
/// matter it cannot load.
pub(crate) fn read_model_card(dir: &Path) -> ModelCard {
    let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
        return ModelCard::default();
    };
    parse_front_matter(&text)
}

/// Parses model card front matter (see [`read_model_card`]).
pub(crate) fn parse_front_matter(text: &str) -> ModelCard {
    let mut lines = text.lines();
    if lines.next() != Some("---") {
        return ModelCard::default();
    }
    // key -> scalar or list, in order
    let mut entries: Vec<(String, Vec<String>, bool)> = Vec::new();
    for line in lines {
        if line == "---" {
            break;
        }
        let line = line.replace('\t', "  ");
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ") {
            if let Some((_, list, is_list)) = entries.last_mut() {
                if *is_list {
                    list.push(unquote(item));
                }
            }
            continue;
        }
        if line.starts_with(' ') {
            // A continuation of a folded scalar or a nested mapping: not needed here.
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            entries.push((key.trim().to_owned(), Vec::new(), true));
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items = inner
                .split(',')
                .map(unquote)
                .filter(|s| !s.is_empty())
                .collect();
            entries.push((key.trim().to_owned(), items, true));
        } else {
            entries.push((key.trim().to_owned(), vec![unquote(value)], false));
        }
    }
    let find = |k: &str| entries.iter().find(|(key, _, _)| key == k);
    let mut card = ModelCard::default();
    if let Some((_, values, _)) = find("license") {
        if !values.is_empty() {
            card.license = Some(values.join(","));
        }
    }
    if let Some((_, values, _)) = find("tags") {
        card.tags.extend(values.iter().cloned());
    }
    if let Some((_, values, _)) = find("pipeline_tag") {
        card.tags.extend(values.iter().cloned());
    }
    for key in ["languages", "language"] {
        if let Some((_, values, _)) = find(key) {
            card.languages.extend(values.iter().cloned());
        }
    }
    card
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
    inner.unwrap_or(s).to_owned()
}

/// `general.name` as llama.cpp derives it from a directory name (`Metadata.id_to_title`):
/// dashes become spaces, and each all-lowercase word that is not a version or a number is
/// title-cased the way Python's `str.title` does (`model_download` → `Model_Download`).
pub(crate) fn name_from_dir(dir_name: &str) -> String {
    dir_name
        .trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if is_py_lower(w) && !looks_like_version_or_number(w) {
                py_title(w)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.islower`: at least one cased character and no uppercase one.
fn is_py_lower(w: &str) -> bool {
    w.chars().any(char::is_lowercase) && !w.chars().any(char::is_uppercase)
}

/// `^(v\d+(?:\.\d+)*|\d.*)$`
fn looks_like_version_or_number(w: &str) -> bool {
    if w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return true;
    }
    let Some(rest) = w.strip_prefix('v') else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// Python's `str.title`: a cased character after an uncased one is uppercased, others lowercased.
fn py_title(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut prev_cased = false;
    for c in w.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased && !prev_cased {
            out.extend(c.to_uppercase());
        } else if cased {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_like_llama_cpp() {
        assert_eq!(name_from_dir("model_download"), "Model_Download");
        assert_eq!(name_from_dir("embeddinggemma-300m"), "Embeddinggemma 300m");
        assert_eq!(name_from_dir("my-Model-v1.2"), "My Model v1.2");
    }

    #[test]
    fn front_matter() {
        let card = parse_front_matter(
            "---\nlicense: gemma\npipeline_tag: sentence-similarity\nlibrary_name: x\ntags:\n- a\n- 'b'\nextra: y\n  continued\n---\n# body\n",
        );
        assert_eq!(card.license.as_deref(), Some("gemma"));
        assert_eq!(card.tags, ["a", "b", "sentence-similarity"]);
        assert_eq!(
            parse_front_matter("# no front matter"),
            ModelCard::default()
        );
    }
}
