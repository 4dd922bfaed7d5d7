//! A file cache of packed weight matrices: a process that opens a model it has opened before
//! maps the packed matrices from the cache instead of packing them again.
//!
//! Packing the ~108 MB of EmbeddingGemma's layer matrices costs tens of milliseconds of fresh,
//! zeroed memory and copying per process; a mapped cache file is shared through the page cache
//! and costs nothing until it is read. The cache is an optimisation only: a missing,
//! unreadable, stale or damaged file is ignored (and rewritten), and a failed write leaves no
//! file behind. Writing a cache file also removes the files that can never be read again (see
//! [`remove_stale`]), so a model that was updated, moved or deleted does not leave its packed
//! copy behind.
//!
//! # Format (little-endian)
//!
//! A header padded to a multiple of 4096 bytes: the magic `ggufembed-pack\0\0`, the format version (u32), the kernels'
//! backend name (u32 length + bytes), the model file's identity (length, modification time in
//! seconds and nanoseconds, a 64-bit FNV-1a fingerprint of its tensor table, its canonical path
//! as u32 length + bytes), the number of matrices (u32) and per matrix `rows`, `k`, `offset`, `len` (u64 each). Each matrix's packed
//! bytes ([`PackedQ8_0::as_bytes`]) start at a multiple of 4096.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gguf::Gguf;
use memmap2::Mmap;
use q8_kernels::{Backend, PackedQ8_0};

/// The header's magic bytes.
const MAGIC: &[u8; 16] = b"ggufembed-pack\0\0";
/// The format version; any change to the header or to the packed layout bumps it.
const VERSION: u32 = 2;
/// The alignment of the header's end and of every matrix's bytes.
const PAGE: usize = 4096;
/// Bytes per matrix in the header's table.
const ENTRY: usize = 32;

/// What a cache file must match: the model file (by path, length, modification time and tensor
/// table) and the kernels' backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    backend: Backend,
    len: u64,
    mtime_secs: u64,
    mtime_nanos: u32,
    fingerprint: u64,
    /// The model file's canonical path (as given if it cannot be made canonical).
    model: PathBuf,
}

/// The modification time of a file as (seconds, nanoseconds) since the Unix epoch.
fn mtime(meta: &std::fs::Metadata) -> Option<(u64, u32)> {
    let t = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((t.as_secs(), t.subsec_nanos()))
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
        let (mtime_secs, mtime_nanos) = mtime(&meta)?;
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
            mtime_secs,
            mtime_nanos,
            fingerprint: h,
            model: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        })
    }

    /// The cache file for this identity in `dir` (one per model file and backend).
    pub(crate) fn path_in(&self, dir: &Path) -> PathBuf {
        let h = fnv1a(self.fingerprint, self.model.as_os_str().as_encoded_bytes());
        let stem = self
            .model
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
        let model = self.model.as_os_str().as_encoded_bytes();
        h.extend_from_slice(&(model.len() as u32).to_le_bytes());
        h.extend_from_slice(model);
        h.extend_from_slice(&(n as u32).to_le_bytes());
        h
    }

    /// Whether the header `bytes` (the start of a cache file) still describes a model file as it
    /// is now, by this format: the version matches and the model file exists with the recorded
    /// length and modification time. `None` if `bytes` are not a cache file's header at all.
    fn header_is_current(bytes: &[u8]) -> Option<bool> {
        let mut r = HeaderReader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        if r.u32()? != VERSION {
            return Some(false);
        }
        let backend = r.u32()? as usize;
        r.take(backend)?;
        let (len, secs, nanos) = (r.u64()?, r.u64()?, r.u32()?);
        r.u64()?; // the fingerprint: reading the model's tensor table is not worth it here
        let path_len = r.u32()? as usize;
        let path = r.take(path_len)?;
        let path = os_path(path)?;
        let current = std::fs::metadata(&path)
            .ok()
            .and_then(|meta| Some(meta.len() == len && mtime(&meta)? == (secs, nanos)));
        Some(current.unwrap_or(false))
    }
}

/// The path whose encoded bytes are `bytes` (as written by [`Identity::header_prefix`]); `None`
/// where this platform cannot rebuild it safely.
fn os_path(bytes: &[u8]) -> Option<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).ok().map(PathBuf::from)
    }
}

/// Little-endian fields read in order from a byte slice.
struct HeaderReader<'a>(&'a [u8]);

impl<'a> HeaderReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Removes the cache files in `dir` other than `keep` that can never be read again: of another
/// format version, or for a model file that is gone or has changed (by length and modification
/// time). Files that are not cache files (by extension and magic) are left alone, and so is
/// anything that cannot be read; errors are ignored. A process that has a removed file mapped
/// keeps its mapping.
fn remove_stale(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        if path == keep || path.extension().is_none_or(|e| e != "pack") {
            continue;
        }
        let mut head = Vec::with_capacity(PAGE);
        let read = File::open(&path).and_then(|f| f.take(PAGE as u64).read_to_end(&mut head));
        if read.is_ok() && Identity::header_is_current(&head) == Some(false) {
            let _ = std::fs::remove_file(&path);
        }
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
/// directory, renamed into place when complete; then removes the directory's stale cache files
/// ([`remove_stale`]). Errors leave no file behind.
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
    match &result {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                remove_stale(dir, path);
            }
        }
        Err(_) => {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    result
}
