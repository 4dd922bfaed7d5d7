//! Loading only a model's tokenizer.
//!
//! Counting or inspecting tokens needs the vocabulary, not the weights: [`load_tokenizer`] maps the
//! GGUF file, parses its header and builds the tokenizer from the `tokenizer.ggml.*` keys without
//! touching a tensor, a fraction of the time [`Model::open`](crate::Model::open) takes.

use std::path::Path;

use crate::{Result, Tokenizer};

/// Opens the GGUF model at `path` and builds only its tokenizer: the same tokenizer as
/// [`Model::tokenizer`](crate::Model::tokenizer) for that file, without loading the weights.
///
/// The build runs on the current rayon pool (call it inside `ThreadPool::install` to choose one).
///
/// ```no_run
/// let tokenizer = ggufembed::load_tokenizer(ggufembed::default_model_path())?;
/// let ids = tokenizer.encode("Hello world");
/// assert_eq!(ids.first(), tokenizer.bos_id().as_ref());
/// # Ok::<(), ggufembed::Error>(())
/// ```
///
/// # Errors
/// [`Error::ModelNotFound`](crate::Error::ModelNotFound) if there is no file at `path`;
/// [`Error::Runtime`](crate::Error::Runtime) if the file is not a readable GGUF file or its
/// vocabulary keys are missing or inconsistent.
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    crate::model::require_model_file(path)?;
    let file = gguf::Gguf::open(path).map_err(gemma_runtime::RuntimeError::from)?;
    Ok(gemma_runtime::tokenizer_from_gguf(&file)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn missing_file_is_model_not_found() {
        match load_tokenizer("/no/such/model.gguf") {
            Err(Error::ModelNotFound { path }) => {
                assert_eq!(path, Path::new("/no/such/model.gguf"))
            }
            other => panic!(
                "expected ModelNotFound, got {:?}",
                other.map(|t| t.vocab_size())
            ),
        }
    }

    /// A directory or a device is refused by name before anything opens it (a FIFO would block
    /// in `open`; the CLI tests cover that one).
    #[test]
    fn a_path_that_is_not_a_regular_file_is_refused() {
        let dir = std::env::temp_dir();
        #[allow(unused_mut)]
        let mut cases = vec![(dir.as_path(), "a directory")];
        #[cfg(unix)]
        cases.push((Path::new("/dev/null"), "a character device"));
        for (path, want) in cases {
            for r in [
                load_tokenizer(path).map(|_| ()),
                crate::Model::open(path, crate::Options::default().threads(1)).map(|_| ()),
            ] {
                match r {
                    Err(e @ Error::ModelNotAFile { .. }) => {
                        let msg = e.to_string();
                        assert!(msg.contains(want), "{msg}");
                        assert!(msg.contains(&path.display().to_string()), "{msg}");
                    }
                    other => panic!(
                        "expected ModelNotAFile for {}, got {other:?}",
                        path.display()
                    ),
                }
            }
        }
    }

    #[test]
    fn a_file_that_is_not_gguf_is_a_runtime_error() {
        let path = std::env::temp_dir().join(format!("ggufembed-not-gguf-{}", std::process::id()));
        std::fs::write(&path, b"not a gguf file at all").unwrap();
        let r = load_tokenizer(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(r, Err(Error::Runtime(_))),
            "{:?}",
            r.map(|t| t.vocab_size())
        );
    }

    /// The tokenizer alone encodes and decodes exactly like the loaded model's.
    #[test]
    fn same_tokenizer_as_the_model() {
        let path = crate::default_model_path();
        assert!(
            path.is_file(),
            "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
            path.display()
        );
        let alone = load_tokenizer(&path).unwrap();
        let model = crate::Model::open(&path, crate::Options::default().threads(1)).unwrap();
        let full = model.tokenizer();
        assert_eq!(alone.vocab_size(), full.vocab_size());
        assert_eq!(alone.config(), full.config());
        let text = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/corpus/lines.jsonl"
        );
        let text = std::fs::read_to_string(text).unwrap();
        let mut n = 0;
        for line in text
            .lines()
            .chain(["<start_of_turn>user  x\u{3000}y 日本語 🙂"])
        {
            assert_eq!(alone.encode(line), full.encode(line), "{line}");
            n += 1;
        }
        assert!(n > 10);
        for id in 0..alone.vocab_size() as u32 {
            assert_eq!(alone.id_to_piece(id), full.id_to_piece(id), "id {id}");
        }
    }
}
