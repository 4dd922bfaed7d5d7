//! Writing results: the output formats, and an output file that appears only on success.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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

/// Where output goes: standard output, or a temporary file next to the target that is renamed
/// over it by [`Destination::commit`] (dropping it without committing deletes the temporary file,
/// so a failed run leaves no partial output).
pub enum Destination {
    /// Standard output.
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A temporary file in the target's directory.
    File {
        /// The temporary file.
        temp: BufWriter<tempfile::NamedTempFile>,
        /// The final name.
        target: PathBuf,
    },
}

impl Destination {
    /// Standard output if `path` is `None` or `-`, else a temporary file beside `path`.
    pub fn open(path: Option<&Path>) -> Result<Destination> {
        match path {
            None => Ok(Destination::Stdout(BufWriter::new(
                std::io::stdout().lock(),
            ))),
            Some(p) if p == Path::new("-") => Ok(Destination::Stdout(BufWriter::new(
                std::io::stdout().lock(),
            ))),
            Some(target) => {
                let dir = match target.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                let temp = tempfile::Builder::new()
                    .prefix(".gemma-embed-")
                    .suffix(".partial")
                    .tempfile_in(dir)
                    .with_context(|| {
                        format!("cannot create a file in {} for the output", dir.display())
                    })?;
                make_readable(temp.as_file());
                Ok(Destination::File {
                    temp: BufWriter::new(temp),
                    target: target.to_owned(),
                })
            }
        }
    }

    /// Flushes, and for a file renames the temporary file to the target name.
    pub fn commit(self) -> Result<()> {
        match self {
            Destination::Stdout(mut w) => w.flush().context("cannot write to standard output"),
            Destination::File { temp, target } => {
                let temp = temp
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", target.display()))?;
                temp.as_file()
                    .sync_all()
                    .with_context(|| format!("cannot write {}", target.display()))?;
                temp.persist(&target)
                    .with_context(|| format!("cannot create {}", target.display()))?;
                Ok(())
            }
        }
    }
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Destination::Stdout(w) => w.write(buf),
            Destination::File { temp, .. } => temp.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Destination::Stdout(w) => w.write_all(buf),
            Destination::File { temp, .. } => temp.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Destination::Stdout(w) => w.flush(),
            Destination::File { temp, .. } => temp.flush(),
        }
    }
}

/// Temporary files are created readable by their owner only; the output should get the usual
/// permissions of a new file.
pub fn make_readable(file: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Best effort: a file system without Unix permissions keeps its own.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = file;
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
    /// Starts the output: `rows` texts of `dim` values each are to follow.
    pub fn begin(format: Format, mut out: W, rows: usize, dim: usize) -> Result<Self> {
        match format {
            Format::Json => out.write_all(b"[")?,
            Format::Npy => out.write_all(&npy_header(rows, dim))?,
            Format::Jsonl | Format::Csv => {}
        }
        Ok(EmbeddingWriter {
            format,
            out,
            written: 0,
            csv_line: String::new(),
        })
    }

    /// Writes the embedding of the next text.
    pub fn write(&mut self, embedding: &[f32]) -> Result<()> {
        let index = self.written;
        match self.format {
            Format::Jsonl | Format::Json => {
                if self.format == Format::Json && index > 0 {
                    self.out.write_all(b",")?;
                }
                if self.format == Format::Json {
                    self.out.write_all(b"\n")?;
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
                .write_all(if self.written > 0 { b"\n]\n" } else { b"]\n" })?;
        }
        Ok(self.out)
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
