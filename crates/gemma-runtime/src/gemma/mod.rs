//! EmbeddingGemma (`general.architecture = "gemma-embedding"`): the Gemma 3 encoder with
//! bidirectional attention, mean pooling and the two sentence-transformers Dense projections.
//!
//! # The graph
//!
//! For token ids `t_0..t_{n-1}` (with `<bos>`/`<eos>`):
//!
//! 1. `x = token_embd[t] · sqrt(n_embd)` — only the needed rows of the (Q8_0) embedding table are
//!    dequantised.
//! 2. `block_count` layers. Layer `i` is *local* (sliding window) unless it is the last of a run of
//!    `sliding_window_pattern` layers — Gemma 3's rule, `(i + 1) % 6 == 0` means global, used when
//!    the file has no `attention.sliding_window_pattern` key. Each layer:
//!    * `h = rmsnorm(x)·attn_norm`; `q, k, v = h·Wq, h·Wk, h·Wv` (the activations are quantised
//!      once for the three);
//!    * per-head `rmsnorm(q)·attn_q_norm`, `rmsnorm(k)·attn_k_norm`;
//!    * NeoX RoPE with base `rope.freq_base` on global and `rope.freq_base_swa` on local layers;
//!    * bidirectional attention, scale `1/sqrt(key_length)`; local layers see keys with
//!      `|i − j| <= sliding_window / 2` (llama.cpp's `LLAMA_SWA_TYPE_SYMMETRIC`; transformers'
//!      exclusive bound of `sliding_window/2 + 1` for bidirectional models is the same set);
//!    * `x += rmsnorm(attn·Wo)·post_attention_norm`;
//!    * `h = rmsnorm(x)·ffn_norm`; `x += rmsnorm((gelu_tanh(h·Wgate) ⊙ h·Wup)·Wdown)·post_ffw_norm`.
//! 3. `x = rmsnorm(x)·output_norm`; pooling (`pooling_type`, mean for EmbeddingGemma, over every
//!    token including `<bos>` and `<eos>`).
//! 4. If the file has them: `dense_3(dense_2(pooled))`, no bias, no activation.
//!
//! All norm weights in the GGUF already include Gemma's `+1`.
//!
//! # Threads and determinism
//!
//! One sequence can be split over the rayon pool (matrix products by output rows, attention by
//! query blocks); many sequences are spread over the pool one sequence per thread. Either way
//! every output value is reduced in the same order, so a sequence's embedding is bit-identical
//! alone, in any batch, and with any number of threads.
//!
//! # Memory
//!
//! The resident memory is the packed layer matrices (108 MB for EmbeddingGemma-300M Q8_0, where
//! the kernels pack; else the same amount of mapped file pages), the tokenizer, and one scratch
//! per concurrent call sized to the longest sequence it has run (about 29 MB for 2,048 tokens:
//! the feed-forward runs [`forward::FFN_CHUNK`] tokens at a time and buffers that are never
//! live together share an allocation). File pages that were copied (metadata, norms, packed
//! matrices) are unmapped after load, and token embedding rows after they are read, because
//! reading one 816-byte row maps the 64 KiB around it: without that, the embedding table alone
//! would keep ~50 MB resident for a few thousand distinct tokens. `testdata/corpus/docs.jsonl`
//! with 2 threads peaks at ~170 MB (`/usr/bin/time -v`).

mod config;
mod forward;

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use gguf::{Gguf, TensorInfo};
use memmap2::Mmap;
use q8_kernels::{Kernels, PackedQ8_0, RopeTable};

use crate::model::{EmbeddingModel, ModelInfo, Precision, RuntimeOptions};
use crate::weights::{load_vector, Matrix};
use crate::{pack_cache, RuntimeError};

pub(crate) use config::{optional, GemmaConfig, Pooling};
use forward::Scratch;

/// The `general.architecture` value of EmbeddingGemma files.
pub(crate) const ARCHITECTURE: &str = "gemma-embedding";

/// The Matryoshka sizes EmbeddingGemma was trained for (model card), used when the output is 768.
const MATRYOSHKA_DIMS: [usize; 4] = [768, 512, 256, 128];

