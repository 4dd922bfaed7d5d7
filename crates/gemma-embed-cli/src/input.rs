//! Reading the texts to process: command-line arguments, a file, or standard input.

use std::io::{IsTerminal, Read};
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

/// Collects the texts: the positional `texts` if any, else `input` (`-` or absent: stdin).
pub fn read_texts(
    texts: Vec<String>,
    input: Option<PathBuf>,
    format: InputFormat,
) -> Result<(Vec<String>, Source)> {
    if !texts.is_empty() {
        return Ok((texts, Source::Args));
    }
    let path = input.unwrap_or_else(|| PathBuf::from("-"));
    let bytes = if path == Path::new("-") {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!(
                "gemma-embed: reading texts from standard input, one per line (end with Ctrl-D)"
            );
        }
        let mut buf = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(&path)
            .with_context(|| format!("cannot read input file {}", path.display()))?
    };
    let source = Source::File(path);
    let texts = parse_texts(&bytes, format, &source)?;
    Ok((texts, source))
}

/// Splits `bytes` into texts according to `format`.
pub fn parse_texts(bytes: &[u8], format: InputFormat, source: &Source) -> Result<Vec<String>> {
    // A UTF-8 byte-order mark (editors on Windows write one) is not part of the first text.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // A final newline ends the last line; it does not start an empty one.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut texts = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = match std::str::from_utf8(line) {
            Ok(s) => s,
            Err(e) => bail!(
                "{} is not valid UTF-8 (bad byte at column {}); the input must be UTF-8 text",
                source.locate(i),
                e.valid_up_to() + 1
            ),
        };
        match format {
            InputFormat::Lines => texts.push(line.to_owned()),
            InputFormat::Jsonl => texts.push(parse_json_text(line).with_context(|| {
                format!(
                    "{}: expected a JSON string (or an object with a \"text\" string)",
                    source.locate(i)
                )
            })?),
        }
    }
    Ok(texts)
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
