//! A file cache of packed weight matrices: a process that opens a model it has opened before
//! maps the packed matrices from the cache instead of packing them again.
//!
//! Packing the ~108 MB of EmbeddingGemma's layer matrices costs tens of milliseconds of fresh,
//! zeroed memory and copying per process; a mapped cache file is shared through the page cache
//! and costs nothing until it is read. The cache is an optimisation only: a missing,
//! unreadable, stale or damaged file is ignored (and rewritten), and a failed write leaves no
//! file behind.
//!
//! # Format (little-endian)
//!
//! A header padded to a multiple of 4096 bytes: the magic `ggufembed-pack\0\0`, the format version (u32), the kernels'
//! backend name (u32 length + bytes), the model file's identity (length, modification time in
//! seconds and nanoseconds, a 64-bit FNV-1a fingerprint of its tensor table), the number of
//! matrices (u32) and per matrix `rows`, `k`, `offset`, `len` (u64 each). Each matrix's packed
//! bytes ([`PackedQ8_0::as_bytes`]) start at a multiple of 4096.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gguf::Gguf;
use memmap2::Mmap;
use q8_kernels::{Backend, PackedQ8_0};

/// The header's magic bytes.
const MAGIC: &[u8; 16] = b"ggufembed-pack\0\0";
/// The format version; any change to the header or to the packed layout bumps it.
const VERSION: u32 = 1;
/// The alignment of the header's end and of every matrix's bytes.
const PAGE: usize = 4096;
/// Bytes per matrix in the header's table.
const ENTRY: usize = 32;

/// What a cache file must match: the model file (by length, modification time and tensor
/// table) and the kernels' backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    backend: Backend,
    len: u64,
    mtime_secs: u64,
    mtime_nanos: u32,
    fingerprint: u64,
}

/// 64-bit FNV-1a.
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Identity {
    /// The identity of the model at `path` (parsed as `file`) for `backend`; `None` if the file's
    /// metadata cannot be read.
    pub(crate) fn of<B: AsRef<[u8]>>(
        path: &Path,
        file: &Gguf<B>,
        backend: Backend,
    ) -> Option<Identity> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let mut h = 0xcbf2_9ce4_8422_2325;
        for t in file.tensors() {
            h = fnv1a(h, t.name.as_bytes());
            h = fnv1a(h, &(t.ggml_type.id()).to_le_bytes());
            for d in &t.ne {
                h = fnv1a(h, &d.to_le_bytes());
            }
            h = fnv1a(h, &t.offset.to_le_bytes());
        }
        Some(Identity {
            backend,
            len: meta.len(),
            mtime_secs: mtime.as_secs(),
            mtime_nanos: mtime.subsec_nanos(),
            fingerprint: h,
        })
    }

    /// The cache file for this identity in `dir` (one per model file and backend).
    pub(crate) fn path_in(&self, dir: &Path, model: &Path) -> PathBuf {
        let canonical = std::fs::canonicalize(model).unwrap_or_else(|_| model.to_owned());
        let h = fnv1a(self.fingerprint, canonical.as_os_str().as_encoded_bytes());
        let stem = model
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model");
        dir.join(format!("{stem}-{}-{h:016x}.pack", self.backend.name()))
    }

    /// The header fields before the matrix table.
    fn header_prefix(&self, n: usize) -> Vec<u8> {
        let mut h = Vec::with_capacity(PAGE);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        let name = self.backend.name().as_bytes();
        h.extend_from_slice(&(name.len() as u32).to_le_bytes());
        h.extend_from_slice(name);
        h.extend_from_slice(&self.len.to_le_bytes());
        h.extend_from_slice(&self.mtime_secs.to_le_bytes());
        h.extend_from_slice(&self.mtime_nanos.to_le_bytes());
        h.extend_from_slice(&self.fingerprint.to_le_bytes());
        h.extend_from_slice(&(n as u32).to_le_bytes());
        h
    }
}

