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
}

/// How activations meet Q8_0 weights in the matrix products.
///
/// The weight values are the file's in every mode; only the activation side changes. Files with
/// F32/F16/BF16 weights always compute in f32 and ignore this choice. Where the kernels have a
/// packed int8 kernel (AVX-512 VNNI), `Int8` and `Mixed` pack the Q8_0 matrices once at load
/// (same size, the file's pages are released) and the Dense projections (one pooled vector) use
/// two-part int8 activations; elsewhere the weights are read in place from the map and the Dense
/// projections use f32 activations.
///
/// # Measurements
///
/// Cosine against sentence-transformers (float32) over the golden rows, Q8_0 GGUF; the
/// "int8 work" column is the int8 multiply-adds relative to [`Precision::Int8`] (each
/// two-part product is two int8 passes; `ffn_down` is 21% and `attn_output` 14% of a layer's
/// weights):
///
/// | choice (per product: qkv / attn_out / gate,up / down) | 74 prompt-less rows min / median | 108 rows min / median | int8 work |
/// |---|---|---|---|
/// | `Int8`: i8 / i8 / i8 / i8 (llama.cpp's scheme) | 0.99694 / 0.99967 | 0.99916 / 0.99970 | 1.00 |
/// | **`Mixed`: i8 / i8 / i8 / i8x2** | **0.99860 / 0.99973** | **0.99898 / 0.99974** | **1.21** |
/// | i8x2 / i8 / i8 / i8 | 0.99273 / 0.99971 | | 1.24 |
/// | i8 / i8x2 / i8 / i8 | 0.99813 / 0.99967 | | 1.14 |
/// | i8 / i8 / i8x2 / i8 | 0.99409 / 0.99972 | | 1.42 |
/// | i8 / i8 / i8 / f32 | 0.99894 / 0.99972 | | f32 for 21% |
/// | i8 / i8x2 / i8 / i8x2 | 0.99911 / 0.99974 | 0.99732 / 0.99975 | 1.35 |
/// | i8x2 everywhere | 0.99788 / 0.99981 | | 2.00 |
/// | `F32`: f32 everywhere | | 0.99785 / 0.99982 | f32 units |
///
/// llama.cpp on its 47 rows: min 0.99865, median 0.99952. The minimum is set by a few
/// sensitive texts on which any rounding swings the cosine (one 46-token text moves between
/// 0.9927 and 0.9991 with the choice, and with a kernel's summation order, so the columns,
/// measured with different kernel builds, disagree on it); the medians are the stable measure.
/// Widening `ffn_down` (input `gelu(gate) ⊙ up`, not RMS-normalised, the largest outliers)
/// gains most of the median that is to be had short of f32; widening `attn_output` as well
/// moves the median by less than 1e-5 for 14% more int8 work, so `Mixed` widens `ffn_down`
/// only. Measured with `examples/precision.rs` (golden token ids) and `tests/embeddings.rs`.
///
/// Speed: with packed weights a product of a few tokens is bound by reading the weights, so
/// `Mixed` widens every product for sequences of at most 16 tokens (i8x2 everywhere, the
/// most exact int8 choice above); with weights in place (no packed kernel), f32 activations
/// are faster than int8 below ~12 tokens, and `Mixed` uses them for sequences of at most 8.
/// `cargo xtask bench` and `BENCHMARKS.md` have the numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// Every matrix product rounds its input activations to int8 in blocks of 32 (llama.cpp's
    /// scheme), and attention rounds its operands to bf16 where the CPU has AVX512_BF16
    /// (llama.cpp rounds K and V to f16): the fastest mode.
    Int8,
    /// Int8 activations, except for `ffn_down` (whose input `gelu(gate) ⊙ up` is not
    /// RMS-normalised and carries the largest outliers), which rounds to two int8 parts (about
    /// 16 bits); short sequences use two-part int8 activations throughout (at most 16 tokens,
    /// with packed weights) or f32 activations (at most 8 tokens, weights in place), which cost
    /// little at those sizes. The default: closer to sentence-transformers than llama.cpp at a
    /// modest cost.
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
