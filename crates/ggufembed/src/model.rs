//! [`Model`]: a loaded embedding model with its own thread pool.

use std::borrow::Borrow;
use std::path::{Path, PathBuf};

use gemma_runtime::{EmbeddingModel, ModelInfo, RuntimeOptions};
use rayon::prelude::*;
use spm_tokenizer::EncodeOptions;
use spm_tokenizer::Tokenizer;

use crate::error::{Error, Result};
use crate::options::{EmbedOptions, Options, Prompt, Truncation};

pub use gemma_runtime::EMBEDDINGGEMMA_PROMPTS;

/// A loaded embedding model.
///
/// `Model` is `Send + Sync`: share one (e.g. in an `Arc`) between threads. It owns a rayon thread
/// pool of [`Options::threads`] workers, and every call runs the model inside that pool, so the
/// model never uses more cores than it was given, whichever thread calls it.
pub struct Model {
    inner: Box<dyn EmbeddingModel>,
    /// Runs batches (one text per thread) and builds.
    pool: rayon::ThreadPool,
    /// Splits the work of a single text; its helpers stay awake between the text's parallel
    /// regions (see `q8_kernels::Team`).
    team: q8_kernels::Team,
    threads: usize,
    path: PathBuf,
    prompts: Vec<(String, String)>,
    dims: Vec<usize>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("threads", &self.threads)
            .field("info", self.inner.info())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Loads a GGUF embedding model (memory-mapped) and starts its thread pool.
    ///
    /// A missing file gives [`Error::ModelNotFound`], whose message says how to get the model.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Model> {
        let path = path.as_ref();
        require_model_file(path)?;
        let threads = match options.thread_count() {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ggufembed-{i}"))
            .build()?;
        let team = q8_kernels::Team::new(threads).map_err(Error::Threads)?;
        let runtime_options = RuntimeOptions {
            precision: options.precision_value(),
            pack_cache_dir: options.pack_cache_dir_value(),
            backend: None,
        };
        let inner = pool.install(|| gemma_runtime::open(path, &runtime_options))?;
        let info = inner.info();
        let prompts = info.prompts.clone();
        let mut dims = info.matryoshka_dims.clone();
        if !dims.contains(&info.output_dim) {
            dims.push(info.output_dim);
        }
        dims.retain(|&d| d > 0 && d <= info.output_dim);
        dims.sort_unstable_by(|a, b| b.cmp(a));
        dims.dedup();
        Ok(Model {
            inner,
            pool,
            team,
            threads,
            path: path.to_owned(),
            prompts,
            dims,
        })
    }

