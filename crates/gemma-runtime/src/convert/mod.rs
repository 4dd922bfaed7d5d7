//! Hugging Face (sentence-transformers) EmbeddingGemma checkpoint → GGUF converter.
//!
//! [`convert`] reads a sentence-transformers EmbeddingGemma directory (`config.json`,
//! `model.safetensors`, `modules.json` with its `2_Dense/` and `3_Dense/` modules,
//! `tokenizer.model`, `tokenizer_config.json`, ...) and writes the `gemma-embedding` GGUF file
//! llama.cpp's `convert_hf_to_gguf.py --sentence-transformers-dense-modules` writes: the same
//! metadata keys in the same order with the same types and values, the same tensors in the same
//! order with the same types and shapes, and byte-identical tensor data for every output type
//! (`q8_0`, `f32`, `f16`, `bf16`). Only `general.name` depends on the input directory's name,
//! exactly as in llama.cpp.
//!
//! ```no_run
//! use std::path::Path;
//! use gemma_runtime::convert::{convert, OutType};
//!
//! let ty: OutType = "q8_0".parse()?;
//! let summary = convert(
//!     Path::new("embeddinggemma-300m"),
//!     Path::new("embeddinggemma-300m-q8_0.gguf"),
//!     ty,
//!     &mut |p| eprint!("\r{:>3}/{} {}", p.index + 1, p.count, p.tensor),
//! )?;
//! println!("{} tensors, {} bytes", summary.n_tensors, summary.file_size);
//! # Ok::<(), gemma_runtime::convert::ConvertError>(())
//! ```
//!
//! # Memory
//!
//! Tensors are converted one chunk (1 Mi elements) at a time from a memory map of the
//! checkpoint, and the pages already converted are released, so the resident set stays far
//! below the checkpoint's size: the largest allocation is the vocabulary (262144 strings).
//!
//! # Failure
//!
//! The output is written to `<out>.partial` in the same directory, flushed to disk, and renamed
//! to `<out>` only when complete; on any error the partial file is removed. Every error names the
//! file it concerns.
//!
//! # Limits
//!
//! Only what EmbeddingGemma checkpoints contain is reproduced: model card fields other than
//! `license`, `tags`, `pipeline_tag` and `language(s)` (base models, datasets, authors...) and the
//! name components llama.cpp guesses from a directory name (basename, size, version) are not
//! written; `general.size_label` always comes from the parameter count. The weights must be in
//! one `model.safetensors` (EmbeddingGemma's are; sharded checkpoints are not read).

mod error;
mod source;
mod tensors;
mod vocab;

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use gguf::{GgufError, GgufWriter, OwnedArray, OwnedValue};

pub use error::ConvertError;
use source::{HfConfig, Modules, Sampling};
use tensors::{PlannedTensor, SafetensorsFile};
use vocab::Vocab;

/// Revision of the converter's output: bumped whenever the bytes it writes for the same input
/// change, so caches of converted files (`cargo xtask fetch-model`) know to convert again.
pub const CONVERTER_REVISION: u32 = 1;

/// The GGUF architecture name of EmbeddingGemma.
pub const GGUF_ARCHITECTURE: &str = "gemma-embedding";

/// The output encoding of the 2-D weight matrices (norms and other 1-D tensors are always F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutType {
    /// 8-bit blocks of 32 values with an f16 scale (ggml `Q8_0`): the default model.
    Q8_0,
    /// 32-bit floats (lossless).
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl OutType {
    /// Every output type, in the order the CLI lists them.
    pub const ALL: [OutType; 4] = [OutType::Q8_0, OutType::F32, OutType::F16, OutType::Bf16];

    /// The lowercase name used on the command line and in file names (`q8_0`, `f32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OutType::Q8_0 => "q8_0",
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::Bf16 => "bf16",
        }
    }

    /// llama.cpp's `general.file_type` value (`LlamaFileType`): 7, 0, 1 or 32.
    pub fn file_type(self) -> u32 {
        match self {
            OutType::Q8_0 => 7,
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Bf16 => 32,
        }
    }
}

impl fmt::Display for OutType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutType {
    type Err = ConvertError;

    /// Parses `q8_0`, `f32`, `f16` or `bf16` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, ConvertError> {
        OutType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ConvertError::UnknownType {
                given: s.to_owned(),
            })
    }
}

/// Progress of a conversion, reported after every chunk of tensor data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertProgress {
    /// GGUF name of the tensor being written.
    pub tensor: String,
    /// Its index (0-based) in the output.
    pub index: usize,
    /// Number of tensors in the output.
    pub count: usize,
    /// Tensor data bytes written so far (all tensors).
    pub bytes_done: u64,
    /// Tensor data bytes in the whole output.
    pub bytes_total: u64,
}

