//! Reading the texts to process: command-line arguments, a file, or standard input.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// How an input file is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One text per line (UTF-8; a trailing `\r` is removed; empty lines are empty texts).
    #[default]
    Lines,
    /// One JSON string per line (or an object with a `"text"` string field).
    Jsonl,
}

/// Where the texts came from, for error messages that point at the right place.
#[derive(Debug, Clone)]
pub enum Source {
    /// Positional arguments.
    Args,
    /// A file or `-` (standard input).
    File(PathBuf),
}

impl Source {
    /// "line 3 of notes.txt", "argument 2".
    pub fn locate(&self, index: usize) -> String {
        match self {
            Source::Args => format!("argument {}", index + 1),
            Source::File(p) if p == Path::new("-") => {
                format!("line {} of standard input", index + 1)
            }
            Source::File(p) => format!("line {} of {}", index + 1, p.display()),
        }
    }
}

/// The longest line read as one text (16 MiB). The model reads at most its context (2,048
/// tokens, a few kilobytes of text) of a line, so a longer line is almost surely not text (e.g.
/// `--input /dev/zero`); it is refused after reading this much of it instead of being buffered
/// whole.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Where the lines come from.
enum Lines {
    /// Texts already in memory (positional arguments, or input read ahead).
    Memory(std::vec::IntoIter<String>),
    /// A file or standard input, read one line at a time.
    Stream(Box<dyn BufRead>),
}

/// Reads texts a batch at a time: the input is streamed, so memory stays bounded by the batch
/// (and [`MAX_LINE_BYTES`] per line) however long the input is. Each line is checked (UTF-8,
/// JSON) as it is read; an error names its line.
pub struct TextReader {
    lines: Lines,
    format: InputFormat,
    source: Source,
    /// Index of the next text.
    next: usize,
    /// Bytes of the current line (reused).
    buf: Vec<u8>,
}

impl TextReader {
    /// Reads the positional `texts` if any, else `input` (`-` or absent: standard input).
    pub fn open(texts: Vec<String>, input: Option<PathBuf>, format: InputFormat) -> Result<Self> {
        if !texts.is_empty() {
            return Ok(TextReader::from_texts(texts, Source::Args));
        }
        let path = input.unwrap_or_else(|| PathBuf::from("-"));
        let reader: Box<dyn BufRead> = if path == Path::new("-") {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "gemma-embed: reading texts from standard input, one per line (end with Ctrl-D)"
                );
            }
            Box::new(stdin.lock())
        } else {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot read input file {}", path.display()))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        Ok(TextReader {
            lines: Lines::Stream(reader),
            format,
            source: Source::File(path),
            next: 0,
            buf: Vec::new(),
        })
    }

    /// A reader of texts already in memory, located as `source`.
    pub fn from_texts(texts: Vec<String>, source: Source) -> Self {
        TextReader {
            lines: Lines::Memory(texts.into_iter()),
            format: InputFormat::Lines,
            source,
            next: 0,
            buf: Vec::new(),
        }
    }

    /// Where the texts come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The next text, or `None` at the end of the input.
    pub fn next_text(&mut self) -> Result<Option<String>> {
        let index = self.next;
        let reader = match &mut self.lines {
            Lines::Memory(texts) => {
                let text = texts.next();
                self.next += usize::from(text.is_some());
                return Ok(text);
            }
            Lines::Stream(reader) => reader,
        };
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = Read::take(&mut **reader, limit)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("cannot read {}", self.source.locate(index)))?;
        if n == 0 {
            return Ok(None);
        }
        let mut line = self.buf.as_slice();
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        } else if self.buf.len() > MAX_LINE_BYTES {
            bail!(
                "{} is longer than {} MiB, the longest line read as one text (the model reads at \
                 most its context of it); is the input a text file?",
                self.source.locate(index),
                MAX_LINE_BYTES >> 20
            );
        }
        // A UTF-8 byte-order mark (editors on Windows write one) is not part of the first text.
        if index == 0 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        let text = parse_line(line, index, self.format, &self.source)?;
        self.next += 1;
        Ok(Some(text))
    }

    /// Up to `n` next texts (fewer only at the end of the input; none after it).
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<String>> {
        let mut batch = Vec::with_capacity(n.min(1024));
        while batch.len() < n {
            match self.next_text()? {
                Some(text) => batch.push(text),
                None => break,
            }
        }
        Ok(batch)
    }

    /// All the remaining texts.
    pub fn read_all(&mut self) -> Result<Vec<String>> {
        self.next_batch(usize::MAX)
    }
}

/// Collects all the texts: the positional `texts` if any, else `input` (`-` or absent: stdin).
pub fn read_texts(
    texts: Vec<String>,
    input: Option<PathBuf>,
    format: InputFormat,
) -> Result<(Vec<String>, Source)> {
    let mut reader = TextReader::open(texts, input, format)?;
    let texts = reader.read_all()?;
    Ok((texts, reader.source))
}

/// Splits `bytes` into texts according to `format`.
#[cfg(test)]
fn parse_texts(bytes: &[u8], format: InputFormat, source: &Source) -> Result<Vec<String>> {
    let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = TextReader {
        lines: Lines::Stream(reader),
        format,
        source: source.clone(),
        next: 0,
        buf: Vec::new(),
    };
    reader.read_all()
}

