//! Go-style flags: `-model m.gguf`, `-format=json`, `-stats` beside `--model`, `--format json`.
//!
//! The tool this command replaces parsed its command line with Go's `flag` package, where a long
//! flag takes one dash or two (`-model`, `--model`, `-threads=4`) and a boolean flag may be given
//! a value (`-stats=false`). clap reads `-model` as the short flag `-m` with the value `odel`, so
//! [`normalize`] rewrites the command line before clap sees it:
//!
//! * a single-dash word that is exactly a long flag of the command at that point (`-model`,
//!   `-input-format`, `-help`) becomes the double-dash form, `=value` included;
//! * `-stats=true` / `-stats=false` (and `--stats=…`) set or leave out a boolean flag, with the
//!   spellings of Go's `strconv.ParseBool`;
//! * short flags work as before: `-m PATH`, `-t4`, `-ofile.csv`, `-m=PATH`;
//! * a single-dash word that is neither is an error that names the flag the user probably meant:
//!   `-modl` could be a typo of `-model` or `-m odl`, and guessing would hide the typo.
//!
//! Nothing after `--` and no value of a flag that takes one is touched.

use std::ffi::OsString;

use clap::{Arg, Command};

/// A command-line word that cannot be read as a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// A single-dash word that is not a flag of the command.
    Unknown {
        /// The word as typed, without any `=value` (`-modl`).
        given: String,
        /// The flag the user probably meant, in single-dash form (`-model`), if one is close.
        suggestion: Option<String>,
        /// The short flag taking a value that the word starts with, if any (`-modl` could be
        /// `-m odl`).
        short: Option<char>,
        /// The subcommand whose flags were searched (`embed`), or `None` for the top level.
        command: Option<String>,
    },
    /// A boolean flag with a value that is not a boolean (`-stats=maybe`).
    NotABoolean {
        /// The flag (`-stats`).
        flag: String,
        /// The value given.
        value: String,
    },
}

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagError::Unknown {
                given,
                suggestion,
                short,
                command,
            } => {
                write!(f, "unknown flag '{given}'")?;
                if let Some(c) = command {
                    write!(f, " for '{c}'")?;
                }
                if let Some(s) = suggestion {
                    write!(f, "\n\n  tip: did you mean '{s}' (or '-{s}')?")?;
                }
                if let Some(c) = short {
                    let rest = given.get(1 + c.len_utf8()..).unwrap_or("");
                    write!(
                        f,
                        "\n  tip: to give -{c} the value '{rest}', write '-{c} {rest}'"
                    )?;
                }
                Ok(())
            }
            FlagError::NotABoolean { flag, value } => write!(
                f,
                "invalid value '{value}' for '{flag}': a switch takes true or false (or 1, 0, t, f)"
            ),
        }
    }
}

impl std::error::Error for FlagError {}

impl FlagError {
    /// The suggested flag, if any.
    #[cfg(test)]
    fn suggestion(&self) -> Option<&str> {
        match self {
            FlagError::Unknown { suggestion, .. } => suggestion.as_deref(),
            FlagError::NotABoolean { .. } => None,
        }
    }
}

/// Whether `arg` consumes a value (`--model PATH`) rather than being a switch (`--stats`).
fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// The argument of `cmd` whose long name (or alias) is `name`.
fn find_long<'c>(cmd: &'c Command, name: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// The argument of `cmd` whose short name (or short alias) is `c`.
fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| {
        a.get_short() == Some(c) || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Edit distance between two flag names, a swap of neighbours counting as one edit
/// (optimal string alignment: `inptu` is one edit from `input`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    // d[i * w + j]: distance between a[..i] and b[..j].
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, x) in d[..w].iter_mut().enumerate() {
        *x = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The long flag of `cmd` closest to `word`, if it is close enough to be a likely typo or
/// abbreviation: a prefix of it (`-mod` → `-model`), it a prefix of the word (`-statsx`), or
/// a few edits away (`-thread`, `-ouput`).
fn closest_long(cmd: &Command, word: &str) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for long in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(Arg::get_long)
    {
        let d = if long.starts_with(word) || word.starts_with(long) {
            0
        } else {
            edit_distance(word, long)
        };
        let limit = (long.chars().count().max(word.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, long));
        }
    }
    best.map(|(_, long)| format!("-{long}"))
}