/// What a finished conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    /// The GGUF file written.
    pub path: PathBuf,
    /// Its output type.
    pub out_type: OutType,
    /// Number of metadata keys.
    pub n_metadata: usize,
    /// Number of tensors.
    pub n_tensors: usize,
    /// Number of model parameters (elements of all tensors).
    pub n_params: u64,
    /// Size of the file in bytes.
    pub file_size: u64,
}

/// Converts the sentence-transformers EmbeddingGemma directory `hf_dir` into the GGUF file `out`
/// with 2-D weights encoded as `ty`, calling `progress` as tensor data is written.
///
/// # Errors
/// A [`ConvertError`] naming the file involved: a missing input file, a `config.json` for another
/// architecture, a malformed or truncated safetensors file, tokenizer files that do not parse,
/// an unwritable output. No output file (not even a partial one) exists after an error.
pub fn convert(
    hf_dir: &Path,
    out: &Path,
    ty: OutType,
    progress: &mut dyn FnMut(&ConvertProgress),
) -> Result<ConvertSummary, ConvertError> {
    let config = HfConfig::read(&hf_dir.join("config.json"))?;
    let modules = Modules::read(hf_dir)?;

    // Open and plan every tensor before anything is written, so bad input fails early.
    let mut files: Vec<SafetensorsFile> = Vec::new();
    let mut planned: Vec<PlannedTensor> = Vec::new();
    let vocab = Vocab::read(hf_dir, config.vocab_size)?;
    for dense in &modules.dense {
        let file = SafetensorsFile::open(&dense.weights)?;
        let st = file.parse()?;
        let mut names: Vec<String> = st.names().into_iter().cloned().collect();
        names.sort();
        for name in names {
            if !name.ends_with(".weight") {
                continue;
            }
            if name != "linear.weight" {
                return Err(ConvertError::UnknownTensor {
                    path: file.path.clone(),
                    name,
                });
            }
            let view = st
                .tensor(&name)
                .map_err(|source| ConvertError::Safetensors {
                    path: file.path.clone(),
                    source,
                })?;
            let gguf_name = format!("{}.weight", dense.prefix);
            let t = tensors::plan(
                &file.path,
                files.len(),
                &name,
                gguf_name,
                view.dtype(),
                view.shape(),
                None,
                ty,
            )?;
            planned.push(t);
        }
        drop(st);
        files.push(file);
    }

    let model_path = hf_dir.join("model.safetensors");
    let model = SafetensorsFile::open(&model_path)?;
    {
        let st = model.parse()?;
        let mut names: Vec<String> = st.names().into_iter().cloned().collect();
        names.sort();
        let mut have_embd = false;
        for name in names {
            if tensors::is_ignored(&name) {
                continue;
            }
            let gguf_name = tensors::gguf_name(&name, config.block_count).ok_or_else(|| {
                ConvertError::UnknownTensor {
                    path: model_path.clone(),
                    name: name.clone(),
                }
            })?;
            let view = st
                .tensor(&name)
                .map_err(|source| ConvertError::Safetensors {
                    path: model_path.clone(),
                    source,
                })?;
            let is_embd = gguf_name == "token_embd.weight";
            have_embd |= is_embd;
            let max_rows = is_embd.then_some(vocab.tokens.len());
            planned.push(tensors::plan(
                &model_path,
                files.len(),
                &name,
                gguf_name,
                view.dtype(),
                view.shape(),
                max_rows,
                ty,
            )?);
        }
        if !have_embd {
            return Err(ConvertError::MissingTensor {
                path: model_path.clone(),
                name: "embed_tokens.weight".to_owned(),
            });
        }
    }
    files.push(model);

    let n_params: u64 = planned.iter().map(|t| t.source.n_elements).sum();
    let metadata = build_metadata(hf_dir, &config, &modules, vocab, ty, n_params)?;

    let partial = PartialFile::new(out);
    let file = File::create(&partial.path).map_err(|source| ConvertError::Write {
        path: partial.path.clone(),
        source,
    })?;
    let gguf_err = |source: GgufError| match source {
        GgufError::Io(source) => ConvertError::Write {
            path: partial.path.clone(),
            source,
        },
        source => ConvertError::Gguf {
            path: partial.path.clone(),
            source,
        },
    };
    let mut writer = GgufWriter::new(BufWriter::with_capacity(1 << 20, file));
    let n_metadata = metadata.len();
    for (key, value) in metadata {
        writer.add(key, value).map_err(gguf_err)?;
    }
    for t in &planned {
        writer
            .add_tensor(t.name.clone(), t.ggml_type, &t.ne)
            .map_err(gguf_err)?;
    }

    let bytes_total: u64 = planned.iter().map(|t| t.n_bytes).sum();
    let count = planned.len();
    let mut bytes_done = 0u64;
    let mut encoder = tensors::Encoder::new();
    let parsed = files
        .iter()
        .map(SafetensorsFile::parse)
        .collect::<Result<Vec<_>, _>>()?;
    for (index, t) in planned.iter().enumerate() {
        let src_file = &files[t.source.file];
        let st = &parsed[t.source.file];
        let view = st
            .tensor(&t.source.hf_name)
            .map_err(|source| ConvertError::Safetensors {
                path: src_file.path.clone(),
                source,
            })?;
        let elem = match t.source.dtype {
            tensors::SrcType::F32 => 4u64,
            _ => 2,
        };
        let src_len = t
            .source
            .n_elements
            .checked_mul(elem)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= view.data().len())
            .ok_or_else(|| ConvertError::BadShape {
                path: src_file.path.clone(),
                name: t.source.hf_name.clone(),
                shape: view.shape().to_vec(),
                reason: "data shorter than the shape".to_owned(),
            })?;
        let src = &view.data()[..src_len];
        let base = src.as_ptr() as usize - src_file.map.as_ptr() as usize;
        let out_path = partial.path.clone();
        writer
            .write_tensor_data_with(&t.name, |sink| -> Result<(), WriteError> {
                let mut chunk_sink = |chunk: &[u8]| -> Result<(), GgufError> {
                    sink(chunk)?;
                    bytes_done += chunk.len() as u64;
                    progress(&ConvertProgress {
                        tensor: t.name.clone(),
                        index,
                        count,
                        bytes_done,
                        bytes_total,
                    });
                    Ok(())
                };
                encoder
                    .encode(
                        t,
                        src,
                        &src_file.path,
                        &out_path,
                        &mut chunk_sink,
                        &mut |a, b| src_file.release(base + a, base + b),
                    )
                    .map_err(WriteError::Convert)
            })
            .map_err(|e| match e {
                WriteError::Gguf(source)
                | WriteError::Convert(ConvertError::Gguf { source, .. }) => gguf_err(source),
                WriteError::Convert(e) => e,
            })?;
    }
    let buf = writer.finish().map_err(gguf_err)?;
    let file = buf.into_inner().map_err(|e| ConvertError::Write {
        path: partial.path.clone(),
        source: e.into_error(),
    })?;
    let write_err = |source| ConvertError::Write {
        path: partial.path.clone(),
        source,
    };
    file.sync_all().map_err(write_err)?;
    let file_size = file.metadata().map_err(write_err)?.len();
    drop(file);
    partial.commit(out)?;
    Ok(ConvertSummary {
        path: out.to_path_buf(),
        out_type: ty,
        n_metadata,
        n_tensors: count,
        n_params,
        file_size,
    })
}