    /// Embeds texts with the default [`EmbedOptions`]: no prompt, full dimension, L2-normalised.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.embed_with(texts, EmbedOptions::default())
    }

    /// Embeds one text with the default [`EmbedOptions`].
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        self.embed_one_with(text, EmbedOptions::default())
    }

    /// Embeds one text.
    pub fn embed_one_with(
        &self,
        text: &str,
        options: impl Borrow<EmbedOptions>,
    ) -> Result<Vec<f32>> {
        let mut out = self.embed_with(&[text], options)?;
        out.pop().ok_or(Error::BadOutput {
            got: 0,
            expected: 1,
        })
    }

    /// Embeds texts: one vector per text, in order.
    ///
    /// Texts are tokenised (prompt prepended, `<bos>`/`<eos>` added, special-token text such as
    /// `<start_of_turn>` matched) and run in chunks of [`EmbedOptions::batch_size`] texts, so
    /// memory stays bounded however many texts are passed. The empty text is valid.
    pub fn embed_with<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: impl Borrow<EmbedOptions>,
    ) -> Result<Vec<Vec<f32>>> {
        let options = options.borrow();
        let dim = self.check_options(options)?;
        let prefix = self.prompt_text(options.prompt_value())?;
        let mut out = Vec::with_capacity(texts.len());
        for (chunk_no, chunk) in texts.chunks(options.batch_size_value()).enumerate() {
            let first = chunk_no * options.batch_size_value();
            let ids = self.encode_chunk(chunk, prefix, options.truncation_value(), first)?;
            out.extend(self.run(&ids, first, dim, options.normalize_value())?);
        }
        Ok(out)
    }

    /// Embeds sequences of token ids, as produced by [`Model::tokenize_with`] (special tokens
    /// included; the prompt, if any, already in them). The prompt and truncation settings of
    /// `options` are not used; dimension, normalisation and batch size are.
    pub fn embed_tokens(
        &self,
        batch: &[Vec<u32>],
        options: impl Borrow<EmbedOptions>,
    ) -> Result<Vec<Vec<f32>>> {
        let options = options.borrow();
        let dim = self.check_options(options)?;
        let max = self.context_length();
        let mut out = Vec::with_capacity(batch.len());
        for (chunk_no, chunk) in batch.chunks(options.batch_size_value()).enumerate() {
            if let Some((i, ids)) = chunk.iter().enumerate().find(|(_, ids)| ids.len() > max) {
                return Err(Error::TooLong {
                    index: chunk_no * options.batch_size_value() + i,
                    tokens: ids.len(),
                    max,
                });
            }
            let first = chunk_no * options.batch_size_value();
            out.extend(self.run(chunk, first, dim, options.normalize_value())?);
        }
        Ok(out)
    }

    /// The token ids [`Model::embed`] feeds the model for `text`: `<bos>`, the text's tokens
    /// (cut to fit the context), `<eos>`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenize_with(text, EmbedOptions::default())
    }

    /// The token ids [`Model::embed_with`] feeds the model for `text` under `options`
    /// (prompt prepended, truncation applied).
    pub fn tokenize_with(
        &self,
        text: &str,
        options: impl Borrow<EmbedOptions>,
    ) -> Result<Vec<u32>> {
        let options = options.borrow();
        let prefix = self.prompt_text(options.prompt_value())?;
        let mut ids = self.encode_chunk(&[text], prefix, options.truncation_value(), 0)?;
        ids.pop().ok_or(Error::BadOutput {
            got: 0,
            expected: 1,
        })
    }

    /// [`Model::tokenize_with`] for many texts, in parallel on the model's thread pool.
    pub fn tokenize_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: impl Borrow<EmbedOptions>,
    ) -> Result<Vec<Vec<u32>>> {
        let options = options.borrow();
        let prefix = self.prompt_text(options.prompt_value())?;
        self.encode_chunk(texts, prefix, options.truncation_value(), 0)
    }

    /// The model's tokenizer, for direct use (e.g. counting tokens or decoding ids).
    pub fn tokenizer(&self) -> &Tokenizer {
        self.inner.tokenizer()
    }

    /// What the model file says about the model.
    pub fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    /// The output dimensions this model supports, largest (the full size) first.
    pub fn dimensions(&self) -> &[usize] {
        &self.dims
    }

    /// The full output dimension.
    pub fn output_dim(&self) -> usize {
        self.inner.info().output_dim
    }

    /// The longest token sequence the model takes (special tokens included).
    pub fn context_length(&self) -> usize {
        self.inner.info().context_length
    }

    /// The model's named task prompts as `(name, prefix)` pairs.
    pub fn prompts(&self) -> &[(String, String)] {
        &self.prompts
    }

    /// The prefix text of `prompt`, or [`Error::UnknownPrompt`] if the model has no such prompt.
    pub fn prompt_text<'a>(&'a self, prompt: &'a Prompt) -> Result<&'a str> {
        let name = match prompt {
            Prompt::None => return Ok(""),
            Prompt::Text(text) => return Ok(text),
            Prompt::Query => "query",
            Prompt::Document => "document",
            Prompt::Named(name) => name,
        };
        self.prompts
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| {
                self.prompts
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, p)| p.as_str())
            .ok_or_else(|| Error::UnknownPrompt {
                name: name.to_owned(),
                available: self.prompts.iter().map(|(n, _)| n.clone()).collect(),
            })
    }

    /// Name of the matrix-kernel backend chosen for this CPU (e.g. `avx512vnni`, `avx2`, `neon`).
    pub fn backend(&self) -> &'static str {
        crate::backend()
    }

    /// Number of threads in the model's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runtime under the facade, for advanced use (e.g. embedding raw ids without the
    /// facade's post-processing). Calls made on it do not run inside the model's thread pool
    /// unless wrapped in [`Model::install`].
    pub fn runtime(&self) -> &dyn EmbeddingModel {
        &*self.inner
    }

    /// Runs `f` inside the model's thread pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Validates the dimension and batch size; returns the output dimension to cut to.
    fn check_options(&self, options: &EmbedOptions) -> Result<usize> {
        if options.batch_size_value() == 0 {
            return Err(Error::InvalidOption {
                option: "batch_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        match options.dim_value() {
            None => Ok(self.output_dim()),
            Some(d) if self.dims.contains(&d) => Ok(d),
            Some(d) => Err(Error::UnsupportedDimension {
                requested: d,
                supported: self.dims.clone(),
            }),
        }
    }

    /// Tokenises `prefix + text` for each text, in parallel; `first` is the index of `texts[0]`
    /// in the caller's batch (for error messages).
    fn encode_chunk<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        prefix: &str,
        truncation: Truncation,
        first: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let max = self.context_length();
        let encode_options = EncodeOptions {
            add_special_tokens: true,
            parse_special: true,
            max_length: Some(max),
            truncation: truncation.into(),
        };
        let tokenizer = self.inner.tokenizer();
        let encode = |(i, text): (usize, &S)| -> Result<Vec<u32>> {
            let text = text.as_ref();
            let result = if prefix.is_empty() {
                tokenizer.encode_with(text, &encode_options)
            } else {
                tokenizer.encode_with(&format!("{prefix}{text}"), &encode_options)
            };
            result.map_err(|e| match e {
                spm_tokenizer::TokenizerError::TooLong { tokens, max } => Error::TooLong {
                    index: first + i,
                    tokens,
                    max,
                },
                other => Error::Tokenizer(other),
            })
        };
        if texts.len() == 1 {
            return texts.iter().enumerate().map(encode).collect();
        }
        self.pool
            .install(|| texts.par_iter().enumerate().map(encode).collect())
    }

    /// Runs the model on a chunk (whose first text is text `first` of the call) and
    /// post-processes (cut to `dim`, normalise). A vector with a non-finite value is an error.
    fn run(
        &self,
        ids: &[Vec<u32>],
        first: usize,
        dim: usize,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>> {
        // One sequence: the runtime splits its work across the team's threads; several: the
        // runtime runs short sequences in parallel on the pool and long ones one at a time on
        // the team. Both give the same bits per sequence.
        let raw = self.pool.install(|| {
            self.team.install(|| match ids {
                [one] => self.inner.embed_ids(one).map(|v| vec![v]),
                _ => self.inner.embed_batch_ids(ids),
            })
        })?;
        if raw.len() != ids.len() {
            return Err(Error::BadOutput {
                got: raw.len(),
                expected: ids.len(),
            });
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                let count = v.iter().filter(|x| !x.is_finite()).count();
                if count > 0 {
                    return Err(Error::NonFinite {
                        index: first + i,
                        count,
                    });
                }
                if v.len() < dim {
                    return Err(Error::BadOutput {
                        got: v.len(),
                        expected: dim,
                    });
                }
                v.truncate(dim);
                if normalize {
                    l2_normalize(&mut v);
                }
                Ok(v)
            })
            .collect()
    }
}

/// Scales `v` to unit Euclidean length (in place); a zero vector is left as is.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        for x in v {
            *x = (f64::from(*x) * inv) as f32;
        }
    }
}

/// Cosine similarity of two vectors of the same length (`0.0` if either is zero).
///
/// ```
/// let a = [1.0, 0.0];
/// let b = [1.0, 1.0];
/// assert!((ggufembed::cosine_similarity(&a, &b) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
/// ```
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += f64::from(x) * f64::from(y);
        na += f64::from(x) * f64::from(x);
        nb += f64::from(y) * f64::from(y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// `ModelNotFound` if there is no file at `path`, `ModelNotAFile` if what is there is not a
/// regular file (opening a FIFO blocks until a writer comes; a directory or a device cannot be
/// mapped). Other problems (permissions, a malformed file) are left for the runtime to report
/// when it opens the file.
pub(crate) fn require_model_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::ModelNotFound {
            path: path.to_owned(),
        }),
        Ok(meta) if !meta.is_file() => Err(Error::ModelNotAFile {
            path: path.to_owned(),
            kind: gguf::file_kind(&meta.file_type()),
        }),
        _ => Ok(()),
    }
}
