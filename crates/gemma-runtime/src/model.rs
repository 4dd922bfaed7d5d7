//! The architecture-independent face of the runtime: [`EmbeddingModel`], [`ModelInfo`],
//! [`RuntimeOptions`] and [`open`], which picks the implementation from `general.architecture`.
//!
//! A new model family (say a BERT-style encoder) is added by writing its module beside
//! [`crate::gemma`] and one line in [`ARCHITECTURES`]; nothing here or in the Gemma code changes.

use std::path::Path;

use crate::RuntimeError;

/// An embedding model loaded from a GGUF file: token ids in, one vector per sequence out.
///
/// Implementations are immutable after loading and can be shared between threads; every call
/// takes its working memory from a per-thread pool, so calls from several threads at once are fine.
pub trait EmbeddingModel: Send + Sync {
    /// What the model is (dimensions, context length, prompts...).
    fn info(&self) -> &ModelInfo;

    /// The tokenizer stored in the same file.
    fn tokenizer(&self) -> &spm_tokenizer::Tokenizer;

    /// One sequence of token ids (already with bos/eos, already truncated to
    /// [`ModelInfo::context_length`]) → the model's output vector: after pooling and the Dense
    /// layers, **not** normalised, [`ModelInfo::output_dim`] values.
    ///
    /// Uses the threads of the current rayon pool to split the work of this one sequence.
    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, RuntimeError>;

    /// Many sequences, computed in parallel over the current rayon pool; the output is in input
    /// order and each vector is bit-identical to what [`EmbeddingModel::embed_ids`] gives for that
    /// sequence alone, whatever the batch and the number of threads. Working memory is bounded by
    /// the number of threads, not by the batch size.
    fn embed_batch_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, RuntimeError>;
}

/// Facts about a loaded model, read from its GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// `general.architecture`, e.g. `"gemma-embedding"`.
    pub architecture: String,
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    /// Width of the transformer (`{arch}.embedding_length`).
    pub hidden_size: usize,
    /// Length of the vectors [`EmbeddingModel::embed_ids`] returns (the last Dense layer's output,
    /// or `hidden_size` without Dense layers).
    pub output_dim: usize,
    /// The longest sequence the model accepts, in tokens (`{arch}.context_length`).
    pub context_length: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Whether the file holds the sentence-transformers Dense projections after pooling.
    pub has_dense: bool,
    /// The output sizes the model was trained to be truncated to (Matryoshka), largest first.
    pub matryoshka_dims: Vec<usize>,
    /// Named task prompts (name, text prefix), in the order the model's authors list them.
    pub prompts: Vec<(String, String)>,
    /// Number of tokens in the vocabulary.
    pub vocab_size: usize,
    /// The ggml type of the large weight matrices (`"q8_0"`, `"f32"`, `"f16"`, `"bf16"`).
    pub weight_type: String,
    /// The kernel backend the model runs on (`"avx512vnni"`, `"avx2"`, `"neon-dotprod"`,
    /// `"neon"`, `"scalar"`).
    pub backend: &'static str,
}

