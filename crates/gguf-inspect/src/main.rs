//! The gguf-inspect command: summary, metadata, tensors and statistics of GGUF files.
//!
//! The file is memory-mapped and only the header is parsed, so inspecting a multi-gigabyte model
//! takes milliseconds; `--tensor` dequantises one tensor in chunks (constant memory).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use gguf::{GgmlType, Gguf, TensorInfo, Value};
use serde_json::{json, Value as Json};

/// Show what is inside a GGUF file: a summary, all metadata, the tensor table, and statistics of
/// chosen tensors.
#[derive(Parser, Debug)]
#[command(name = "gguf-inspect", version)]
struct Args {
    /// The GGUF file.
    file: PathBuf,
    /// Print the whole document (summary, metadata with full arrays, tensors) as JSON.
    #[arg(long)]
    json: bool,
    /// Print statistics of this tensor's dequantised values (repeatable).
    #[arg(long = "tensor", value_name = "NAME")]
    tensors: Vec<String>,
    /// Array elements shown per metadata array in text output.
    #[arg(long, default_value_t = 8, value_name = "N")]
    array_items: usize,
    /// Only the summary (no metadata, no tensor table).
    #[arg(long)]
    summary: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gguf-inspect: error: {}: {}",
                args.file.display(),
                reason(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// One line: the error and its causes, without repeating a cause that a message already shows,
/// and without repeating the path of a file that could not be opened.
fn reason(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = match cause.downcast_ref::<gguf::GgufError>() {
            Some(gguf::GgufError::Open { source, .. }) => source.to_string(),
            Some(gguf::GgufError::NotAFile { kind, .. }) => format!("{kind}, not a GGUF file"),
            _ => cause.to_string(),
        };
        if line.contains(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    line
}

fn run(args: &Args) -> Result<()> {
    let file = Gguf::open(&args.file)?;
    let stats = args
        .tensors
        .iter()
        .map(|name| {
            let t = file.require_tensor(name)?;
            Ok((t, tensor_stats(&file, t)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = String::new();
    if args.json {
        let doc = json_document(&args.file, &file, &stats);
        out = serde_json::to_string_pretty(&doc)?;
        out.push('\n');
    } else {
        text_summary(&mut out, &args.file, &file);
        if !args.summary {
            text_metadata(&mut out, &file, args.array_items);
            text_tensors(&mut out, &file);
        }
        for (t, s) in &stats {
            text_stats(&mut out, t, s);
        }
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        // `gguf-inspect model.gguf | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

/// The numbers the summary shows.
struct Summary {
    architecture: Option<String>,
    parameters: u64,
    file_size: u64,
    type_mix: Vec<(GgmlType, usize, u64)>,
    context_length: Option<u64>,
    embedding_length: Option<u64>,
    vocab_size: Option<u64>,
}

fn summary<B: AsRef<[u8]>>(file: &Gguf<B>) -> Summary {
    let architecture = file.architecture().ok().map(str::to_owned);
    let arch_key = |k: &str| {
        architecture
            .as_deref()
            .and_then(|a| file.get_uint(&format!("{a}.{k}")).ok())
    };
    let mut type_mix: Vec<(GgmlType, usize, u64)> = Vec::new();
    for t in file.tensors() {
        match type_mix.iter_mut().find(|(ty, _, _)| *ty == t.ggml_type) {
            Some(e) => {
                e.1 += 1;
                e.2 += t.n_elements();
            }
            None => type_mix.push((t.ggml_type, 1, t.n_elements())),
        }
    }
    type_mix.sort_by_key(|e| std::cmp::Reverse(e.2));
    let vocab_size = arch_key("vocab_size").or_else(|| {
        file.get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len() as u64)
    });
    Summary {
        parameters: file.tensors().iter().map(TensorInfo::n_elements).sum(),
        file_size: file.bytes().len() as u64,
        type_mix,
        context_length: arch_key("context_length"),
        embedding_length: arch_key("embedding_length"),
        vocab_size,
        architecture,
    }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.2} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.2} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn text_summary<B: AsRef<[u8]>>(out: &mut String, path: &Path, file: &Gguf<B>) {
    let s = summary(file);
    let mix: Vec<String> = s
        .type_mix
        .iter()
        .map(|(t, n, _)| format!("{t}: {n}"))
        .collect();
    let _ = writeln!(out, "file:          {}", path.display());
    let _ = writeln!(
        out,
        "size:          {} ({} bytes)",
        human_bytes(s.file_size),
        s.file_size
    );
    let _ = writeln!(
        out,
        "format:        GGUF v{}, alignment {}, data at offset {}",
        file.version(),
        file.alignment(),
        file.data_offset()
    );
    let _ = writeln!(
        out,
        "architecture:  {}",
        s.architecture.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "parameters:    {} ({})",
        human_count(s.parameters),
        s.parameters
    );
    let _ = writeln!(
        out,
        "tensors:       {} ({})",
        file.tensors().len(),
        mix.join(", ")
    );
    let _ = writeln!(out, "context:       {}", opt(s.context_length));
    let _ = writeln!(out, "embedding:     {}", opt(s.embedding_length));
    let _ = writeln!(out, "vocabulary:    {}", opt(s.vocab_size));
}

fn scalar_text(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::F32(x) => format!("{x:?}"),
        Value::F64(x) => format!("{x:?}"),
        Value::Bool(b) => b.to_string(),
        v => v.as_u64().map_or_else(
            || {
                v.as_f64()
                    .map_or_else(|| format!("{v:?}"), |x| x.to_string())
            },
            |x| x.to_string(),
        ),
    }
}

fn value_text(v: &Value<'_>, items: usize) -> String {
    match v {
        Value::Array(a) => {
            let mut parts: Vec<String> = a.iter().take(items).map(|x| scalar_text(&x)).collect();
            if a.len() > items {
                parts.push(format!("... {} more", a.len() - items));
            }
            format!("[{}]", parts.join(", "))
        }
        v => scalar_text(v),
    }
}

fn text_metadata<B: AsRef<[u8]>>(out: &mut String, file: &Gguf<B>, items: usize) {
    let _ = writeln!(out, "\nmetadata ({} keys):", file.metadata_len());
    let width = file.metadata().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in file.metadata() {
        let ty = match &v {
            Value::Array(a) => format!("[{}; {}]", a.elem_type(), a.len()),
            v => v.value_type().to_string(),
        };
        let _ = writeln!(out, "  {k:width$}  {ty:>16}  {}", value_text(&v, items));
    }
}

fn shape(t: &TensorInfo) -> String {
    let d: Vec<String> = t.ne.iter().map(u64::to_string).collect();
    format!("[{}]", d.join(", "))
}

fn text_tensors<B: AsRef<[u8]>>(out: &mut String, file: &Gguf<B>) {
    let _ = writeln!(out, "\ntensors ({}):", file.tensors().len());
    let width = file
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:>5}  {:width$}  {:6}  {:>16}  {:>12}  {:>12}",
        "#", "name", "type", "shape", "offset", "bytes"
    );
    for (i, t) in file.tensors().iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i:>5}  {:width$}  {:6}  {:>16}  {:>12}  {:>12}",
            t.name,
            t.ggml_type.to_string(),
            shape(t),
            t.offset,
            t.size
        );
    }
}

/// Statistics of a tensor's dequantised values; min, max, mean and std are over finite values.
#[derive(Debug, Default)]
struct Stats {
    count: u64,
    finite: u64,
    nan: u64,
    inf: u64,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
}

fn tensor_stats<B: AsRef<[u8]>>(file: &Gguf<B>, t: &TensorInfo) -> Result<Stats> {
    let bytes = file.tensor_bytes(t);
    let ts = t.ggml_type.type_size() as usize;
    // About 1 MiB of input per chunk, in whole blocks.
    let chunk = (1 << 20) / ts * ts;
    let mut s = Stats {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Stats::default()
    };
    let (mut sum, mut sum_sq) = (0f64, 0f64);
    let mut buf = Vec::new();
    for part in bytes.chunks(chunk.max(ts)) {
        buf.clear();
        gguf::dequantize_row(t.ggml_type, part, &mut buf)
            .with_context(|| format!("tensor {:?}", t.name))?;
        for &x in &buf {
            s.count += 1;
            if x.is_nan() {
                s.nan += 1;
            } else if x.is_infinite() {
                s.inf += 1;
            } else {
                let x = f64::from(x);
                s.finite += 1;
                s.min = s.min.min(x);
                s.max = s.max.max(x);
                sum += x;
                sum_sq += x * x;
            }
        }
    }
    if s.finite > 0 {
        let n = s.finite as f64;
        s.mean = sum / n;
        s.std = (sum_sq / n - s.mean * s.mean).max(0.0).sqrt();
    } else {
        s.min = f64::NAN;
        s.max = f64::NAN;
        s.mean = f64::NAN;
        s.std = f64::NAN;
    }
    Ok(s)
}

fn text_stats(out: &mut String, t: &TensorInfo, s: &Stats) {
    let _ = writeln!(
        out,
        "\ntensor {} ({}, shape {}):",
        t.name,
        t.ggml_type,
        shape(t)
    );
    let _ = writeln!(out, "  count: {}", s.count);
    let _ = writeln!(out, "  min:   {}", s.min);
    let _ = writeln!(out, "  max:   {}", s.max);
    let _ = writeln!(out, "  mean:  {}", s.mean);
    let _ = writeln!(out, "  std:   {}", s.std);
    let _ = writeln!(out, "  nan:   {}", s.nan);
    let _ = writeln!(out, "  inf:   {}", s.inf);
}

fn num(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

fn scalar_json(v: &Value<'_>) -> Json {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => num(f64::from(x)),
        Value::F64(x) => num(x),
        Value::Bool(x) => json!(x),
        Value::Str(s) => json!(s),
        Value::Array(a) => Json::Array(a.iter().map(|x| scalar_json(&x)).collect()),
    }
}

fn json_document<B: AsRef<[u8]>>(
    path: &Path,
    file: &Gguf<B>,
    stats: &[(&TensorInfo, Stats)],
) -> Json {
    let s = summary(file);
    let metadata: Vec<Json> = file
        .metadata()
        .map(|(k, v)| {
            let mut e =
                json!({ "key": k, "type": v.value_type().name(), "value": scalar_json(&v) });
            if let Value::Array(a) = &v {
                e["element_type"] = json!(a.elem_type().name());
                e["len"] = json!(a.len());
            }
            e
        })
        .collect();
    let tensors: Vec<Json> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.to_string(),
                "ne": t.ne,
                "offset": t.offset,
                "n_bytes": t.size,
                "n_elements": t.n_elements(),
            })
        })
        .collect();
    let stats: Vec<Json> = stats
        .iter()
        .map(|(t, s)| {
            json!({
                "name": t.name, "count": s.count, "min": num(s.min), "max": num(s.max),
                "mean": num(s.mean), "std": num(s.std), "nan": s.nan, "inf": s.inf,
            })
        })
        .collect();
    let type_mix: serde_json::Map<String, Json> = s
        .type_mix
        .iter()
        .map(|(t, n, e)| (t.to_string(), json!({ "tensors": n, "elements": e })))
        .collect();
    json!({
        "file": path.display().to_string(),
        "file_size": s.file_size,
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "summary": {
            "architecture": s.architecture,
            "parameters": s.parameters,
            "tensor_count": file.tensors().len(),
            "type_mix": type_mix,
            "context_length": s.context_length,
            "embedding_length": s.embedding_length,
            "vocab_size": s.vocab_size,
        },
        "metadata": metadata,
        "tensors": tensors,
        "tensor_stats": stats,
    })
}