/// Rewrites Go-style single-dash long flags of `raw` (the whole command line, program name
/// first) into the double-dash forms `cmd` (the clap command of the binary) parses.
pub fn normalize(raw: Vec<OsString>, cmd: &Command) -> Result<Vec<OsString>, FlagError> {
    let mut root = cmd.clone();
    root.build();
    let mut out = Vec::with_capacity(raw.len());
    let mut args = raw.into_iter();
    if let Some(program) = args.next() {
        out.push(program);
    }
    // The command whose flags apply: the top level until a subcommand name is seen.
    let mut current: &Command = &root;
    let mut sub_name: Option<String> = None;
    // Once a positional word has been seen, no subcommand can follow.
    let mut subcommand_possible = true;
    while let Some(arg) = args.next() {
        if sub_name.is_none() && arg.to_str().is_some_and(|s| s.starts_with('-')) {
            // clap takes no subcommand after a flag of the top level (the flags are `embed`'s).
            subcommand_possible = false;
        }
        let Some(s) = arg.to_str() else {
            // Not UTF-8: never a flag of ours; clap reports it if it must.
            subcommand_possible = false;
            out.push(arg);
            continue;
        };
        if s == "--" {
            out.push(arg);
            out.extend(args.by_ref());
            break;
        }
        if let Some(body) = s.strip_prefix("--") {
            let (name, value) = split_value(body);
            match find_long(current, name) {
                Some(a) if !takes_value(a) && value.is_some() => {
                    out.extend(bool_flag(name, value)?);
                }
                Some(a) if takes_value(a) && value.is_none() => {
                    out.push(arg);
                    out.extend(args.next());
                }
                _ => out.push(arg),
            }
            continue;
        }
        let Some(body) = s.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // A positional word (or `-`, standard input).
            if subcommand_possible && sub_name.is_none() {
                if let Some(sub) = root.find_subcommand(s) {
                    current = sub;
                    sub_name = Some(sub.get_name().to_owned());
                }
            }
            subcommand_possible = false;
            out.push(arg);
            continue;
        };
        let (name, value) = split_value(body);
        let mut chars = name.chars();
        let first = chars.next();
        if chars.next().is_none() || first.is_some_and(|c| c.is_ascii_digit()) {
            // `-m`, `-m=PATH`, or a negative number: clap's business.
            if let Some(c) = first {
                if value.is_none() && find_short(current, c).is_some_and(takes_value) {
                    out.push(arg);
                    out.extend(args.next());
                    continue;
                }
            }
            out.push(arg);
            continue;
        }
        if let Some(a) = find_long(current, name) {
            if takes_value(a) {
                out.push(format!("-{s}").into());
                if value.is_none() {
                    out.extend(args.next());
                }
            } else {
                out.extend(bool_flag(name, value)?);
            }
            continue;
        }
        let c = first.unwrap_or('-');
        let short_with_value = find_short(current, c).is_some_and(takes_value);
        let unknown = |suggestion| FlagError::Unknown {
            given: format!("-{name}"),
            suggestion,
            short: short_with_value.then_some(c),
            command: sub_name.clone(),
        };
        if let Some(suggestion) = closest_long(current, name) {
            return Err(unknown(Some(suggestion)));
        }
        // A short flag with its value glued on (`-t4`, `-ofile.csv`), or a cluster of short
        // switches: clap reads those as it always did.
        let cluster = name.chars().all(|c| find_short(current, c).is_some());
        if short_with_value || cluster {
            out.push(arg);
        } else {
            return Err(unknown(None));
        }
    }
    Ok(out)
}

/// `name=value` → (`name`, `Some(value)`); `name` → (`name`, `None`).
fn split_value(body: &str) -> (&str, Option<&str>) {
    match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    }
}

