//! Options for loading a model ([`Options`]) and for embedding text ([`EmbedOptions`]).

use std::path::PathBuf;

pub use gemma_runtime::Precision;

/// Set (non-empty) to keep [`Options`] from caching packed weights by default.
pub const NO_PACK_CACHE_ENV: &str = "GGUFEMBED_NO_PACK_CACHE";

/// How a model is loaded and run.
///
/// ```
/// let opts = ggufembed::Options::default().threads(2);
/// assert_eq!(opts.thread_count(), Some(2));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    threads: Option<usize>,
    precision: Precision,
    /// `None`: the default directory; `Some(None)`: no cache.
    pack_cache: Option<Option<PathBuf>>,
}

impl Options {
    /// Number of threads a model works with: its thread pool (texts of a batch in parallel) and
    /// the team that splits a single text (`q8_kernels::Team`: the calling pool thread plus
    /// `threads − 1` helpers, which spin briefly between a text's steps and then sleep). `0` (or
    /// never calling this) means one per available core.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = (threads > 0).then_some(threads);
        self
    }

    /// Numeric precision of the runtime's activations, passed through to the runtime.
    #[must_use]
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Where the packed weight matrices are cached between processes (see
    /// `gemma_runtime::RuntimeOptions::pack_cache_dir`): `Some(dir)`, or `None` to pack in
    /// memory every time. Default: `packed/` in [`crate::model_cache_dir`] (unless
    /// `GGUFEMBED_NO_PACK_CACHE` is set and non-empty).
    #[must_use]
    pub fn pack_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.pack_cache = Some(dir);
        self
    }

    /// The pack cache directory in effect (see [`Options::pack_cache`]).
    pub fn pack_cache_dir_value(&self) -> Option<PathBuf> {
        match &self.pack_cache {
            Some(choice) => choice.clone(),
            None if std::env::var_os(NO_PACK_CACHE_ENV).is_some_and(|v| !v.is_empty()) => None,
            None => Some(crate::model_cache_dir().join("packed")),
        }
    }

    /// The thread count set with [`Options::threads`], `None` for "one per core".
    pub fn thread_count(&self) -> Option<usize> {
        self.threads
    }

    /// The precision set with [`Options::precision`].
    pub fn precision_value(&self) -> Precision {
        self.precision
    }
}

/// A task prompt: a plain text prefix put in front of every text before it is tokenised.
///
/// EmbeddingGemma was trained with prompts; retrieval works best with [`Prompt::Query`] for the
/// questions and [`Prompt::Document`] for the passages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Prompt {
    /// No prefix: the text is embedded as given.
    #[default]
    None,
    /// The model's `query` prompt (EmbeddingGemma: `task: search result | query: `).
    Query,
    /// The model's `document` prompt (EmbeddingGemma: `title: none | text: `).
    Document,
    /// Any of the model's named task prompts, e.g. `"Clustering"` or `"STS"`
    /// (see [`Model::prompts`](crate::Model::prompts)).
    Named(String),
    /// A prefix given literally.
    Text(String),
}

impl std::str::FromStr for Prompt {
    type Err = std::convert::Infallible;

    /// `""` or `"none"` (any case) → [`Prompt::None`], `"query"` → [`Prompt::Query`],
    /// `"document"` → [`Prompt::Document`], anything else → [`Prompt::Named`] (checked against
    /// the model's prompts when used).
    ///
    /// ```
    /// use ggufembed::Prompt;
    /// assert_eq!("query".parse(), Ok(Prompt::Query));
    /// assert_eq!("STS".parse(), Ok(Prompt::Named("STS".into())));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" => Prompt::None,
            s if s.eq_ignore_ascii_case("none") => Prompt::None,
            "query" => Prompt::Query,
            "document" => Prompt::Document,
            name => Prompt::Named(name.to_owned()),
        })
    }
}

/// What to do with a text longer than the model's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Truncation {
    /// Keep `<bos>`, the first `context_length - 2` tokens and `<eos>`, like sentence-transformers.
    #[default]
    Truncate,
    /// Fail with [`Error::TooLong`](crate::Error::TooLong).
    Error,
}

impl From<Truncation> for spm_tokenizer::Truncation {
    fn from(t: Truncation) -> Self {
        match t {
            Truncation::Truncate => spm_tokenizer::Truncation::Truncate,
            Truncation::Error => spm_tokenizer::Truncation::Error,
        }
    }
}

/// Default number of texts handed to the runtime at once by [`Model::embed_with`](crate::Model::embed_with).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// How texts are turned into vectors.
///
/// ```
/// use ggufembed::{EmbedOptions, Prompt};
/// let opts = EmbedOptions::default().prompt(Prompt::Query).dim(256);
/// assert_eq!(opts.dim_value(), Some(256));
/// assert!(opts.normalize_value());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    prompt: Prompt,
    dim: Option<usize>,
    normalize: bool,
    truncation: Truncation,
    batch_size: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            prompt: Prompt::None,
            dim: None,
            normalize: true,
            truncation: Truncation::Truncate,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl EmbedOptions {
    /// The task prompt put in front of every text (default: none).
    #[must_use]
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = prompt;
        self
    }

    /// Output dimension: one of the model's Matryoshka sizes (EmbeddingGemma: 768, 512, 256, 128).
    /// The vector is cut to this size and, if normalisation is on, L2-normalised again.
    /// Default: the model's full output dimension.
    #[must_use]
    pub fn dim(mut self, dim: usize) -> Self {
        self.dim = Some(dim);
        self
    }

    /// L2-normalise the output (default `true`). With `false` the model's raw pooled vector is
    /// returned (cut to [`EmbedOptions::dim`] if set).
    #[must_use]
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// What to do with texts longer than the model's context (default: truncate).
    #[must_use]
    pub fn truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// How many texts are tokenised and run together (default [`DEFAULT_BATCH_SIZE`]); bounds the
    /// memory used by one call. Must be at least 1.
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The prompt set with [`EmbedOptions::prompt`].
    pub fn prompt_value(&self) -> &Prompt {
        &self.prompt
    }

    /// The dimension set with [`EmbedOptions::dim`], `None` for the model's full size.
    pub fn dim_value(&self) -> Option<usize> {
        self.dim
    }

    /// Whether outputs are L2-normalised.
    pub fn normalize_value(&self) -> bool {
        self.normalize
    }

    /// The truncation policy.
    pub fn truncation_value(&self) -> Truncation {
        self.truncation
    }

    /// The batch size.
    pub fn batch_size_value(&self) -> usize {
        self.batch_size
    }
}