/// The byte offsets of matrices of `lens` bytes after a header of `header` bytes, each a
/// multiple of [`PAGE`]; `None` on overflow.
fn layout(header: usize, lens: &[usize]) -> Option<Vec<usize>> {
    let mut at = header.checked_next_multiple_of(PAGE)?;
    lens.iter()
        .map(|&len| {
            let here = at;
            at = at.checked_add(len)?.checked_next_multiple_of(PAGE)?;
            Some(here)
        })
        .collect()
}

/// The header of `matrices` (`(rows, k)` with their byte lengths) for `id`, unpadded, and the
/// offsets of their bytes.
fn header(id: &Identity, matrices: &[(usize, usize, usize)]) -> Option<(Vec<u8>, Vec<usize>)> {
    let mut h = id.header_prefix(matrices.len());
    let lens: Vec<usize> = matrices.iter().map(|m| m.2).collect();
    let offsets = layout(h.len() + ENTRY * matrices.len(), &lens)?;
    for (&(rows, k, len), &off) in matrices.iter().zip(&offsets) {
        for v in [rows, k, off, len] {
            h.extend_from_slice(&(v as u64).to_le_bytes());
        }
    }
    Some((h, offsets))
}

/// The map of a cache file, shared by the matrices read from it.
struct SharedMap(Mmap);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads the packed matrices of shapes `shapes` (`(rows, k)`, in order) from the cache file at
/// `path` if it exists and matches `id` and the shapes exactly; `None` otherwise.
pub(crate) fn read(
    path: &Path,
    id: &Identity,
    shapes: &[(usize, usize)],
) -> Option<Vec<PackedQ8_0>> {
    let file = File::open(path).ok()?;
    // SAFETY: the cache file is only ever created complete, under a temporary name, and renamed
    // into place; it is never written in place. Like the model file itself, it must not be
    // truncated or rewritten by another program while mapped.
    let map = unsafe { Mmap::map(&file) }.ok()?;
    let matrices: Vec<(usize, usize, usize)> = shapes
        .iter()
        .map(|&(rows, k)| Some((rows, k, PackedQ8_0::byte_len(rows, k)?)))
        .collect::<Option<_>>()?;
    let (expected, offsets) = header(id, &matrices)?;
    let lens: Vec<usize> = matrices.iter().map(|m| m.2).collect();
    let end = match (offsets.last(), lens.last()) {
        (Some(&o), Some(&l)) => o.checked_add(l)?,
        _ => PAGE,
    };
    if map.len() < end || map.get(..expected.len())? != &expected[..] {
        return None;
    }
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(SharedMap(map));
    shapes
        .iter()
        .zip(offsets.iter().zip(&lens))
        .map(|(&(rows, k), (&off, &len))| {
            PackedQ8_0::from_shared(id.backend, rows, k, owner.clone(), off..off + len).ok()
        })
        .collect()
}

/// Writes `matrices` as the cache file `path` for `id`: to a temporary file in the same
/// directory, renamed into place when complete. Errors leave no file behind.
pub(crate) fn write(path: &Path, id: &Identity, matrices: &[&PackedQ8_0]) -> std::io::Result<()> {
    let entries: Vec<(usize, usize, usize)> = matrices
        .iter()
        .map(|m| (m.rows(), m.k(), m.as_bytes().len()))
        .collect();
    let (mut header, offsets) =
        header(id, &entries).ok_or_else(|| std::io::Error::other("cache file too large"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A name no other writer uses, in this process or another: two models opened at once
    // must not write into the same temporary file.
    static WRITERS: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        WRITERS.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut f = std::io::BufWriter::with_capacity(1 << 20, file);
        let data_start = offsets.first().copied().unwrap_or(PAGE);
        header.resize(data_start, 0);
        f.write_all(&header)?;
        let mut at = data_start;
        for (m, &off) in matrices.iter().zip(&offsets) {
            f.write_all(&vec![0u8; off - at])?;
            f.write_all(m.as_bytes())?;
            at = off + m.as_bytes().len();
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