/// EmbeddingGemma's task prompts, from its `config_sentence_transformers.json`, in that file's
/// order. Used when the GGUF does not carry them.
pub const EMBEDDINGGEMMA_PROMPTS: [(&str, &str); 14] = [
    ("query", "task: search result | query: "),
    ("document", "title: none | text: "),
    ("BitextMining", "task: search result | query: "),
    ("Clustering", "task: clustering | query: "),
    ("Classification", "task: classification | query: "),
    ("InstructionRetrieval", "task: code retrieval | query: "),
    ("MultilabelClassification", "task: classification | query: "),
    ("PairClassification", "task: sentence similarity | query: "),
    ("Reranking", "task: search result | query: "),
    ("Retrieval", "task: search result | query: "),
    ("Retrieval-query", "task: search result | query: "),
    ("Retrieval-document", "title: none | text: "),
    ("STS", "task: sentence similarity | query: "),
    ("Summarization", "task: summarization | query: "),
];

/// One transformer block's weights.
#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    wo: Matrix,
    post_attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
    post_ffw_norm: Vec<f32>,
    /// Sliding-window (local) layer.
    local: bool,
}

impl Layer {
    /// The layer's matrices: q, k, v, output, gate, up, down.
    fn matrices_mut(&mut self) -> [&mut Matrix; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.gate,
            &mut self.up,
            &mut self.down,
        ]
    }
}

/// Packs `m` for `kern`'s int8 kernel (see [`Matrix::pack`]) and, if it was packed, releases
/// the file's pages of the tensor: the int8 products read the packed copy only, and the pages
/// would count twice in the resident memory. Returns whether `m` is packed.
fn pack_and_release(
    m: &mut Matrix,
    kern: &Kernels,
    file: &Gguf<Mmap>,
) -> Result<bool, RuntimeError> {
    let packed = m.pack(kern, file)?;
    if packed {
        release(file, tensor_bytes(file, m.info()));
    }
    Ok(packed)
}

/// The matrices that packing covers, in the cache file's order: each layer's q, k, v, output,
/// gate, up and down, then the Dense projections.
fn packable<'a>(
    layers: &'a mut [Layer],
    dense: &'a mut Option<(Matrix, Matrix)>,
) -> Vec<&'a mut Matrix> {
    let mut ms: Vec<&mut Matrix> = layers.iter_mut().flat_map(Layer::matrices_mut).collect();
    if let Some((d2, d3)) = dense {
        ms.extend([d2, d3]);
    }
    ms
}

/// Takes every packable matrix from the cache file at `path` if it is there and matches (all of
/// them Q8_0, same shapes, same model file and backend); true if it did.
fn read_packed(
    layers: &mut [Layer],
    dense: &mut Option<(Matrix, Matrix)>,
    path: &Path,
    id: &pack_cache::Identity,
) -> bool {
    let mut ms = packable(layers, dense);
    if ms.iter().any(|m| m.ggml_type() != gguf::GgmlType::Q8_0) {
        return false;
    }
    let shapes: Vec<(usize, usize)> = ms.iter().map(|m| (m.rows, m.cols)).collect();
    let Some(packed) = pack_cache::read(path, id, &shapes) else {
        return false;
    };
    for (m, p) in ms.iter_mut().zip(packed) {
        m.set_packed(p);
    }
    true
}

/// Unmaps the pages of `range` (bytes of `file`) from this process, so they stop counting in
/// its resident memory. They stay in the page cache: reading them again maps them again, with the
/// same contents. A no-op where that is not possible.
///
/// `file` must be [`Gguf::open`]'s read-only shared map of a file (the only kind
/// [`crate::open`] makes).
fn release(file: &Gguf<Mmap>, range: Range<usize>) {
    #[cfg(unix)]
    {
        use memmap2::UncheckedAdvice;
        let (start, len) = (range.start, range.len());
        // SAFETY: the map is `Gguf::open`'s read-only shared map of a file, never written.
        // MADV_DONTNEED on such a map only drops this process's page-table entries: the next
        // read of a page maps the page cache's copy of the file again, so every `&[u8]`
        // borrowed from the map (including ones other threads hold right now) keeps reading
        // the same bytes. Every caller passes a range inside the map (a tensor's bytes or the
        // whole map).
        let result = unsafe {
            file.inner()
                .unchecked_advise_range(UncheckedAdvice::DontNeed, start, len)
        };
        // A failure only means the pages stay resident.
        drop(result);
    }
    #[cfg(not(unix))]
    drop((file, range));
}