/// A boolean flag, given Go-style: `-stats`, `-stats=true` → `--stats`; `-stats=false` → nothing.
fn bool_flag(name: &str, value: Option<&str>) -> Result<Option<OsString>, FlagError> {
    match value.map(|v| (v, parse_go_bool(v))) {
        None | Some((_, Some(true))) => Ok(Some(format!("--{name}").into())),
        Some((_, Some(false))) => Ok(None),
        Some((v, None)) => Err(FlagError::NotABoolean {
            flag: format!("-{name}"),
            value: v.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(args: &[&str]) -> Result<Vec<String>, FlagError> {
        let raw = std::iter::once("gemma-embed")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        normalize(raw, &crate::Cli::command()).map(|v| {
            v.into_iter()
                .skip(1)
                .map(|s| s.into_string().unwrap())
                .collect()
        })
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&["-model", "m.gguf", "-format", "json"]).unwrap(),
            ["--model", "m.gguf", "--format", "json"]
        );
        assert_eq!(
            norm(&["-model=m.gguf", "-input", "t.txt", "-output", "e.csv"]).unwrap(),
            ["--model=m.gguf", "--input", "t.txt", "--output", "e.csv"]
        );
        assert_eq!(
            norm(&["-stats", "-threads", "16", "-input-format", "jsonl"]).unwrap(),
            ["--stats", "--threads", "16", "--input-format", "jsonl"]
        );
        assert_eq!(
            norm(&["embed", "-dim", "256", "-prompt", "query", "hi"]).unwrap(),
            ["embed", "--dim", "256", "--prompt", "query", "hi"]
        );
        assert_eq!(
            norm(&["convert", "dir", "-out", "x.gguf", "-type=f16"]).unwrap(),
            ["convert", "dir", "--out", "x.gguf", "--type=f16"]
        );
        assert_eq!(norm(&["-help"]).unwrap(), ["--help"]);
        assert_eq!(
            norm(&["bench", "-tokens=8"]).unwrap(),
            ["bench", "--tokens=8"]
        );
    }

    #[test]
    fn go_booleans() {
        assert_eq!(norm(&["-stats=true"]).unwrap(), ["--stats"]);
        assert_eq!(norm(&["-stats=1"]).unwrap(), ["--stats"]);
        assert!(norm(&["-stats=false"]).unwrap().is_empty());
        assert!(norm(&["--stats=F"]).unwrap().is_empty());
        let e = norm(&["-stats=maybe"]).unwrap_err();
        assert!(matches!(e, FlagError::NotABoolean { .. }), "{e:?}");
        assert!(e.to_string().contains("maybe"), "{e}");
    }

    #[test]
    fn short_flags_and_values_are_untouched() {
        for args in [
            &["-m", "m.gguf", "-t", "2", "-f", "csv"][..],
            &["-t4", "-ofile.csv", "-fjson", "-d256"],
            &["-m=m.gguf", "-i", "-"],
            // Values are never read as flags, whatever they look like.
            &["--prompt-text", "-format", "x"],
            &["-prompt-text", "-model", "x"],
            &["-m", "-weird.gguf"],
            // Nothing after `--` is a flag.
            &["--", "-model", "-modl"],
            &["embed", "--", "-x"],
        ] {
            let got = norm(args).unwrap();
            let want: Vec<String> = args
                .iter()
                .map(|s| {
                    if *s == "-prompt-text" {
                        "--prompt-text".to_owned()
                    } else {
                        (*s).to_owned()
                    }
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn typos_and_ambiguous_words_name_the_flag() {
        for (given, want) in [
            ("-modl", "-model"),
            ("-mod", "-model"),
            ("-thread", "-threads"),
            ("-ouput", "-output"),
            ("-inptu", "-input"),
            ("-fromat", "-format"),
            ("-stat", "-stats"),
        ] {
            let e = norm(&[given, "x"]).unwrap_err();
            assert_eq!(e.suggestion(), Some(want), "{given}");
            let msg = e.to_string();
            assert!(msg.contains(given) && msg.contains(want), "{msg}");
        }
        // Subcommand flags: `bench` has `--tokens`, `--iters`.
        let e = norm(&["bench", "-token", "8"]).unwrap_err();
        assert_eq!(e.suggestion(), Some("-tokens"));
        assert!(e.to_string().contains("for 'bench'"), "{e}");
        // `-modl` might be `-m odl`: the message says how to write that.
        let msg = norm(&["-modl"]).unwrap_err().to_string();
        assert!(msg.contains("'-m odl'"), "{msg}");
        // Nothing close and no short flag `-x`.
        let e = norm(&["-xyzzy"]).unwrap_err();
        assert_eq!(e.suggestion(), None);
        assert!(e.to_string().contains("-xyzzy"));
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("thread", "threads"), 1);
        assert_eq!(edit_distance("ouput", "output"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("inptu", "input"), 1);
        assert_eq!(edit_distance("fromat", "format"), 1);
    }
}
