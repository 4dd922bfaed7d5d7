#![cfg(unix)]
//! A model file that changes after it was opened. The model maps its file: a file *replaced*
//! (a new file renamed over the path, as downloads and `gemma-embed convert` do) leaves the
//! loaded model reading the old file, bit for bit; a file *rewritten or truncated in place*
//! while mapped is the documented risk of every memory-mapped loader (see `gguf::Gguf::open`
//! and DEVELOPERS.md) and is not tested here, because it can end the process (SIGBUS).

use ggufembed::{Model, Options};

#[test]
fn a_model_file_replaced_after_open_does_not_change_the_loaded_model() {
    let real = ggufembed::default_model_path();
    assert!(
        real.is_file(),
        "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
        real.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::copy(&real, &path).unwrap();
    let options = || Options::default().threads(2).pack_cache(None);
    let model = Model::open(&path, options()).unwrap();
    let before = model.embed(&["a text", "another text"]).unwrap();

    // Replace the file by a rename, the way every writer of this project replaces files.
    let junk = dir.path().join("new.gguf");
    std::fs::write(&junk, vec![0xAB; 4096]).unwrap();
    std::fs::rename(&junk, &path).unwrap();

    let after = model.embed(&["a text", "another text"]).unwrap();
    assert_eq!(before, after);
    // The path names the new file now: opening it again reads that one.
    assert!(Model::open(&path, options()).is_err());
}
