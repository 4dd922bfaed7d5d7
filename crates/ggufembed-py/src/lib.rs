//! Python bindings of the [`ggufembed`] facade: the native module `ggufembed._ggufembed`, which the
//! Python package `ggufembed` (in `python/`) re-exports.
//!
//! * [`Model`] wraps one `ggufembed::Model` (its own thread pool); calls from several Python
//!   threads run at once, and the interpreter lock is released while the model works.
//! * Embeddings come back as one `numpy.ndarray` of `float32`, shape `(n, dim)`: the rows are
//!   copied into one Rust buffer, whose ownership passes to numpy (no Python object per value).
//! * Errors keep the facade's messages and become `ggufembed.Error` and its subclasses
//!   (`python/ggufembed/_errors.py`), which also derive from the matching built-in exception.
//! * A model pickles as the arguments it was opened with, so a worker process or actor that
//!   unpickles it opens the file itself (the weights are memory-mapped, never serialised).

use std::path::{Path, PathBuf};

use ggufembed::{EmbedOptions, Options, Precision, Prompt, Truncation};
use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

/// The Python exception classes of `ggufembed._errors`, looked up once.
struct ErrorClasses {
    base: Py<PyType>,
    model_not_found: Py<PyType>,
    invalid_input: Py<PyType>,
}

static ERROR_CLASSES: PyOnceLock<ErrorClasses> = PyOnceLock::new();

/// Which of our exception classes an error becomes.
#[derive(Clone, Copy)]
enum ErrorKind {
    /// `ggufembed.Error`: the model file is bad, or the runtime failed.
    Base,
    /// `ggufembed.ModelNotFoundError` (also a `FileNotFoundError`).
    ModelNotFound,
    /// `ggufembed.InvalidInputError` (also a `ValueError`): an argument or a text was rejected.
    InvalidInput,
}

fn error_classes(py: Python<'_>) -> PyResult<&ErrorClasses> {
    ERROR_CLASSES.get_or_try_init(py, || {
        let module = py.import("ggufembed._errors")?;
        let class = |name: &str| -> PyResult<Py<PyType>> {
            Ok(module.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(ErrorClasses {
            base: class("Error")?,
            model_not_found: class("ModelNotFoundError")?,
            invalid_input: class("InvalidInputError")?,
        })
    })
}

/// A Python exception of class `kind` with `message`.
fn py_error(py: Python<'_>, kind: ErrorKind, message: String) -> PyErr {
    match error_classes(py) {
        Ok(classes) => {
            let class = match kind {
                ErrorKind::Base => &classes.base,
                ErrorKind::ModelNotFound => &classes.model_not_found,
                ErrorKind::InvalidInput => &classes.invalid_input,
            };
            PyErr::from_type(class.bind(py).clone(), message)
        }
        Err(e) => e,
    }
}

/// `ggufembed.InvalidInputError(message)`.
fn invalid(py: Python<'_>, message: impl Into<String>) -> PyErr {
    py_error(py, ErrorKind::InvalidInput, message.into())
}

/// A facade error as a Python exception with the facade's message; `first` is the position of the
/// failing call's first text among the caller's texts (so that "text N" names the caller's N).
fn to_py(py: Python<'_>, err: ggufembed::Error, first: usize) -> PyErr {
    use ggufembed::Error as E;
    match err {
        E::ModelNotFound { .. } => py_error(
            py,
            ErrorKind::ModelNotFound,
            format!("{err}; or pass path= to ggufembed.Model"),
        ),
        E::TooLong { index, tokens, max } => invalid(
            py,
            format!(
                "text {} encodes to {tokens} tokens (prompt and special tokens included), more \
                 than the model's context of {max}; shorten it or pass truncate=True",
                first + index
            ),
        ),
        E::UnsupportedDimension { .. } | E::UnknownPrompt { .. } | E::InvalidOption { .. } => {
            invalid(py, err.to_string())
        }
        other => py_error(py, ErrorKind::Base, other.to_string()),
    }
}

/// What a `texts` argument held.
enum Texts {
    /// One `str`: the result has one dimension less, like sentence-transformers' `encode`.
    One(String),
    /// Any other iterable of `str` (list, tuple, numpy array of strings, pandas Series, ...).
    Many(Vec<String>),
}

impl Texts {
    fn as_slice(&self) -> &[String] {
        match self {
            Texts::One(text) => std::slice::from_ref(text),
            Texts::Many(texts) => texts,
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Reads `texts`: a `str`, or an iterable of `str`. Anything else is a `TypeError` naming what
/// was found (and where); a `str` that is not valid Unicode (lone surrogates) raises
/// `UnicodeEncodeError`.
fn extract_texts(texts: &Bound<'_, PyAny>) -> PyResult<Texts> {
    if let Ok(text) = texts.cast::<PyString>() {
        return Ok(Texts::One(text.extract()?));
    }
    if texts.is_instance_of::<PyBytes>() || texts.is_instance_of::<PyByteArray>() {
        return Err(PyTypeError::new_err(format!(
            "texts must be a str or a sequence of str, not {}; decode the bytes first",
            type_name(texts)
        )));
    }
    let iter = texts.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "texts must be a str or a sequence of str, not {}",
            type_name(texts)
        ))
    })?;
    let mut out = Vec::with_capacity(texts.len().unwrap_or(0));
    for (i, item) in iter.enumerate() {
        let item = item?;
        let text = item.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("texts[{i}] is {}, not str", type_name(&item)))
        })?;
        out.push(text.extract()?);
    }
    Ok(Texts::Many(out))
}