/// An error inside [`GgufWriter::write_tensor_data_with`]: the writer's own, or the encoder's.
enum WriteError {
    Gguf(GgufError),
    Convert(ConvertError),
}

impl From<GgufError> for WriteError {
    fn from(e: GgufError) -> Self {
        WriteError::Gguf(e)
    }
}

/// The metadata, in llama.cpp's order.
fn build_metadata(
    hf_dir: &Path,
    config: &HfConfig,
    modules: &Modules,
    vocab: Vocab,
    ty: OutType,
    n_params: u64,
) -> Result<Vec<(String, OwnedValue)>, ConvertError> {
    let arch = GGUF_ARCHITECTURE;
    let mut kv: Vec<(String, OwnedValue)> = Vec::new();
    let mut put = |k: &str, v: OwnedValue| kv.push((k.to_owned(), v));
    put("general.architecture", OwnedValue::Str(arch.to_owned()));
    put("general.type", OwnedValue::Str("model".to_owned()));
    for s in source::read_sampling(hf_dir) {
        match s {
            Sampling::Str(k, v) => put(k, OwnedValue::Str(v)),
            Sampling::I32(k, v) => put(k, OwnedValue::I32(v)),
            Sampling::F32(k, v) => put(k, OwnedValue::F32(v)),
        }
    }
    put("general.name", OwnedValue::Str(model_name(hf_dir)));
    put("general.size_label", OwnedValue::Str(size_label(n_params)));
    let card = source::read_model_card(hf_dir);
    if let Some(license) = card.license.filter(|l| !l.is_empty()) {
        put("general.license", OwnedValue::Str(license));
    }
    if !card.tags.is_empty() {
        put(
            "general.tags",
            OwnedValue::Array(OwnedArray::Str(card.tags)),
        );
    }
    if !card.languages.is_empty() {
        put(
            "general.languages",
            OwnedValue::Array(OwnedArray::Str(card.languages)),
        );
    }
    let a = |k: &str| format!("{arch}.{k}");
    put(&a("block_count"), OwnedValue::U32(config.block_count));
    put(&a("context_length"), OwnedValue::U32(config.context_length));
    put(
        &a("embedding_length"),
        OwnedValue::U32(config.embedding_length),
    );
    put(
        &a("feed_forward_length"),
        OwnedValue::U32(config.feed_forward_length),
    );
    put(
        &a("attention.head_count"),
        OwnedValue::U32(config.head_count),
    );
    put(
        &a("attention.head_count_kv"),
        OwnedValue::U32(config.head_count_kv),
    );
    put(
        &a("rope.freq_base"),
        OwnedValue::F32(config.rope_freq_base as f32),
    );
    if let Some(swa) = config.rope_freq_base_swa {
        put(&a("rope.freq_base_swa"), OwnedValue::F32(swa as f32));
    }
    put(
        &a("attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(config.rms_eps as f32),
    );
    put(&a("attention.key_length"), OwnedValue::U32(config.head_dim));
    put(
        &a("attention.value_length"),
        OwnedValue::U32(config.head_dim),
    );
    put("general.file_type", OwnedValue::U32(ty.file_type()));
    put(
        &a("attention.sliding_window"),
        OwnedValue::U32(config.sliding_window),
    );
    for dense in &modules.dense {
        if let Some((fin, fout)) = dense.dims {
            put(
                &a(&format!("{}_feat_in", dense.prefix)),
                OwnedValue::U32(fin),
            );
            put(
                &a(&format!("{}_feat_out", dense.prefix)),
                OwnedValue::U32(fout),
            );
        }
    }
    if let Some(pooling) = modules.pooling {
        put(&a("pooling_type"), OwnedValue::U32(pooling));
    }
    put("general.quantization_version", OwnedValue::U32(2));
    put("tokenizer.ggml.model", OwnedValue::Str("llama".to_owned()));
    put("tokenizer.ggml.pre", OwnedValue::Str("default".to_owned()));
    put(
        "tokenizer.ggml.tokens",
        OwnedValue::Array(OwnedArray::Str(vocab.tokens)),
    );
    put(
        "tokenizer.ggml.scores",
        OwnedValue::Array(OwnedArray::F32(vocab.scores)),
    );
    put(
        "tokenizer.ggml.token_type",
        OwnedValue::Array(OwnedArray::I32(vocab.types)),
    );
    for &(kind, id) in &vocab.special_ids {
        let key = match kind {
            "unk" => "tokenizer.ggml.unknown_token_id".to_owned(),
            "pad" => "tokenizer.ggml.padding_token_id".to_owned(),
            "sep" => "tokenizer.ggml.seperator_token_id".to_owned(),
            other => format!("tokenizer.ggml.{other}_token_id"),
        };
        put(&key, OwnedValue::U32(id));
    }
    for &(kind, flag) in &vocab.add_flags {
        put(
            &format!("tokenizer.ggml.add_{kind}_token"),
            OwnedValue::Bool(flag),
        );
    }
    put("tokenizer.ggml.add_space_prefix", OwnedValue::Bool(false));
    Ok(kv)
}

/// `general.name` from the directory name, as llama.cpp derives it.
fn model_name(hf_dir: &Path) -> String {
    let dir = std::fs::canonicalize(hf_dir).unwrap_or_else(|_| hf_dir.to_path_buf());
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    source::name_from_dir(&name)
}

/// gguf-py's `size_label` / `model_weight_count_rounded_notation` with `min_digits = 2`
/// (`308M` for EmbeddingGemma-300M's 307,581,696 parameters).
fn size_label(n: u64) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    // Python: len(str(round(scaled)).lstrip('0'))
    let rounded = format!("{}", scaled.round_ties_even() as u64);
    let digits = rounded.trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// The output file while it is being written: `<out>.partial`, removed on drop unless committed.
struct PartialFile {
    path: PathBuf,
    committed: bool,
}

impl PartialFile {
    fn new(out: &Path) -> Self {
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".partial");
        PartialFile {
            path: out.with_file_name(name),
            committed: false,
        }
    }

    /// Renames the finished file to `out` (and syncs the directory so the rename is durable).
    fn commit(mut self, out: &Path) -> Result<(), ConvertError> {
        std::fs::rename(&self.path, out).map_err(|source| ConvertError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        self.committed = true;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_type_parsing() {
        for t in OutType::ALL {
            assert_eq!(t.as_str().parse::<OutType>().unwrap(), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!("Q8_0".parse::<OutType>().unwrap(), OutType::Q8_0);
        assert!(matches!(
            "q4_0".parse::<OutType>(),
            Err(ConvertError::UnknownType { given }) if given == "q4_0"
        ));
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(307_581_696), "308M");
        assert_eq!(size_label(7_241_732_096), "7.2B");
        assert_eq!(size_label(22_000_000), "22M");
        assert_eq!(size_label(500_000), "500K");
    }
}
