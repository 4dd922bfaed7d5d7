//! Writing results: the output formats, and where output goes.
//!
//! `--output PATH` behaves like a shell's `>` where that is safe and better where it is not:
//!
//! * something that is not a regular file (`/dev/null`, a FIFO, a terminal) is opened and
//!   written in place, never replaced;
//! * a symbolic link is followed: its target is written, the link stays;
//! * a regular file (or a new name) is written under a temporary name in the same directory and
//!   renamed over the target only when everything succeeded, so a failed or interrupted run
//!   leaves the old file (or nothing) behind. The new file keeps the old one's mode and owner;
//!   if the owner cannot be kept (someone else's file) or the file is read-only, the run is
//!   refused before any work. A new file gets the usual `0666` less the umask.
//! * the file a run reads (the model, the input) is never the file it writes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cleanup::{self, Registration};

/// Output format of `gemma-embed embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON array holding `{"index": i, "embedding": [...]}` objects, in input order.
    Json,
    /// One `{"index": i, "embedding": [...]}` object per line, in input order.
    Jsonl,
    /// One row of comma-separated values per text, no header.
    Csv,
    /// A NumPy `.npy` file (format 1.0): little-endian float32, shape `(texts, dim)`.
    Npy,
}

impl Format {
    /// All formats.
    pub const ALL: [Format; 4] = [Format::Jsonl, Format::Json, Format::Csv, Format::Npy];

    /// The name `--format` takes, which is also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Npy => "npy",
        }
    }

    /// The format a file extension names (`csv`, `JSON`, ...), if any.
    pub fn from_extension(ext: &std::ffi::OsStr) -> Option<Format> {
        let ext = ext.to_str()?;
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(ext))
    }
}

/// What an existing regular file looked like before it is replaced.
#[derive(Debug, Clone)]
pub struct Existing {
    /// Its metadata (mode, owner, device and inode).
    meta: std::fs::Metadata,
}

/// Where an output path leads, once symbolic links are followed.
#[derive(Debug)]
pub enum Target {
    /// Standard output: no `--output`, `-`, or `/dev/stdout`.
    Stdout,
    /// Something that is not a regular file (a device, a FIFO): opened and written in place.
    Through(PathBuf),
    /// A regular file or a new name: written under a temporary name and renamed over it.
    File {
        /// The path to create or replace (symbolic links followed).
        path: PathBuf,
        /// The file there now, if any.
        existing: Option<Existing>,
    },
}

/// Paths that mean "this process's standard output".
const STDOUT_NAMES: [&str; 4] = ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