/// The facade's prompt from `prompt_name` (a name of the model's prompts) or `prompt` (a literal
/// prefix); giving both is an error, as in sentence-transformers.
fn prompt_of(py: Python<'_>, name: Option<String>, text: Option<String>) -> PyResult<Prompt> {
    match (name, text) {
        (Some(_), Some(_)) => Err(invalid(
            py,
            "give prompt_name (one of the model's prompts) or prompt (a literal prefix), not both",
        )),
        (Some(name), None) => Ok(name
            .parse()
            .unwrap_or_else(|never: std::convert::Infallible| match never {})),
        (None, Some(text)) => Ok(Prompt::Text(text)),
        (None, None) => Ok(Prompt::None),
    }
}

/// `value` as a count of at least 1.
fn positive(py: Python<'_>, name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| {
            invalid(
                py,
                format!("{name} must be a positive integer, got {value}"),
            )
        })
}

/// The names of [`Precision`] values in Python, as in the command line's `--precision`.
const PRECISIONS: [(&str, Precision); 3] = [
    ("int8", Precision::Int8),
    ("mixed", Precision::Mixed),
    ("f32", Precision::F32),
];

/// A text embedding model loaded from a GGUF file (EmbeddingGemma-300M).
///
/// Model(path=None, threads=None, precision=None)
///
/// path: the GGUF file; default: $GGUFEMBED_MODEL, else embeddinggemma-300m-q8_0.gguf in the model
/// cache ($GGUFEMBED_CACHE, else $XDG_CACHE_HOME/ggufembed, else ~/.cache/ggufembed).
/// threads: worker threads of this model; default: one per core.
/// precision: "int8", "mixed" (the default) or "f32": the activations in the Q8_0 products.
///
/// One model serves any number of Python threads at once; the interpreter lock is released while
/// it works. A model pickles as its arguments: unpickling opens the file again.
#[pyclass(frozen, module = "ggufembed", name = "Model")]
struct Model {
    inner: ggufembed::Model,
    /// The `path` argument, made absolute (`None`: the default model of the process that opens it).
    path_arg: Option<PathBuf>,
    /// The `threads` argument.
    threads_arg: Option<usize>,
    /// The `precision` argument, by its name in [`PRECISIONS`].
    precision_arg: Option<&'static str>,
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (path=None, threads=None, precision=None))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        threads: Option<i64>,
        precision: Option<&str>,
    ) -> PyResult<Self> {
        let mut options = Options::default();
        let threads_arg = match threads {
            Some(t) => {
                let t = positive(py, "threads", t)?;
                options = options.threads(t);
                Some(t)
            }
            None => None,
        };
        let precision_arg = match precision {
            Some(name) => {
                let (name, value) = PRECISIONS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        invalid(
                            py,
                            format!("unknown precision {name:?}; choose int8, mixed or f32"),
                        )
                    })?;
                options = options.precision(*value);
                Some(*name)
            }
            None => None,
        };
        let path_arg = path.map(|p| std::path::absolute(&p).unwrap_or(p));
        let file = path_arg
            .clone()
            .unwrap_or_else(ggufembed::default_model_path);
        let inner = py
            .detach(|| ggufembed::Model::open(&file, options))
            .map_err(|e| to_py(py, e, 0))?;
        Ok(Model {
            inner,
            path_arg,
            threads_arg,
            precision_arg,
        })
    }

    /// Embeds texts: a float32 numpy array of shape (len(texts), dim), one row per text in order;
    /// a single str gives shape (dim,).
    ///
    /// texts: a str, or an iterable of str (list, tuple, numpy array, pandas Series, ...).
    /// prompt_name: one of the model's task prompts ("query", "document", "Clustering", ... see
    /// Model.prompts), put in front of every text. prompt: a literal prefix instead.
    /// dim: output size, one of Model.dimensions (Matryoshka: 768, 512, 256, 128); default: full.
    /// normalize: L2-normalise the rows (after cutting to dim). batch_size: texts run together.
    /// truncate: cut texts longer than the context (2048 tokens) like sentence-transformers; with
    /// False such a text raises InvalidInputError.
    #[pyo3(signature = (texts, prompt_name=None, dim=None, normalize=true, batch_size=32, *, prompt=None, truncate=true))]
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        prompt_name: Option<String>,
        dim: Option<i64>,
        normalize: bool,
        batch_size: i64,
        prompt: Option<String>,
        truncate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = extract_texts(texts)?;
        let mut options = EmbedOptions::default()
            .prompt(prompt_of(py, prompt_name, prompt)?)
            .normalize(normalize)
            .batch_size(positive(py, "batch_size", batch_size)?)
            .truncation(if truncate {
                Truncation::Truncate
            } else {
                Truncation::Error
            });
        if let Some(d) = dim {
            options = options.dim(positive(py, "dim", d)?);
        }
        let dim = options.dim_value().unwrap_or(self.inner.output_dim());
        let flat = self.embed_rows(py, texts.as_slice(), &options, dim)?;
        to_array(py, texts, flat, dim)
    }

    /// sentence-transformers' `encode`, for code written against it: the same as
    /// `embed(sentences, prompt_name, prompt=prompt, batch_size=batch_size)` cut to `truncate_dim`
    /// values the way sentence-transformers cuts (after its Normalize module, renormalising only
    /// with normalize_embeddings=True). show_progress_bar is accepted and ignored.
    #[pyo3(signature = (sentences, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None, normalize_embeddings=false, truncate_dim=None))]
    #[allow(clippy::too_many_arguments)]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        prompt_name: Option<String>,
        prompt: Option<String>,
        batch_size: i64,
        show_progress_bar: Option<&Bound<'py, PyAny>>,
        normalize_embeddings: bool,
        truncate_dim: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = show_progress_bar;
        let texts = extract_texts(sentences)?;
        let options = EmbedOptions::default()
            .prompt(prompt_of(py, prompt_name, prompt)?)
            .batch_size(positive(py, "batch_size", batch_size)?);
        let full = self.inner.output_dim();
        let dim = match truncate_dim {
            Some(d) => positive(py, "truncate_dim", d)?.min(full),
            None => full,
        };
        let mut flat = self.embed_rows(py, texts.as_slice(), &options, full)?;
        if dim < full {
            flat = flat
                .chunks_exact(full)
                .flat_map(|row| &row[..dim])
                .copied()
                .collect();
            if normalize_embeddings {
                flat.chunks_exact_mut(dim).for_each(ggufembed::l2_normalize);
            }
        }
        to_array(py, texts, flat, dim)
    }

    /// sentence-transformers' `encode_query`: `encode` with the model's "query" prompt.
    #[pyo3(signature = (sentences, batch_size=32, normalize_embeddings=false, truncate_dim=None))]
    fn encode_query<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        batch_size: i64,
        normalize_embeddings: bool,
        truncate_dim: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt = Some("query".to_owned());
        self.encode(
            py,
            sentences,
            prompt,
            None,
            batch_size,
            None,
            normalize_embeddings,
            truncate_dim,
        )
    }

    /// sentence-transformers' `encode_document`: `encode` with the model's "document" prompt.
    #[pyo3(signature = (sentences, batch_size=32, normalize_embeddings=false, truncate_dim=None))]
    fn encode_document<'py>(
        &self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        batch_size: i64,
        normalize_embeddings: bool,
        truncate_dim: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt = Some("document".to_owned());
        self.encode(
            py,
            sentences,
            prompt,
            None,
            batch_size,
            None,
            normalize_embeddings,
            truncate_dim,
        )
    }

    /// The token ids `embed` feeds the model: <bos>, the (prompt and) text's tokens, <eos>.
    /// A str gives a list of int, an iterable of str a list of such lists.
    #[pyo3(signature = (texts, prompt_name=None, *, prompt=None, truncate=true))]
    fn tokenize<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        prompt_name: Option<String>,
        prompt: Option<String>,
        truncate: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let texts = extract_texts(texts)?;
        let options = EmbedOptions::default()
            .prompt(prompt_of(py, prompt_name, prompt)?)
            .truncation(if truncate {
                Truncation::Truncate
            } else {
                Truncation::Error
            });
        let slice = texts.as_slice();
        let mut ids = py
            .detach(|| self.inner.tokenize_batch(slice, &options))
            .map_err(|e| to_py(py, e, 0))?;
        match texts {
            Texts::One(_) => Ok(PyList::new(py, ids.pop().unwrap_or_default())?.into_any()),
            Texts::Many(_) => Ok(PyList::new(py, ids)?.into_any()),
        }
    }

    /// What the model file holds and how it runs, as a dict (the keys of `gemma-embed info --json`).
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let info = m.info();
        let d = PyDict::new(py);
        d.set_item("path", m.path().as_os_str())?;
        d.set_item("architecture", &info.architecture)?;
        d.set_item("name", info.name.as_deref())?;
        d.set_item("weight_type", &info.weight_type)?;
        d.set_item("layers", info.n_layers)?;
        d.set_item("hidden_size", info.hidden_size)?;
        d.set_item("output_dim", m.output_dim())?;
        d.set_item("dimensions", m.dimensions())?;
        d.set_item("context_length", m.context_length())?;
        d.set_item("vocab_size", info.vocab_size)?;
        d.set_item("has_dense", info.has_dense)?;
        d.set_item("prompts", self.prompts(py)?)?;
        d.set_item("backend", m.backend())?;
        d.set_item("threads", m.threads())?;
        d.set_item("precision", self.precision_arg.unwrap_or("mixed"))?;
        Ok(d)
    }

    /// The model's task prompts: {name: prefix}.
    #[getter]
    fn prompts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, prefix) in self.inner.prompts() {
            d.set_item(name, prefix)?;
        }
        Ok(d)
    }

    /// The output sizes `dim` can take, largest (the full size) first.
    #[getter]
    fn dimensions(&self) -> Vec<usize> {
        self.inner.dimensions().to_vec()
    }

    /// The full output size (sentence-transformers: `get_sentence_embedding_dimension()`).
    #[getter]
    fn dim(&self) -> usize {
        self.inner.output_dim()
    }

    /// The file the model was loaded from.
    #[getter]
    fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Worker threads of this model.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// sentence-transformers' name for `Model.dim`.
    fn get_sentence_embedding_dimension(&self) -> usize {
        self.inner.output_dim()
    }

    fn __repr__(&self) -> String {
        format!(
            "ggufembed.Model(path={:?}, threads={}, precision={:?})",
            self.inner.path().display().to_string(),
            self.inner.threads(),
            self.precision_arg.unwrap_or("mixed")
        )
    }

    /// Pickles as `Model(path, threads, precision)` with the arguments it was made with: the
    /// process that unpickles it opens the file again (a model made with `path=None` opens that
    /// process's default model).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let args = (
            self.path_arg.as_deref(),
            self.threads_arg,
            self.precision_arg,
        )
            .into_pyobject(py)?;
        (py.get_type::<Model>(), args).into_pyobject(py)
    }
}