/// How activations meet Q8_0 weights in the matrix products.
///
/// The weight values are the file's in every mode; only the activation side changes. Files with
/// F32/F16/BF16 weights always compute in f32 and ignore this choice. Where the kernels have a
/// packed int8 kernel (AVX-512 VNNI, AVX2), `Int8` and `Mixed` pack the Q8_0 matrices once at
/// load (same size, the file's pages are released) and the Dense projections (one pooled vector)
/// use two-part int8 activations; elsewhere the weights are read in place from the map and the
/// Dense projections use f32 activations.
///
/// # Measurements
///
/// Cosine against sentence-transformers (float32) over the 74 prompt-less golden rows of the
/// documents, Q8_0 GGUF, AVX2 backend, one activation choice for every length (per product:
/// qkv / attn_out / gate,up / down; "int8 work" is relative to `Int8`, each two-part product
/// being two int8 passes; `ffn_down` is 21%, `attn_output` 14% and q, k, v 23% of a layer's
/// weights):
///
/// | choice | min / median | int8 work |
/// |---|---|---|
/// | i8 / i8 / i8 / i8x2 (the long-text rule of earlier versions) | 0.97976 / 0.99957 | 1.21 |
/// | i8x2 / i8 / i8 / i8x2 (`Mixed` above 64 tokens) | 0.99796 / 0.99960 | 1.44 |
/// | i8x2 / i8x2 / i8 / i8x2 | 0.99548 / 0.99962 | 1.58 |
/// | i8x2 everywhere (`Mixed` up to 64 tokens) | 0.99786 / 0.99981 | 2.00 |
///
/// (F32 activations on the same rows: min 0.99785; the minimum, a 21-token line, is the Q8_0
/// weights' own loss there.) The minimum is set by a few sensitive short texts: with int8
/// activations in q, k and v, 1-ulp differences between backends in the f32 steps flip
/// roundings that those texts amplify (a q/k head that nearly cancels is renormalised by its
/// RMSNorm), and their cosine swings between 0.98 and 0.999 with the backend. Over 600 short
/// lines, the earlier rule left 4 vectors further than 0.998 from the f32-activation vector of
/// the same backend (the worst at 0.987); two-part activations everywhere leave none (worst
/// 0.999999). So `Mixed` uses two parts everywhere up to 64 tokens, where mean pooling over few
/// tokens lets one token's rounding show, and for q, k, v and `ffn_down` above. Measured with
/// `examples/precision.rs` and `tests/embeddings.rs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// Every matrix product rounds its input activations to int8 in blocks of 32 (llama.cpp's
    /// scheme), and attention rounds its operands to bf16 where the CPU has AVX512_BF16
    /// (llama.cpp rounds K and V to f16): the fastest mode.
    Int8,
    /// Two-part int8 activations (about 16 bits) for every product of sequences of at most 64
    /// tokens, and for q, k, v and `ffn_down` of longer ones (whose inputs are renormalised per
    /// head after the product, or carry the largest outliers); int8 for the rest. The default:
    /// within rounding of the exact Q8_0 model on short texts, on every backend.
    #[default]
    Mixed,
    /// f32 activations against dequantised weights everywhere: the only rounding is the
    /// weights' own.
    F32,
}

/// Options for [`open`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Activation precision of the Q8_0 matrix products.
    pub precision: Precision,
    /// A directory for the cache of packed weight matrices (see [`Precision`]): a model opened
    /// before maps its packed matrices from there instead of packing them again (one file per
    /// model file and kernel backend, checked against the model file's length, modification
    /// time and tensor table; rewritten when stale). `None`: pack in memory every time.
    pub pack_cache_dir: Option<std::path::PathBuf>,
    /// The kernel backend. `None`: the process-wide choice ([`q8_kernels::kernels`]: the fastest
    /// one the CPU has, or the one `Q8_KERNELS_BACKEND` names).
    pub backend: Option<q8_kernels::Backend>,
}

/// The loader of one architecture.
type LoadFn = fn(
    &Path,
    gguf::Gguf<memmap2::Mmap>,
    &RuntimeOptions,
) -> Result<Box<dyn EmbeddingModel>, RuntimeError>;

/// A model family this runtime can run: the `general.architecture` value and its loader.
struct Architecture {
    name: &'static str,
    load: LoadFn,
}

/// Every architecture [`open`] knows.
const ARCHITECTURES: &[Architecture] = &[Architecture {
    name: crate::gemma::ARCHITECTURE,
    load: crate::gemma::load,
}];

/// The `general.architecture` values [`open`] accepts.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[crate::gemma::ARCHITECTURE];

/// Opens a GGUF embedding model: memory-maps the file, reads the metadata, checks every tensor's
/// type and shape, builds the tokenizer, and returns the implementation that
/// `general.architecture` names.
///
/// Weights are read from the memory map; with [`Precision::Int8`] or [`Precision::Mixed`] on a
/// CPU with a packed int8 kernel, the Q8_0 layer matrices are packed once (a copy of the same
/// size, whose file pages are then released), or mapped from
/// [`RuntimeOptions::pack_cache_dir`] when an earlier process left them there.
pub fn open(path: &Path, opts: &RuntimeOptions) -> Result<Box<dyn EmbeddingModel>, RuntimeError> {
    let file = gguf::Gguf::open(path)?;
    let architecture = file.architecture()?.to_owned();
    match ARCHITECTURES.iter().find(|a| a.name == architecture) {
        Some(arch) => (arch.load)(path, file, opts),
        None => Err(RuntimeError::UnsupportedArchitecture {
            architecture,
            supported: SUPPORTED_ARCHITECTURES,
        }),
    }
}