impl Target {
    /// Looks at what `path` (or standard output, for `None`) leads to, and refuses what cannot
    /// be written safely: a directory, a read-only file, a file we may not write.
    pub fn resolve(path: Option<&Path>) -> Result<Target> {
        let Some(path) = path else {
            return Ok(Target::Stdout);
        };
        if STDOUT_NAMES.iter().any(|n| path == Path::new(n)) {
            return Ok(Target::Stdout);
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => bail!(
                "the output {} is a directory; give the name of a file to write",
                path.display()
            ),
            Ok(meta) if !meta.is_file() => Ok(Target::Through(path.to_owned())),
            Ok(meta) => {
                let real = std::fs::canonicalize(path).with_context(|| {
                    format!("cannot resolve the output path {}", path.display())
                })?;
                check_writable(&real, &meta)?;
                Ok(Target::File {
                    path: real,
                    existing: Some(Existing { meta }),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let real = follow_dangling(path)?;
                let dir = parent_dir(&real);
                if !dir.is_dir() {
                    bail!(
                        "cannot write the output {}: there is no directory {}",
                        path.display(),
                        dir.display()
                    );
                }
                Ok(Target::File {
                    path: real,
                    existing: None,
                })
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot look at the output {}", path.display()))
            }
        }
    }

    /// Whether output goes to standard output.
    pub fn is_stdout(&self) -> bool {
        matches!(self, Target::Stdout)
    }

    /// Refuses to write over `input` (the model, the input file): `what` names it in the
    /// message. Only a regular file can be replaced, so only that case is checked.
    pub fn refuse_to_replace(&self, input: &Path, what: &str) -> Result<()> {
        let Target::File {
            path,
            existing: Some(existing),
        } = self
        else {
            return Ok(());
        };
        if let Ok(meta) = std::fs::metadata(input) {
            if same_file(&meta, &existing.meta) {
                bail!(
                    "the output {} is the {what} {}; refusing to overwrite it (choose another \
                     output name)",
                    path.display(),
                    input.display()
                );
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Follows a chain of symbolic links that ends at a name where nothing exists (yet).
fn follow_dangling(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)
                    .with_context(|| format!("cannot read the link {}", p.display()))?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    bail!(
        "the output {} is a chain of too many symbolic links",
        path.display()
    )
}

/// Refuses to replace a file that its mode marks read-only, or that this process could not
/// open for writing (what a shell's `>` would refuse too).
fn check_writable(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.permissions().readonly() {
        bail!(
            "the output {} is read-only; make it writable or choose another name",
            path.display()
        );
    }
    // Opening without truncating changes nothing, not even the modification time.
    OpenOptions::new()
        .write(true)
        .open(path)
        .map(drop)
        .with_context(|| format!("cannot write the output {}", path.display()))
}

/// Gives `file` (new, ours) the owner and mode of the file it is to replace; an error if the
/// owner cannot be kept (someone else's file, and we are not allowed to give files away).
fn adopt(file: &File, target: &Path, existing: &Existing) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let old = &existing.meta;
        let new = file
            .metadata()
            .with_context(|| format!("cannot write the output {}", target.display()))?;
        let uid = (new.uid() != old.uid()).then_some(old.uid());
        let gid = (new.gid() != old.gid()).then_some(old.gid());
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::fchown(file, uid, gid).map_err(|e| {
                anyhow::anyhow!(
                    "the output {} belongs to user {} and group {}: replacing it would leave a \
                     file owned by {} and group {} ({e}); remove it first or choose another name",
                    target.display(),
                    old.uid(),
                    old.gid(),
                    new.uid(),
                    new.gid()
                )
            })?;
        }
        // After the owner: chown clears set-user-ID bits.
        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
            .with_context(|| {
                format!(
                    "cannot keep the permissions of the output {}",
                    target.display()
                )
            })?;
    }
    #[cfg(not(unix))]
    {
        let _ = (file, target, existing);
    }
    Ok(())
}

/// A temporary file beside `path` with the mode a new file gets (`0666` less the umask).
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".gemma-embed-").suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {} for the output", dir.display()))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Opens a target that is not a regular file for writing (a FIFO waits for its reader here).
fn open_through(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the output {}", path.display()))
}

/// Where output goes while it is written; [`Destination::commit`] finishes it.
pub enum Destination {
    /// Standard output.
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A file that is not a regular file, written in place.
    Through(BufWriter<File>, PathBuf),
    /// A temporary file beside the target, renamed over it by [`Destination::commit`]
    /// (dropped without committing, it is deleted).
    File {
        /// The temporary file.
        temp: BufWriter<tempfile::NamedTempFile>,
        /// The final name.
        target: PathBuf,
        /// Removes the temporary file if the process is interrupted.
        _cleanup: Registration,
    },
}

impl Destination {
    /// Standard output.
    pub fn stdout() -> Destination {
        Destination::Stdout(BufWriter::new(std::io::stdout().lock()))
    }

    /// Starts writing to `target`.
    pub fn open(target: &Target) -> Result<Destination> {
        match target {
            Target::Stdout => Ok(Destination::stdout()),
            Target::Through(path) => Ok(Destination::Through(
                BufWriter::new(open_through(path)?),
                path.clone(),
            )),
            Target::File { path, existing } => {
                let temp = temp_beside(path)?;
                let cleanup = cleanup::register(temp.path());
                if let Some(existing) = existing {
                    adopt(temp.as_file(), path, existing)?;
                }
                Ok(Destination::File {
                    temp: BufWriter::new(temp),
                    target: path.clone(),
                    _cleanup: cleanup,
                })
            }
        }
    }

    /// Gives up after an error: a temporary file is deleted (the target stays as it was);
    /// standard output or a file written in place keeps what was written.
    pub fn abandon(self) {
        match self {
            Destination::Stdout(mut w) => {
                let _ = w.flush();
            }
            Destination::Through(mut w, _) => {
                let _ = w.flush();
            }
            Destination::File { .. } => {}
        }
    }