impl Model {
    /// Embeds `texts` batch by batch with the interpreter lock released, checking for Ctrl-C
    /// between batches; returns the rows (each `dim` long) one after the other.
    fn embed_rows(
        &self,
        py: Python<'_>,
        texts: &[String],
        options: &EmbedOptions,
        dim: usize,
    ) -> PyResult<Vec<f32>> {
        // Reject a bad prompt or dimension even when there is no text.
        self.inner
            .embed_with(&[] as &[&str], options)
            .map_err(|e| to_py(py, e, 0))?;
        let len = texts.len().checked_mul(dim).ok_or_else(|| {
            py_error(
                py,
                ErrorKind::Base,
                "too many texts for one call".to_owned(),
            )
        })?;
        let mut flat = Vec::with_capacity(len);
        let batch = options.batch_size_value();
        for (chunk_no, chunk) in texts.chunks(batch).enumerate() {
            let first = chunk_no * batch;
            let rows = py
                .detach(|| self.inner.embed_with(chunk, options))
                .map_err(|e| to_py(py, e, first))?;
            for row in rows {
                if row.len() != dim {
                    let err = ggufembed::Error::BadOutput {
                        got: row.len(),
                        expected: dim,
                    };
                    return Err(to_py(py, err, first));
                }
                flat.extend_from_slice(&row);
            }
            py.check_signals()?;
        }
        Ok(flat)
    }
}

