//! The cache of packed weight matrices: a second open maps the cached file and gives the same
//! embeddings bit for bit; a damaged or stale cache file is ignored and rewritten. Uses the real
//! Q8_0 model (`cargo xtask fetch-model`).

mod common;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::model_path;
use gemma_runtime::{open, Precision, RuntimeOptions};

/// Texts of 2, 9 and 40 tokens (short ones take the two-part int8 path, the long one the mixed).
fn inputs() -> Vec<Vec<u32>> {
    vec![
        vec![2, 1],
        vec![2, 9259, 1902, 563, 496, 1894, 236761, 108, 1],
        (0..40u32).map(|i| 2 + i * 997 % 100_000).collect(),
    ]
}

/// The embeddings of [`inputs`] as bits, with `cache` as the pack cache directory.
fn embed(cache: Option<&Path>, precision: Precision) -> Vec<Vec<u32>> {
    let model = open(
        &model_path("q8_0"),
        &RuntimeOptions {
            precision,
            pack_cache_dir: cache.map(Path::to_owned),
            ..Default::default()
        },
    )
    .expect("opens");
    inputs()
        .iter()
        .map(|ids| {
            model
                .embed_ids(ids)
                .expect("embeds")
                .iter()
                .map(|x| x.to_bits())
                .collect()
        })
        .collect()
}

/// The one cache file in `dir`.
fn cache_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("cache dir exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one cache file, no temporary left: {files:?}"
    );
    files[0].clone()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

#[test]
fn cached_packed_weights_give_identical_embeddings() {
    let dir = std::env::temp_dir().join(format!("ggufembed-pack-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let packs = q8_kernels::kernels().is_ok_and(|k| k.supports_packed_q8_0());
    if !packs {
        // Nothing is packed on this CPU, so nothing is cached.
        assert_eq!(
            embed(Some(&dir), Precision::Mixed),
            embed(None, Precision::Mixed)
        );
        assert!(!dir.exists());
        return;
    }
    for precision in [Precision::Mixed, Precision::Int8] {
        let reference = embed(None, precision);
        // First open packs and writes the cache; the second reads it.
        assert_eq!(
            embed(Some(&dir), precision),
            reference,
            "{precision:?}, writing"
        );
        let file = cache_file(&dir);
        let written = modified(&file);
        assert_eq!(
            embed(Some(&dir), precision),
            reference,
            "{precision:?}, reading"
        );
        assert_eq!(
            modified(&file),
            written,
            "a valid cache file is read, not rewritten"
        );

        // A damaged header: ignored, the model packs again and rewrites the file.
        let mut bytes = std::fs::read(&file).expect("reads");
        let len = bytes.len();
        bytes[20] ^= 0xff;
        std::fs::write(&file, &bytes).expect("writes");
        assert_eq!(
            embed(Some(&dir), precision),
            reference,
            "{precision:?}, damaged"
        );
        assert_eq!(std::fs::read(&file).expect("reads")[20], bytes[20] ^ 0xff);

        // A truncated file: the same.
        std::fs::write(&file, &bytes[..len / 2]).expect("writes");
        assert_eq!(
            embed(Some(&dir), precision),
            reference,
            "{precision:?}, truncated"
        );
        assert_eq!(
            std::fs::metadata(&file).expect("metadata").len(),
            len as u64
        );
        std::fs::remove_file(&file).expect("removes");
    }
    // F32 activations never pack, so they write no cache.
    embed(Some(&dir), Precision::F32);
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Models opened at the same time with an empty cache all write it, each through its own
/// temporary file: the file left behind is whole and gives the same embeddings.
#[test]
fn concurrent_writers_leave_one_whole_cache_file() {
    let dir = std::env::temp_dir().join(format!("ggufembed-pack-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if !q8_kernels::kernels().is_ok_and(|k| k.supports_packed_q8_0()) {
        return; // nothing is packed, so nothing is cached (see the test above)
    }
    let reference = embed(None, Precision::Mixed);
    let results: Vec<Vec<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| embed(Some(&dir), Precision::Mixed)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for r in results {
        assert_eq!(r, reference);
    }
    cache_file(&dir);
    assert_eq!(
        embed(Some(&dir), Precision::Mixed),
        reference,
        "reading the cache"
    );
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Opens `model` with `cache` as the pack cache directory (packing and writing the cache file if
/// it has none).
fn open_cached(model: &Path, cache: &Path) {
    open(
        model,
        &RuntimeOptions {
            precision: Precision::Mixed,
            pack_cache_dir: Some(cache.to_owned()),
            ..Default::default()
        },
    )
    .expect("opens");
}

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writing a cache file removes the cache files that can never be read again — of an older
/// format, or of a model file that is gone — and leaves everything else alone.
#[test]
fn writing_a_cache_file_removes_stale_ones() {
    let root = std::env::temp_dir().join(format!("ggufembed-pack-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (cache, models) = (root.join("cache"), root.join("models"));
    std::fs::create_dir_all(&cache).expect("creates");
    std::fs::create_dir_all(&models).expect("creates");
    if !q8_kernels::kernels().is_ok_and(|k| k.supports_packed_q8_0()) {
        return; // nothing is packed, so nothing is cached (see the first test)
    }
    // A cache file of an older format version, and a file that is no cache file at all.
    let mut old = b"ggufembed-pack\0\0".to_vec();
    old.extend_from_slice(&1u32.to_le_bytes());
    old.resize(4096, 0);
    std::fs::write(cache.join("old-avx512vnni-0000000000000000.pack"), &old).expect("writes");
    std::fs::write(cache.join("notes.pack"), "not a cache file").expect("writes");

    // The model under a second name (a hard link, or a copy across file systems), cached, then
    // deleted.
    let original = model_path("q8_0");
    let second = models.join("second-name.gguf");
    if std::fs::hard_link(&original, &second).is_err() {
        std::fs::copy(&original, &second).expect("copies the model");
    }
    open_cached(&second, &cache);
    let second_cache = cache_files(&cache, "second-name-");
    assert_eq!(second_cache.len(), 1, "{:?}", names(&cache));
    std::fs::remove_file(&second).expect("removes");

    // Caching the model under its own name writes a new file and removes both stale ones.
    open_cached(&original, &cache);
    let stem = original
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    let fresh = cache_files(&cache, &format!("{stem}-"));
    assert_eq!(fresh.len(), 1, "{:?}", names(&cache));
    let mut want = vec!["notes.pack".to_owned(), fresh[0].clone()];
    want.sort();
    assert_eq!(names(&cache), want);
    std::fs::remove_dir_all(&root).expect("cleans up");
}

/// The names in `dir` that start with `prefix` and end in `.pack`.
fn cache_files(dir: &Path, prefix: &str) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix) && n.ends_with(".pack"))
        .collect()
}