/// The text of line `index` (without its line end) in `format`.
fn parse_line(line: &[u8], index: usize, format: InputFormat, source: &Source) -> Result<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = match std::str::from_utf8(line) {
        Ok(s) => s,
        Err(e) => bail!(
            "{} is not valid UTF-8 (bad byte at column {}); the input must be UTF-8 text",
            source.locate(index),
            e.valid_up_to() + 1
        ),
    };
    match format {
        InputFormat::Lines => Ok(line.to_owned()),
        InputFormat::Jsonl => parse_json_text(line).with_context(|| {
            format!(
                "{}: expected a JSON string (or an object with a \"text\" string)",
                source.locate(index)
            )
        }),
    }
}

fn parse_json_text(line: &str) -> Result<String> {
    if line.trim().is_empty() {
        bail!("the line is empty");
    }
    let value = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => v,
        Err(e) => match lone_surrogate(line) {
            // serde_json's words for this ("unexpected end of hex escape") point nowhere useful.
            Some((column, escape)) => bail!(
                "{escape} at column {column} is half of a UTF-16 surrogate pair, without its \
                 other half: it encodes no character (write the character itself in UTF-8, or \
                 both halves, as in \\ud83d\\ude00)"
            ),
            None => return Err(e.into()),
        },
    };
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Object(mut map) => match map.remove("text") {
            Some(serde_json::Value::String(s)) => Ok(s),
            _ => bail!("the object has no \"text\" string field"),
        },
        other => bail!("found {}", kind(&other)),
    }
}

/// The first `\uXXXX` escape in `line` that is a UTF-16 surrogate without its other half, as
/// (1-based column, the escape as written).
fn lone_surrogate(line: &str) -> Option<(usize, &str)> {
    let bytes = line.as_bytes();
    let hex4 = |at: usize| -> Option<u16> {
        let h = line.get(at..at + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(h, 16).ok()
    };
    let is_high = |u: u16| (0xD800..0xDC00).contains(&u);
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            // `\\`, `\"`, `\n`, ...: skip the escaped character too.
            i += 2;
            continue;
        }
        let Some(u) = hex4(i + 2) else {
            i += 2;
            continue;
        };
        if is_high(u) {
            let pair = bytes.get(i + 6) == Some(&b'\\')
                && bytes.get(i + 7) == Some(&b'u')
                && hex4(i + 8).is_some_and(is_low);
            if !pair {
                return Some((i + 1, &line[i..i + 6]));
            }
            i += 12;
        } else if is_low(u) {
            return Some((i + 1, &line[i..i + 6]));
        } else {
            i += 6;
        }
    }
    None
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source::File("in.txt".into())
    }

    #[test]
    fn lines_keep_empty_lines_and_strip_cr() {
        let t = parse_texts(b"a\r\n\nb\n", InputFormat::Lines, &src()).unwrap();
        assert_eq!(t, vec!["a", "", "b"]);
        let t = parse_texts(b"a\nlast", InputFormat::Lines, &src()).unwrap();
        assert_eq!(t, vec!["a", "last"]);
        assert!(parse_texts(b"", InputFormat::Lines, &src())
            .unwrap()
            .is_empty());
        assert_eq!(
            parse_texts(b"\n", InputFormat::Lines, &src()).unwrap(),
            vec![""]
        );
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let t = parse_texts(b"\xEF\xBB\xBFfirst\nsecond\n", InputFormat::Lines, &src()).unwrap();
        assert_eq!(t, vec!["first", "second"]);
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = parse_texts(b"ok\nbad \xff here\n", InputFormat::Lines, &src()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2 of in.txt"), "{msg}");
        assert!(msg.contains("UTF-8"), "{msg}");
        assert!(msg.contains("column 5"), "{msg}");
    }

    #[test]
    fn jsonl_strings_and_objects() {
        let t = parse_texts(
            b"\"a\\tb\"\n{\"text\": \"c\", \"id\": 3}\n\"\"\n",
            InputFormat::Jsonl,
            &src(),
        )
        .unwrap();
        assert_eq!(t, vec!["a\tb", "c", ""]);
        let err = parse_texts(b"\"a\"\n42\n", InputFormat::Jsonl, &src()).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let err = parse_texts(b"\"a\"\n\n\"b\"\n", InputFormat::Jsonl, &src()).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn lone_surrogates_are_named() {
        for (line, col, esc) in [
            (r#""\ud800""#, 2, r"\ud800"),
            (r#""ok \uDBFF then""#, 5, r"\uDBFF"),
            (r#""\udc00""#, 2, r"\udc00"),
            (r#""\ud83d\ude00 \ud83d""#, 15, r"\ud83d"),
            (r#"{"text": "\\\ud800"}"#, 13, r"\ud800"),
        ] {
            assert_eq!(lone_surrogate(line), Some((col, esc)), "{line}");
            let err = parse_texts(line.as_bytes(), InputFormat::Jsonl, &src()).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("line 1") && msg.contains(esc) && msg.contains("surrogate"),
                "{msg}"
            );
        }
        // A pair, and an escaped backslash before `u`, are not lone surrogates.
        for line in [r#""\ud83d\ude00""#, r#""\\ud800""#, r#""\u00e9""#] {
            assert_eq!(lone_surrogate(line), None, "{line}");
            assert!(parse_texts(line.as_bytes(), InputFormat::Jsonl, &src()).is_ok());
        }
    }
}