/// The rows as a numpy array that owns the buffer: `(dim,)` for one `str`, else `(n, dim)`.
fn to_array<'py>(
    py: Python<'py>,
    texts: Texts,
    flat: Vec<f32>,
    dim: usize,
) -> PyResult<Bound<'py, PyAny>> {
    match texts {
        Texts::One(_) => Ok(flat.into_pyarray(py).into_any()),
        Texts::Many(texts) => {
            let array = Array2::from_shape_vec((texts.len(), dim), flat).map_err(|e| {
                py_error(py, ErrorKind::Base, format!("cannot shape the output: {e}"))
            })?;
            Ok(array.into_pyarray(py).into_any())
        }
    }
}

/// The model used when `Model(path=None)`: $GGUFEMBED_MODEL, else the Q8_0 file in the cache.
#[pyfunction]
fn default_model_path() -> PathBuf {
    ggufembed::default_model_path()
}

/// The matrix-kernel backend chosen for this CPU (e.g. "avx512vnni", "avx2", "neon", "scalar").
#[pyfunction]
fn backend() -> &'static str {
    ggufembed::backend()
}

/// The native part of the `ggufembed` Python package.
#[pymodule]
fn _ggufembed(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(default_model_path, m)?)?;
    m.add_function(wrap_pyfunction!(backend, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
