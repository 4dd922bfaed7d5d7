//! EmbeddingGemma hyperparameters, read from the GGUF metadata.

use gguf::GgufError;

use crate::RuntimeError;

/// How token vectors become one sequence vector (`{arch}.pooling_type`, llama.cpp's
/// `enum llama_pooling_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// 1: the mean over all tokens, `<bos>` and `<eos>` included (EmbeddingGemma).
    Mean,
    /// 2: the first token.
    Cls,
    /// 3: the last token.
    Last,
}

/// Everything the forward pass needs to know about the shapes and constants of the model.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GemmaConfig {
    /// `{arch}.embedding_length` (768).
    pub n_embd: usize,
    /// `{arch}.block_count` (24).
    pub n_layer: usize,
    /// `{arch}.feed_forward_length` (1152).
    pub n_ff: usize,
    /// `{arch}.attention.head_count` (3).
    pub n_head: usize,
    /// `{arch}.attention.head_count_kv` (1).
    pub n_head_kv: usize,
    /// `{arch}.attention.key_length` (256): the width of one query/key head.
    pub head_dim: usize,
    /// `{arch}.attention.value_length` (256): the width of one value head.
    pub head_dim_v: usize,
    /// `{arch}.rope.freq_base` (1e6): RoPE base of the global layers.
    pub rope_base_global: f32,
    /// `{arch}.rope.freq_base_swa` (1e4): RoPE base of the local (sliding-window) layers.
    pub rope_base_local: f32,
    /// `{arch}.attention.layer_norm_rms_epsilon` (1e-6).
    pub eps: f32,
    /// `{arch}.attention.sliding_window` (512): the full width of the local window; a token sees
    /// keys at distance `<= sliding_window / 2` on either side.
    pub sliding_window: usize,
    /// Which layers use the sliding window (`true`) or see every token (`false`).
    pub is_local: Vec<bool>,
    /// `{arch}.context_length` (2048).
    pub context_length: usize,
    /// `{arch}.pooling_type`.
    pub pooling: Pooling,
    /// `(dense_2_feat_out, dense_3_feat_out)` when the file has the two Dense projections
    /// (`{arch}.dense_2_feat_in/out`, `{arch}.dense_3_feat_in/out`).
    pub dense: Option<(usize, usize)>,
}

/// Caps on hyperparameters, far above any real model, so that a hostile file cannot make the
/// runtime allocate absurd scratch buffers before a tensor shape check catches it.
const MAX_DIM: usize = 1 << 20;
const MAX_LAYERS: usize = 1 << 12;
const MAX_CONTEXT: usize = 1 << 24;

/// Gemma 3's layer pattern when the file states none: in every run of 6 layers the first 5 use
/// the sliding window and the 6th is global, i.e. layer `i` is global iff `(i + 1) % 6 == 0`
/// (Hugging Face `Gemma3TextConfig.sliding_window_pattern = 6`, llama.cpp
/// `load_swa_pattern(ml, 6)`). A file can override it with `{arch}.attention.sliding_window_pattern`.
pub(crate) const GEMMA3_SWA_PATTERN: u32 = 6;