    /// Flushes, and for a regular file renames the temporary file to the target name.
    pub fn commit(self) -> Result<()> {
        match self {
            Destination::Stdout(mut w) => w.flush().context("cannot write to standard output"),
            Destination::Through(mut w, path) => w
                .flush()
                .with_context(|| format!("cannot write {}", path.display())),
            Destination::File {
                temp,
                target,
                _cleanup,
            } => {
                let temp = temp
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", target.display()))?;
                temp.as_file()
                    .sync_all()
                    .with_context(|| format!("cannot write {}", target.display()))?;
                temp.persist(&target)
                    .with_context(|| format!("cannot create {}", target.display()))?;
                sync_dir(&target);
                Ok(())
            }
        }
    }
}

/// Makes a rename into `path`'s directory durable (best effort).
fn sync_dir(path: &Path) {
    if let Ok(dir) = File::open(parent_dir(path)) {
        let _ = dir.sync_all();
    }
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Destination::Stdout(w) => w.write(buf),
            Destination::Through(w, _) => w.write(buf),
            Destination::File { temp, .. } => temp.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Destination::Stdout(w) => w.write_all(buf),
            Destination::Through(w, _) => w.write_all(buf),
            Destination::File { temp, .. } => temp.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Destination::Stdout(w) => w.flush(),
            Destination::Through(w, _) => w.flush(),
            Destination::File { temp, .. } => temp.flush(),
        }
    }
}

/// A directory where a file that is written by someone else (the converter) is made, and from
/// which [`Staging::place`] moves it to its target like [`Destination`] would.
pub struct Staging {
    dir: tempfile::TempDir,
    _cleanup: Registration,
}

impl Staging {
    /// A new directory beside `target` (for a regular file: the rename stays on one file
    /// system), or in the system's temporary directory (for anything else). For a file to be
    /// replaced, checks now that its owner and mode can be kept.
    pub fn new(target: &Target) -> Result<Staging> {
        let dir = match target {
            Target::File { path, .. } => parent_dir(path).to_owned(),
            Target::Stdout | Target::Through(_) => std::env::temp_dir(),
        };
        let staging = tempfile::Builder::new()
            .prefix(".gemma-embed-")
            .suffix(".partial")
            .tempdir_in(&dir)
            .with_context(|| {
                format!(
                    "cannot create a directory in {} for the output",
                    dir.display()
                )
            })?;
        let cleanup = cleanup::register(staging.path());
        if let Target::File {
            path,
            existing: Some(existing),
        } = target
        {
            let probe = File::create(staging.path().join("probe")).with_context(|| {
                format!("cannot create a file in {} for the output", dir.display())
            })?;
            adopt(&probe, path, existing)?;
        }
        Ok(Staging {
            dir: staging,
            _cleanup: cleanup,
        })
    }

    /// The name under which the file is to be made.
    pub fn file(&self, name: &std::ffi::OsStr) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Moves the finished file `made` (inside this directory) to `target`: renamed over a
    /// regular file (keeping its owner and mode), copied into anything else.
    pub fn place(self, made: &Path, target: &Target) -> Result<()> {
        match target {
            Target::File { path, existing } => {
                if let Some(existing) = existing {
                    let file = File::open(made)
                        .with_context(|| format!("cannot open {}", made.display()))?;
                    adopt(&file, path, existing)?;
                }
                std::fs::rename(made, path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                sync_dir(path);
            }
            Target::Through(_) | Target::Stdout => {
                let mut from =
                    File::open(made).with_context(|| format!("cannot open {}", made.display()))?;
                let mut to = Destination::open(target)?;
                std::io::copy(&mut from, &mut to).context("cannot write the output")?;
                to.commit()?;
            }
        }
        Ok(())
    }
}

/// The header of a NumPy format 1.0 file holding a C-order little-endian float32 array of
/// shape `(rows, cols)`: magic, version, header length, the dict, padded with spaces and a
/// newline so that the data starts at a multiple of 64 bytes.
pub fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // The dict of a 2-D shape is < 100 bytes, far below the format's 65535 limit.
    out.extend_from_slice(&u16::try_from(header_len).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out
}

/// Writes embeddings one at a time in the chosen format.
pub struct EmbeddingWriter<W: Write> {
    format: Format,
    out: W,
    written: usize,
    csv_line: String,
}

impl<W: Write> EmbeddingWriter<W> {
    /// Starts the output: `rows` texts of `dim` values each are to follow. (A JSON array is
    /// opened with its first element, so that an error before it leaves no output at all.)
    pub fn begin(format: Format, mut out: W, rows: usize, dim: usize) -> Result<Self> {
        if format == Format::Npy {
            out.write_all(&npy_header(rows, dim))?;
        }
        Ok(EmbeddingWriter {
            format,
            out,
            written: 0,
            csv_line: String::new(),
        })
    }