/// The bytes of tensor `t` in `file`.
fn tensor_bytes(file: &Gguf<Mmap>, t: &TensorInfo) -> Range<usize> {
    let bytes = file.tensor_bytes(t);
    // The tensor's bytes are a sub-slice of the file's.
    let start = bytes.as_ptr() as usize - file.bytes().as_ptr() as usize;
    start..start + bytes.len()
}

/// The RoPE tables of the global and the local layers, for positions `0..max_pos`.
#[derive(Debug)]
pub(crate) struct Ropes {
    global: RopeTable,
    local: RopeTable,
}

/// The fewest positions a RoPE table is built for: short texts never pay for 2,048 positions.
const MIN_ROPE_POSITIONS: usize = 64;

/// Token embedding rows read between two [`release`]s of the table. Reading one row
/// maps the 16 file pages around it (the kernel's fault-around), 64 KiB for an 816-byte row; the
/// rows of a text are scattered over the 214 MB table, so without the release every distinct
/// token would keep ~64 KiB resident (51 MB for the 9,516 tokens of `docs.jsonl`).
const EMBD_ROWS_PER_RELEASE: usize = 32;

/// A loaded EmbeddingGemma model.
pub(crate) struct GemmaModel {
    file: Gguf<Mmap>,
    /// The bytes of `token_embd.weight` in the file.
    token_embd_bytes: Range<usize>,
    cfg: GemmaConfig,
    info: ModelInfo,
    tokenizer: spm_tokenizer::Tokenizer,
    kern: &'static Kernels,
    precision: Precision,
    /// Whether the layer matrices are packed for the int8 kernel.
    packed: bool,
    token_embd: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    dense: Option<(Matrix, Matrix)>,
    /// RoPE tables for the longest sequence seen so far (rounded up to a power of two), built
    /// on demand: positions do not depend on the table's length, so the values are the same.
    ropes: RwLock<Arc<Ropes>>,
    /// Tokens per feed-forward step ([`forward::FFN_CHUNK`]; a field so that tests can compare
    /// step sizes).
    ffn_chunk: usize,
    /// Working memory of finished calls, reused by the next ones (one per concurrent call).
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for GemmaModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GemmaModel")
            .field("info", &self.info)
            .field("cfg", &self.cfg)
            .field("kernels", &self.kern.name())
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

/// Loads an EmbeddingGemma model from an opened GGUF file (the [`crate::open`] entry point).
pub(crate) fn load(
    path: &Path,
    file: Gguf<Mmap>,
    opts: &RuntimeOptions,
) -> Result<Box<dyn EmbeddingModel>, RuntimeError> {
    Ok(Box::new(GemmaModel::load(path, file, opts)?))
}

impl GemmaModel {
    /// `file` is [`Gguf::open`]'s read-only shared map of a file (the only kind
    /// [`crate::open`] makes), which [`release`] relies on.
    fn load(path: &Path, file: Gguf<Mmap>, opts: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let arch = file.architecture()?.to_owned();
        let has_d2 = file.tensor("dense_2.weight").is_some();
        let has_d3 = file.tensor("dense_3.weight").is_some();
        if has_d2 != has_d3 {
            // One without the other is a broken file, not a "no Dense layers" file.
            file.require_tensor("dense_2.weight")?;
            file.require_tensor("dense_3.weight")?;
        }
        let cfg = GemmaConfig::from_gguf(&file, &arch, has_d2 && has_d3)?;
        config::check_tensor_names(&file, &arch, &cfg)?;
        let d = cfg.n_embd;

        let token_embd = Matrix::load_rows_any(&file, "token_embd.weight", d)?;
        let token_embd_bytes = tensor_bytes(&file, file.require_tensor("token_embd.weight")?);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for (il, &local) in cfg.is_local.iter().enumerate() {
            let n = |s: &str| format!("blk.{il}.{s}.weight");
            layers.push(Layer {
                attn_norm: load_vector(&file, &n("attn_norm"), d)?,
                wq: Matrix::load(&file, &n("attn_q"), cfg.q_dim(), d)?,
                wk: Matrix::load(&file, &n("attn_k"), cfg.kv_dim(), d)?,
                wv: Matrix::load(&file, &n("attn_v"), cfg.kv_dim(), d)?,
                q_norm: load_vector(&file, &n("attn_q_norm"), cfg.head_dim)?,
                k_norm: load_vector(&file, &n("attn_k_norm"), cfg.head_dim)?,
                wo: Matrix::load(&file, &n("attn_output"), d, cfg.q_dim())?,
                post_attn_norm: load_vector(&file, &n("post_attention_norm"), d)?,
                ffn_norm: load_vector(&file, &n("ffn_norm"), d)?,
                gate: Matrix::load(&file, &n("ffn_gate"), cfg.n_ff, d)?,
                up: Matrix::load(&file, &n("ffn_up"), cfg.n_ff, d)?,
                down: Matrix::load(&file, &n("ffn_down"), d, cfg.n_ff)?,
                post_ffw_norm: load_vector(&file, &n("post_ffw_norm"), d)?,
                local,
            });
        }
        let output_norm = load_vector(&file, "output_norm.weight", d)?;
        let mut dense = match cfg.dense {
            Some((mid, out)) => Some((
                Matrix::load(&file, "dense_2.weight", mid, d)?,
                Matrix::load(&file, "dense_3.weight", out, mid)?,
            )),
            None => {
                eprintln!(
                    "gemma-runtime: {arch} file has no dense_2/dense_3 tensors; the output is the \
                     pooled vector without the sentence-transformers Dense projections \
                     (as llama.cpp gives for such files)"
                );
                None
            }
        };

        let kern = match opts.backend {
            Some(backend) => q8_kernels::kernels_for(backend)?,
            None => q8_kernels::kernels()?,
        };
        // Int8 products run on packed layer weights where the kernels have a packed kernel;
        // all-f32 activations read the file's weights as they are. Packing and the tokenizer
        // build run side by side (each also splits its own work over the pool).
        let pack = opts.precision != Precision::F32 && kern.supports_packed_q8_0();
        let cache = match (&opts.pack_cache_dir, pack) {
            (Some(dir), true) => pack_cache::Identity::of(path, &file, kern.backend())
                .map(|id| (id.path_in(dir), id)),
            _ => None,
        };
        let (tokenizer, packed) = rayon::join(
            || crate::tokenizer::from_gguf(&file),
            || -> Result<bool, RuntimeError> {
                if !pack {
                    return Ok(false);
                }
                let cached = cache.as_ref().is_some_and(|(cache_path, id)| {
                    read_packed(&mut layers, &mut dense, cache_path, id)
                });
                if !cached {
                    // The Dense projections (one vector) are packed too: they then run on
                    // two-part int8 activations.
                    use rayon::prelude::*;
                    let mut ms = packable(&mut layers, &mut dense);
                    ms.par_iter_mut()
                        .try_for_each(|m| pack_and_release(m, kern, &file).map(drop))?;
                    if let Some((cache_path, id)) = &cache {
                        let packed: Option<Vec<&PackedQ8_0>> =
                            ms.iter().map(|m| m.packed()).collect();
                        if let Some(packed) = packed {
                            // The cache only saves time: a failed write changes nothing else.
                            let _ = pack_cache::write(cache_path, id, &packed);
                        }
                    }
                }
                Ok(layers
                    .iter_mut()
                    .all(|l| l.matrices_mut().iter().all(|m| m.packed().is_some())))
            },
        );
        let (tokenizer, packed) = (tokenizer?, packed?);
        let vocab_size = token_embd.rows;
        if tokenizer.vocab_size() != vocab_size {
            return Err(RuntimeError::TensorShape {
                name: "token_embd.weight".to_owned(),
                expected: vec![d as u64, tokenizer.vocab_size() as u64],
                found: vec![d as u64, vocab_size as u64],
            });
        }
        let ropes = Ropes::new(&cfg, MIN_ROPE_POSITIONS.min(cfg.context_length))?;

        let output_dim = cfg.output_dim();
        let info = ModelInfo {
            architecture: arch.clone(),
            name: config::optional(file.get_str("general.name"))?.map(str::to_owned),
            hidden_size: d,
            output_dim,
            context_length: cfg.context_length,
            n_layers: cfg.n_layer,
            has_dense: dense.is_some(),
            matryoshka_dims: if output_dim == MATRYOSHKA_DIMS[0] {
                MATRYOSHKA_DIMS.to_vec()
            } else {
                vec![output_dim]
            },
            prompts: EMBEDDINGGEMMA_PROMPTS
                .iter()
                .map(|&(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            vocab_size,
            weight_type: layers
                .first()
                .map_or(token_embd.ggml_type(), |l| l.gate.ggml_type())
                .name()
                .to_owned(),
            backend: kern.name(),
        };

        let model = GemmaModel {
            file,
            token_embd_bytes,
            cfg,
            info,
            tokenizer,
            kern,
            precision: opts.precision,
            packed,
            token_embd,
            layers,
            output_norm,
            dense,
            ropes: RwLock::new(Arc::new(ropes)),
            ffn_chunk: forward::FFN_CHUNK,
            scratch: Mutex::new(Vec::new()),
        };
        // What was read so far (the tokenizer's metadata, the norms, the validation) has been
        // copied or is no longer needed: don't keep those pages resident. What the forward pass
        // reads from the map (token rows, the Dense and any unpacked matrices) maps again on
        // first use.
        release(&model.file, 0..model.file.bytes().len());
        Ok(model)
    }

    /// Releases the pages of the token embedding table (see [`EMBD_ROWS_PER_RELEASE`]).
    fn release_token_embd(&self) {
        release(&self.file, self.token_embd_bytes.clone());
    }

    /// RoPE tables for at least `n` positions (`n <= context_length`).
    fn ropes(&self, n: usize) -> Result<Arc<Ropes>, RuntimeError> {
        let read = |lock: &RwLock<Arc<Ropes>>| match lock.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let current = read(&self.ropes);
        if current.global.max_pos() >= n {
            return Ok(current);
        }
        let mut slot = match self.ropes.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.global.max_pos() < n {
            let positions = n.next_power_of_two().min(self.cfg.context_length).max(n);
            *slot = Arc::new(Ropes::new(&self.cfg, positions)?);
        }
        Ok(Arc::clone(&slot))
    }

    /// Takes a scratch buffer from the pool (or makes one).
    fn take_scratch(&self) -> Scratch {
        let popped = match self.scratch.lock() {
            Ok(mut pool) => pool.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        popped.unwrap_or_default()
    }

    /// Returns a scratch buffer to the pool.
    fn give_scratch(&self, s: Scratch) {
        match self.scratch.lock() {
            Ok(mut pool) => pool.push(s),
            Err(poisoned) => poisoned.into_inner().push(s),
        }
    }

    /// Embeds one sequence, splitting its work over the rayon pool if `parallel`.
    fn embed_one(&self, ids: &[u32], parallel: bool) -> Result<Vec<f32>, RuntimeError> {
        let mut s = self.take_scratch();
        let r = self.forward(ids, &mut s, parallel);
        self.give_scratch(s);
        r
    }
}

impl Ropes {
    /// The tables of `cfg` for positions `0..positions`.
    fn new(cfg: &GemmaConfig, positions: usize) -> Result<Ropes, RuntimeError> {
        Ok(Ropes {
            global: RopeTable::new(cfg.head_dim, cfg.rope_base_global, positions)?,
            local: RopeTable::new(cfg.head_dim, cfg.rope_base_local, positions)?,
        })
    }
}

/// Sequences at least this long are embedded one at a time with every thread on them when a
/// batch is spread over threads; shorter ones run one per thread. Long sequences have enough rows
/// to split well, and running them alone keeps a batch of one long and many short texts from
/// waiting on one thread.
const LONG_SEQUENCE: usize = 512;

impl EmbeddingModel for GemmaModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &spm_tokenizer::Tokenizer {
        &self.tokenizer
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, RuntimeError> {
        self.embed_one(ids, true)
    }

    fn embed_batch_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        use rayon::prelude::*;
        if batch.len() <= 1 || rayon::current_num_threads() <= 1 {
            return batch.iter().map(|ids| self.embed_one(ids, true)).collect();
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; batch.len()];
        // Long sequences: one at a time, split over the pool.
        for (ids, slot) in batch.iter().zip(out.iter_mut()) {
            if ids.len() >= LONG_SEQUENCE {
                *slot = Some(self.embed_one(ids, true)?);
            }
        }
        // Short ones: one per thread. rayon keeps at most one sequence per thread in flight, so
        // the scratch pool never holds more buffers than there are threads.
        out.par_iter_mut()
            .zip(batch.par_iter())
            .filter(|(slot, _)| slot.is_none())
            .try_for_each(|(slot, ids)| {
                *slot = Some(self.embed_one(ids, false)?);
                Ok::<(), RuntimeError>(())
            })?;
        Ok(out.into_iter().flatten().collect())
    }
}