/// `Ok(None)` for a missing key, the value for a present one, the error for a wrong type.
pub(crate) fn optional<T>(r: Result<T, GgufError>) -> Result<Option<T>, GgufError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(GgufError::MissingKey { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, reason: &str) -> RuntimeError {
    RuntimeError::InvalidHyperparameter {
        key: key.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

/// Reads a positive dimension no larger than `max`.
fn dim<B: AsRef<[u8]>>(file: &gguf::Gguf<B>, key: &str, max: usize) -> Result<usize, RuntimeError> {
    let v = file.get_u32(key)?;
    let v = usize::try_from(v).map_err(|_| invalid(key, v, "does not fit in usize"))?;
    if v == 0 {
        return Err(invalid(key, v, "must be at least 1"));
    }
    if v > max {
        return Err(invalid(
            key,
            v,
            &format!("larger than the supported maximum {max}"),
        ));
    }
    Ok(v)
}

fn positive_f32<B: AsRef<[u8]>>(file: &gguf::Gguf<B>, key: &str) -> Result<f32, RuntimeError> {
    let v = file.get_f32(key)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(key, v, "must be a finite number above 0"));
    }
    Ok(v)
}

impl GemmaConfig {
    /// Reads and checks the hyperparameters of architecture `arch` (the key prefix).
    ///
    /// `has_dense_tensors` says whether `dense_2.weight` and `dense_3.weight` exist: only then
    /// are the `dense_*` keys required.
    pub(crate) fn from_gguf<B: AsRef<[u8]>>(
        file: &gguf::Gguf<B>,
        arch: &str,
        has_dense_tensors: bool,
    ) -> Result<Self, RuntimeError> {
        let k = |name: &str| format!("{arch}.{name}");
        let n_embd = dim(file, &k("embedding_length"), MAX_DIM)?;
        let n_layer = dim(file, &k("block_count"), MAX_LAYERS)?;
        let n_ff = dim(file, &k("feed_forward_length"), MAX_DIM)?;
        let n_head = dim(file, &k("attention.head_count"), MAX_DIM)?;
        let n_head_kv = dim(file, &k("attention.head_count_kv"), MAX_DIM)?;
        let head_dim = dim(file, &k("attention.key_length"), MAX_DIM)?;
        let head_dim_v = dim(file, &k("attention.value_length"), MAX_DIM)?;
        let rope_base_global = positive_f32(file, &k("rope.freq_base"))?;
        let rope_base_local = positive_f32(file, &k("rope.freq_base_swa"))?;
        let eps = file.get_f32(&k("attention.layer_norm_rms_epsilon"))?;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(invalid(
                &k("attention.layer_norm_rms_epsilon"),
                eps,
                "must be finite and not negative",
            ));
        }
        let sliding_window = dim(file, &k("attention.sliding_window"), MAX_CONTEXT)?;
        let context_length = dim(file, &k("context_length"), MAX_CONTEXT)?;
        let pooling = match file.get_u32(&k("pooling_type"))? {
            1 => Pooling::Mean,
            2 => Pooling::Cls,
            3 => Pooling::Last,
            value => return Err(RuntimeError::UnsupportedPooling { value }),
        };

        if n_head % n_head_kv != 0 {
            return Err(invalid(
                &k("attention.head_count_kv"),
                n_head_kv,
                &format!("must divide attention.head_count = {n_head}"),
            ));
        }
        if head_dim % 2 != 0 {
            return Err(invalid(
                &k("attention.key_length"),
                head_dim,
                "RoPE needs an even head size",
            ));
        }
        if head_dim_v != head_dim {
            return Err(invalid(
                &k("attention.value_length"),
                head_dim_v,
                &format!("must equal attention.key_length = {head_dim} (Gemma's attention)"),
            ));
        }

        let pattern = optional(file.get_u32(&k("attention.sliding_window_pattern")))?
            .unwrap_or(GEMMA3_SWA_PATTERN);
        // llama.cpp `set_swa_pattern(n, dense_first = false)`: 0 makes every layer local.
        let is_local = (0..n_layer)
            .map(|il| pattern == 0 || (il as u64 % u64::from(pattern)) < u64::from(pattern) - 1)
            .collect();

        let dense = if has_dense_tensors {
            let d2_in = dim(file, &k("dense_2_feat_in"), MAX_DIM)?;
            let d2_out = dim(file, &k("dense_2_feat_out"), MAX_DIM)?;
            let d3_in = dim(file, &k("dense_3_feat_in"), MAX_DIM)?;
            let d3_out = dim(file, &k("dense_3_feat_out"), MAX_DIM)?;
            if d2_in != n_embd {
                return Err(invalid(
                    &k("dense_2_feat_in"),
                    d2_in,
                    &format!("must equal embedding_length = {n_embd}"),
                ));
            }
            if d3_in != d2_out {
                return Err(invalid(
                    &k("dense_3_feat_in"),
                    d3_in,
                    &format!("must equal dense_2_feat_out = {d2_out}"),
                ));
            }
            Some((d2_out, d3_out))
        } else {
            None
        };

        Ok(GemmaConfig {
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            rope_base_global,
            rope_base_local,
            eps,
            sliding_window,
            is_local,
            context_length,
            pooling,
            dense,
        })
    }

    /// Width of all query heads together.
    pub(crate) fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key (and value) heads together.
    pub(crate) fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// How far a local layer looks on each side (`|i - j| <= half_window`).
    pub(crate) fn half_window(&self) -> usize {
        self.sliding_window / 2
    }

    /// The length of the vectors the model outputs.
    pub(crate) fn output_dim(&self) -> usize {
        self.dense.map_or(self.n_embd, |(_, out)| out)
    }
}