    /// Passes what was written so far on (after a batch of a streamed input, so that a reader
    /// at the other end of a pipe sees each batch as it is done).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// Writes the embedding of the next text.
    pub fn write(&mut self, embedding: &[f32]) -> Result<()> {
        let index = self.written;
        match self.format {
            Format::Jsonl | Format::Json => {
                if self.format == Format::Json {
                    self.out
                        .write_all(if index == 0 { b"[\n" } else { b",\n" })?;
                }
                write!(self.out, "{{\"index\":{index},\"embedding\":")?;
                serde_json::to_writer(&mut self.out, embedding)?;
                self.out.write_all(b"}")?;
                if self.format == Format::Jsonl {
                    self.out.write_all(b"\n")?;
                }
            }
            Format::Csv => {
                use std::fmt::Write as _;
                self.csv_line.clear();
                for (i, x) in embedding.iter().enumerate() {
                    if i > 0 {
                        self.csv_line.push(',');
                    }
                    write!(self.csv_line, "{x}")?;
                }
                self.csv_line.push('\n');
                self.out.write_all(self.csv_line.as_bytes())?;
            }
            Format::Npy => {
                let mut buf = Vec::with_capacity(embedding.len() * 4);
                for x in embedding {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                self.out.write_all(&buf)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Ends the output and hands back the writer.
    pub fn finish(mut self) -> Result<W> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.written > 0 { b"\n]\n" } else { b"[]\n" })?;
        }
        Ok(self.out)
    }

    /// Ends the output early, after an error, so that what was written is still well-formed
    /// (a JSON array is closed if it was opened), and hands back the writer. The caller reports
    /// the error; the output holds the texts before it.
    pub fn abort(mut self) -> W {
        if self.format == Format::Json && self.written > 0 {
            // Best effort: the error being reported matters more than this one.
            let _ = self.out.write_all(b"\n]\n");
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a .npy header the way NumPy's `read_array_header_1_0` does (enough of it).
    fn parse_npy(bytes: &[u8]) -> (String, (usize, usize), &[u8]) {
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0, "data must be 64-byte aligned");
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.ends_with('\n'));
        assert!(header.contains("'fortran_order': False"));
        let descr = header
            .split("'descr': '")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        let shape = header
            .split("'shape': (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let dims: Vec<usize> = shape
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        (descr.to_owned(), (dims[0], dims[1]), &bytes[10 + len..])
    }

    #[test]
    fn npy_round_trip() {
        let rows = [vec![1.0f32, -2.5, 3.25], vec![0.0, f32::MIN_POSITIVE, 1e10]];
        let mut w = EmbeddingWriter::begin(Format::Npy, Vec::new(), 2, 3).unwrap();
        for r in &rows {
            w.write(r).unwrap();
        }
        let bytes = w.finish().unwrap();
        let (descr, shape, data) = parse_npy(&bytes);
        assert_eq!(descr, "<f4");
        assert_eq!(shape, (2, 3));
        assert_eq!(data.len(), 2 * 3 * 4);
        let back: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, rows.concat());
    }

    #[test]
    fn json_is_closed_after_an_error() {
        let mut w = EmbeddingWriter::begin(Format::Json, Vec::new(), 3, 2).unwrap();
        w.write(&[1.0, 2.0]).unwrap();
        let text = String::from_utf8(w.abort()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        // An error before the first text leaves nothing at all.
        let w = EmbeddingWriter::begin(Format::Json, Vec::new(), 3, 2).unwrap();
        assert!(w.abort().is_empty());
    }

    #[test]
    fn npy_header_sizes() {
        for (r, c) in [(0, 768), (1, 1), (123_456_789, 128)] {
            let h = npy_header(r, c);
            assert_eq!(h.len() % 64, 0);
            let (_, shape, data) = parse_npy(&h);
            assert_eq!(shape, (r, c));
            assert!(data.is_empty());
        }
    }

    #[test]
    fn jsonl_json_csv() {
        let rows = [vec![0.5f32, -1.0], vec![0.1, 2.0]];
        let render = |f| {
            let mut w = EmbeddingWriter::begin(f, Vec::new(), 2, 2).unwrap();
            for r in &rows {
                w.write(r).unwrap();
            }
            String::from_utf8(w.finish().unwrap()).unwrap()
        };
        assert_eq!(
            render(Format::Jsonl),
            "{\"index\":0,\"embedding\":[0.5,-1.0]}\n{\"index\":1,\"embedding\":[0.1,2.0]}\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(json[1]["embedding"][0].as_f64().unwrap() as f32, 0.1);
        assert_eq!(json.as_array().unwrap().len(), 2);
        assert_eq!(render(Format::Csv), "0.5,-1\n0.1,2\n");
        let empty = EmbeddingWriter::begin(Format::Json, Vec::new(), 0, 2).unwrap();
        let text = String::from_utf8(empty.finish().unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<u8>>(&text).unwrap(),
            Vec::<u8>::new()
        );
    }
}