/// The tensors of every block, `blk.{i}.{name}.weight`, in the order the model reads them.
pub(crate) const BLOCK_TENSORS: [&str; 13] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_q_norm",
    "attn_k_norm",
    "attn_output",
    "post_attention_norm",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "post_ffw_norm",
];

/// Tensors a file may hold that an embedding does not read: `output.weight` is the language
/// model head of a Gemma 3 text model (llama.cpp loads it as optional and ties it to
/// `token_embd` when it is absent); pooling never reaches it.
pub(crate) const KNOWN_UNUSED_TENSORS: [&str; 1] = ["output.weight"];

/// Refuses a file holding a tensor that the graph of `cfg` does not read and that is not one of
/// [`KNOWN_UNUSED_TENSORS`]: `blk.N.*` with `N >= block_count`, an unknown block tensor, an
/// unknown top-level tensor. Such a file was written for another graph (most often one more
/// layer than `block_count` says) and would give wrong vectors without a word. Whether the
/// tensors that are read exist and have the right shapes is checked when they are loaded.
pub(crate) fn check_tensor_names<B: AsRef<[u8]>>(
    file: &gguf::Gguf<B>,
    arch: &str,
    cfg: &GemmaConfig,
) -> Result<(), RuntimeError> {
    let unused = |name: &str, reason: String| RuntimeError::UnusedTensor {
        name: name.to_owned(),
        architecture: arch.to_owned(),
        reason,
    };
    for t in file.tensors() {
        let name = t.name.as_str();
        if let Some(rest) = name.strip_prefix("blk.") {
            let (index, part) = rest.split_once('.').unwrap_or((rest, ""));
            let layer = index
                .parse::<usize>()
                .ok()
                .filter(|_| index.bytes().all(|b| b.is_ascii_digit()));
            let Some(layer) = layer else {
                return Err(unused(name, format!("{index:?} is not a block number")));
            };
            if layer >= cfg.n_layer {
                return Err(unused(
                    name,
                    format!(
                        "{arch}.block_count = {} but the file has block {layer}",
                        cfg.n_layer
                    ),
                ));
            }
            let known = part
                .strip_suffix(".weight")
                .is_some_and(|p| BLOCK_TENSORS.contains(&p));
            if !known {
                return Err(unused(
                    name,
                    format!(
                        "a block has only {}",
                        BLOCK_TENSORS
                            .iter()
                            .map(|p| format!("{p}.weight"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            continue;
        }
        match name {
            "token_embd.weight" | "output_norm.weight" => {}
            "dense_2.weight" | "dense_3.weight" if cfg.dense.is_some() => {}
            _ if KNOWN_UNUSED_TENSORS.contains(&name) => {}
            _ => {
                return Err(unused(
                    name,
                    "not one of token_embd.weight, blk.N.*, output_norm.weight, \
                     dense_2.weight, dense_3.weight or the known unused output.weight"
                        .to_owned(),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EmbeddingGemma's keys, with `extra` appended.
    fn file(extra: &[(&str, gguf::OwnedValue)]) -> gguf::Gguf<Vec<u8>> {
        let a = ARCH;
        let mut w = gguf::GgufWriter::new(Vec::new());
        let kv: Vec<(String, gguf::OwnedValue)> = vec![
            (format!("{a}.block_count"), 24u32.into()),
            (format!("{a}.context_length"), 2048u32.into()),
            (format!("{a}.embedding_length"), 768u32.into()),
            (format!("{a}.feed_forward_length"), 1152u32.into()),
            (format!("{a}.attention.head_count"), 3u32.into()),
            (format!("{a}.attention.head_count_kv"), 1u32.into()),
            (format!("{a}.rope.freq_base"), 1e6f32.into()),
            (format!("{a}.rope.freq_base_swa"), 1e4f32.into()),
            (
                format!("{a}.attention.layer_norm_rms_epsilon"),
                1e-6f32.into(),
            ),
            (format!("{a}.attention.key_length"), 256u32.into()),
            (format!("{a}.attention.value_length"), 256u32.into()),
            (format!("{a}.attention.sliding_window"), 512u32.into()),
            (format!("{a}.pooling_type"), 1u32.into()),
        ];
        for (k, v) in kv {
            w.add(k, v).expect("key");
        }
        for (k, v) in extra {
            w.add(format!("{a}.{k}"), v.clone()).expect("key");
        }
        gguf::Gguf::from_bytes(w.finish().expect("finish")).expect("parses")
    }

    const ARCH: &str = "gemma-embedding";

    #[test]
    fn embeddinggemma_hyperparameters() {
        let cfg = GemmaConfig::from_gguf(&file(&[]), ARCH, false).expect("config");
        let global: Vec<usize> = (0..24).filter(|&i| !cfg.is_local[i]).collect();
        // Gemma 3's rule: every 6th layer is global.
        assert_eq!(global, [5, 11, 17, 23]);
        assert_eq!(cfg.half_window(), 256);
        assert_eq!(
            (cfg.q_dim(), cfg.kv_dim(), cfg.output_dim()),
            (768, 256, 768)
        );
        assert_eq!(cfg.pooling, Pooling::Mean);
        assert_eq!((cfg.rope_base_global, cfg.rope_base_local), (1e6, 1e4));
        assert_eq!(cfg.dense, None);
    }

    #[test]
    fn sliding_window_pattern_key_overrides_the_default() {
        let cfg = GemmaConfig::from_gguf(
            &file(&[("attention.sliding_window_pattern", 4u32.into())]),
            ARCH,
            false,
        )
        .expect("config");
        let global: Vec<usize> = (0..24).filter(|&i| !cfg.is_local[i]).collect();
        assert_eq!(global, [3, 7, 11, 15, 19, 23]);
        let all_local = GemmaConfig::from_gguf(
            &file(&[("attention.sliding_window_pattern", 0u32.into())]),
            ARCH,
            false,
        )
        .expect("config");
        assert!(all_local.is_local.iter().all(|&l| l));
    }

    #[test]
    fn dense_keys_are_required_only_with_dense_tensors() {
        assert!(matches!(
            GemmaConfig::from_gguf(&file(&[]), ARCH, true),
            Err(RuntimeError::Gguf(GgufError::MissingKey { .. }))
        ));
        let dense = [
            ("dense_2_feat_in", 768u32.into()),
            ("dense_2_feat_out", 3072u32.into()),
            ("dense_3_feat_in", 3072u32.into()),
            ("dense_3_feat_out", 768u32.into()),
        ];
        let cfg = GemmaConfig::from_gguf(&file(&dense), ARCH, true).expect("config");
        assert_eq!(cfg.dense, Some((3072, 768)));
        let bad = [
            ("dense_2_feat_in", 512u32.into()),
            ("dense_2_feat_out", 3072u32.into()),
            ("dense_3_feat_in", 3072u32.into()),
            ("dense_3_feat_out", 768u32.into()),
        ];
        assert!(matches!(
            GemmaConfig::from_gguf(&file(&bad), ARCH, true),
            Err(RuntimeError::InvalidHyperparameter { .. })
        ));
    }
}
