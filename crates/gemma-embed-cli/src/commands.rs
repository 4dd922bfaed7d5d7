//! The subcommands.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ggufembed::{EmbedOptions, Model, Options, Prompt, Truncation};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::input::{read_texts, Source, TextReader};
use crate::output::{Destination, EmbeddingWriter, Format, Staging, Target};
use crate::stats::{human_bytes, peak_rss_bytes};
use crate::{BenchArgs, ConvertArgs, EmbedArgs, InfoArgs, ModelArgs, TokenFormat, TokenizeArgs};

/// The model file `args` names, or the default one.
fn model_path(args: &ModelArgs) -> std::path::PathBuf {
    args.model
        .clone()
        .unwrap_or_else(ggufembed::default_model_path)
}

/// The thread count to use for `--threads` (`0`: the default, one per core). More threads than
/// the cores this process may use only take turns on them, and a team of workers that wait for
/// each other between steps of a text slows down badly when they do (`--threads 1000` on two
/// cores: half a minute for one text): such a request is cut to the core count, with a note.
fn thread_count(requested: Option<u32>) -> usize {
    let Some(requested) = requested else {
        return 0;
    };
    let requested = requested as usize;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if requested > cores {
        eprintln!(
            "gemma-embed: note: --threads {requested} is more than the {cores} cores this process \
             can use; using {cores}"
        );
        cores
    } else {
        requested
    }
}

/// Opens the model named by `args` (or the default one) and reports how long it took.
fn open_model(args: &ModelArgs) -> Result<(Model, Duration)> {
    let path = model_path(args);
    let mut options = Options::default().threads(thread_count(args.threads));
    if let Some(p) = args.precision {
        options = options.precision(p.into());
    }
    let start = Instant::now();
    let model = Model::open(&path, options)
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    Ok((model, start.elapsed()))
}

/// A progress bar on standard error when it is a terminal and the job is long enough to need one.
fn progress_bar(len: Option<u64>, worth_it: bool, template: &str) -> ProgressBar {
    if !worth_it || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn prompt_of(args: &EmbedArgs) -> Prompt {
    if let Some(text) = &args.prompt_text {
        return Prompt::Text(text.clone());
    }
    match args.prompt.as_deref().map(str::parse) {
        None => Prompt::None,
        Some(Ok(prompt)) => prompt,
        Some(Err(never)) => match never {},
    }
}

/// The output format: `--format`, else the output file's extension, else JSON Lines (with a
/// note on standard error when a file's extension names no format). A `--format` that
/// contradicts the extension is an error: a `.csv` file never holds JSON.
fn output_format(
    explicit: Option<Format>,
    output: Option<&Path>,
    target: &Target,
) -> Result<Format> {
    let output = output.filter(|_| !target.is_stdout());
    let ext = output.and_then(Path::extension);
    match (explicit, ext.and_then(Format::from_extension)) {
        (Some(given), Some(by_name)) if given != by_name => bail!(
            "--format {} does not match the output {}, whose name says {}; drop --format (the \
             extension decides) or give the file a .{} name",
            given.name(),
            output.map_or(String::new(), |p| p.display().to_string()),
            by_name.name(),
            given.name()
        ),
        (Some(given), _) => Ok(given),
        (None, Some(by_name)) => Ok(by_name),
        (None, None) => {
            if let (Target::File { .. }, Some(path)) = (target, output) {
                let names: Vec<String> = Format::ALL
                    .iter()
                    .map(|f| format!(".{}", f.name()))
                    .collect();
                eprintln!(
                    "gemma-embed: note: the name {} does not end in {}: writing {} (the default; \
                     choose with --format)",
                    path.display(),
                    names.join(", "),
                    Format::Jsonl.name()
                );
            }
            Ok(Format::Jsonl)
        }
    }
}

/// Timings of an `embed` run, for `--stats`.
#[derive(Debug, Default)]
struct RunStats {
    /// Tokens of all texts (prompt and special tokens included).
    tokens: usize,
    /// Time and tokens of the first batch.
    first: Option<(Duration, usize, usize)>,
    /// Time and texts of the later batches.
    warm: (Duration, usize),
}

/// `gemma-embed embed`.
pub fn embed(mut args: EmbedArgs) -> Result<()> {
    // Check the output and read (and validate) the first batch of input before the slow model
    // load. The input is streamed a batch at a time (all of it for npy, whose header holds the
    // number of rows).
    let input = std::mem::take(&mut args.input);
    let target = Target::resolve(args.output.as_deref())?;
    target.refuse_to_replace(&model_path(&args.model), "model")?;
    if let Some(file) = input.input.as_deref().filter(|p| *p != Path::new("-")) {
        target.refuse_to_replace(file, "input file")?;
    }
    let format = output_format(args.format, args.output.as_deref(), &target)?;
    if format == Format::Npy && target.is_stdout() && std::io::stdout().is_terminal() {
        bail!("--format npy is binary: give --output FILE or redirect standard output");
    }
    let mut reader = TextReader::open(input.texts, input.input, input.input_format)?;
    let batch_size = args.batch_size.max(1);
    // With --stats the first text runs alone (the first, cold inference).
    let first_size = if args.stats { 1 } else { batch_size };
    let (mut pending, total) = if format == Format::Npy {
        let all = reader.read_all()?;
        let n = all.len();
        reader = TextReader::from_texts(all, reader.source().clone());
        (reader.next_batch(first_size)?, Some(n))
    } else {
        (reader.next_batch(first_size)?, None)
    };
    // Opened before the model loads, so that an output that cannot be written (someone else's
    // file) fails at once. A failed run deletes the temporary file; the target stays as it was.
    let destination = Destination::open(&target)?;
    let (model, load_time) = open_model(&args.model)?;

    let options = EmbedOptions::default()
        .prompt(prompt_of(&args))
        .normalize(!args.no_normalize)
        .truncation(if args.no_truncate {
            Truncation::Error
        } else {
            Truncation::Truncate
        })
        .batch_size(args.batch_size);
    let options = match args.dim {
        Some(d) => options.dim(d),
        None => options,
    };
    // Check the prompt and dimension before creating any output.
    model.prompt_text(options.prompt_value())?;
    let dim = args.dim.unwrap_or(model.output_dim());
    if !model.dimensions().contains(&dim) {
        return Err(ggufembed::Error::UnsupportedDimension {
            requested: dim,
            supported: model.dimensions().to_vec(),
        }
        .into());
    }

    let mut writer = EmbeddingWriter::begin(format, destination, total.unwrap_or(0), dim)?;
    let bar = match total {
        Some(n) => progress_bar(
            Some(n as u64),
            n > batch_size,
            "{spinner} {pos}/{len} texts [{bar:40}] {per_sec} eta {eta}",
        ),
        None => progress_bar(None, true, "{spinner} {pos} texts {per_sec}"),
    };
    let start = Instant::now();
    let mut stats = RunStats::default();
    let mut done = 0usize;
    let mut run = || -> Result<()> {
        while !pending.is_empty() {
            let batch_start = Instant::now();
            let source = reader.source();
            let ids = model
                .tokenize_batch(&pending, &options)
                .map_err(|e| locate(e, done, source))?;
            let tokens: usize = ids.iter().map(Vec::len).sum();
            let vectors = model
                .embed_tokens(&ids, &options)
                .map_err(|e| locate(e, done, source))?;
            for v in &vectors {
                writer.write(v)?;
            }
            if total.is_none() {
                writer.flush()?;
            }
            let took = batch_start.elapsed();
            stats.tokens += tokens;
            if stats.first.is_none() {
                stats.first = Some((took, pending.len(), tokens));
            } else {
                stats.warm.0 += took;
                stats.warm.1 += pending.len();
            }
            done += pending.len();
            bar.inc(pending.len() as u64);
            pending = reader.next_batch(batch_size)?;
        }
        Ok(())
    };
    let result = run();
    bar.finish_and_clear();
    if let Err(err) = result {
        // What was written stays well-formed (a JSON array is closed); a file being replaced
        // is left as it was.
        writer.abort().abandon();
        return Err(err);
    }
    let elapsed = start.elapsed();
    writer.finish()?.commit()?;

    if args.stats {
        print_stats(&model, load_time, done, &stats, elapsed);
    }
    Ok(())
}

/// Turns a batch-relative [`ggufembed::Error::TooLong`] or [`ggufembed::Error::NonFinite`] into a
/// message naming the input line.
fn locate(err: ggufembed::Error, first: usize, source: &Source) -> anyhow::Error {
    match err {
        ggufembed::Error::TooLong { index, tokens, max } => anyhow::anyhow!(
            "{} encodes to {tokens} tokens, more than the model's context of {max}; shorten it or \
             drop --no-truncate",
            source.locate(first + index)
        ),
        ggufembed::Error::NonFinite { index, count } => anyhow::anyhow!(
            "{} gave an embedding with {count} non-finite values (NaN or infinity): the model's \
             weights are broken",
            source.locate(first + index)
        ),
        other => other.into(),
    }
}

fn print_stats(model: &Model, load: Duration, texts: usize, stats: &RunStats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let info = model.info();
    eprintln!(
        "model       {} ({}, {} dims)",
        model.path().display(),
        info.weight_type,
        model.output_dim()
    );
    eprintln!("backend     {}", model.backend());
    eprintln!("threads     {}", model.threads());
    eprintln!("load        {:.1} ms", ms(load));
    match stats.first {
        Some((took, 1, tokens)) => {
            eprintln!(
                "first       {:.1} ms (first text, {tokens} tokens)",
                ms(took)
            )
        }
        Some((took, n, tokens)) => {
            eprintln!(
                "first       {:.1} ms (first {n} texts, {tokens} tokens)",
                ms(took)
            )
        }
        None => eprintln!("first       - (no texts)"),
    }
    match stats.warm {
        (took, n) if n > 0 => eprintln!(
            "warm        {:.2} ms/text (the other {n} texts)",
            ms(took) / n as f64
        ),
        _ => eprintln!("warm        - (needs more than one text)"),
    }
    eprintln!("texts       {texts}");
    eprintln!("tokens      {}", stats.tokens);
    eprintln!("embed       {secs:.3} s");
    eprintln!("texts/s     {:.2}", texts as f64 / secs);
    eprintln!("tokens/s    {:.1}", stats.tokens as f64 / secs);
    match peak_rss_bytes() {
        Some(b) => eprintln!("peak memory {} (VmHWM)", human_bytes(b)),
        None => eprintln!("peak memory unknown (no /proc/self/status)"),
    }
}

/// `gemma-embed tokenize`.
pub fn tokenize(args: TokenizeArgs) -> Result<()> {
    let (texts, _source) = read_texts(args.input.texts, args.input.input, args.input.input_format)?;
    // Only the vocabulary is needed: build the tokenizer from the GGUF metadata without loading
    // the weights (the same tokenizer `Model::open` builds).
    let path = model_path(&args.model);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(thread_count(args.model.threads));
    let pool = pool.build().context("cannot start the thread pool")?;
    let tokenizer = pool
        .install(|| ggufembed::load_tokenizer(&path))
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let options = ggufembed::tokenizer::EncodeOptions {
        add_special_tokens: !args.no_special,
        parse_special: true,
        max_length: args.max_length,
        truncation: ggufembed::tokenizer::Truncation::Truncate,
    };
    let all_ids: Vec<Vec<u32>> = pool.install(|| {
        texts
            .par_iter()
            .map(|t| tokenizer.encode_with(t, &options))
            .collect::<Result<_, _>>()
    })?;
    let mut out = Destination::stdout();
    if args.format == TokenFormat::Json {
        out.write_all(b"[")?;
    }
    for (index, ids) in all_ids.iter().enumerate() {
        let tokens: Vec<&str> = ids
            .iter()
            .map(|&id| tokenizer.id_to_piece(id).unwrap_or(""))
            .collect();
        let row = TokenRow { index, ids, tokens };
        match args.format {
            TokenFormat::Jsonl => {
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            }
            TokenFormat::Json => {
                out.write_all(if index == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut out, &row)?;
            }
        }
    }
    if args.format == TokenFormat::Json {
        out.write_all(if all_ids.is_empty() { b"]\n" } else { b"\n]\n" })?;
    }
    out.commit()
}

/// One line of `gemma-embed tokenize` output.
#[derive(serde::Serialize)]
struct TokenRow<'a> {
    index: usize,
    ids: &'a [u32],
    tokens: Vec<&'a str>,
}

/// The last line of `gemma-embed bench`.
#[derive(serde::Serialize)]
struct BenchLine {
    tokens: usize,
    threads: usize,
    ms_per_text: f64,
    tokens_per_s: f64,
    ms_min: f64,
    iters: usize,
    load_ms: f64,
    backend: &'static str,
    precision: String,
}

/// `gemma-embed convert`.
pub fn convert(args: ConvertArgs) -> Result<()> {
    use ggufembed::convert::{convert, ConvertProgress, OutType};

    let out_type: OutType = args
        .out_type
        .parse()
        .map_err(|e| anyhow::anyhow!("--type {}: {e}", args.out_type))?;
    if !args.hf_dir.is_dir() {
        bail!(
            "{} is not a directory (expected a Hugging Face model directory)",
            args.hf_dir.display()
        );
    }
    let bar = progress_bar(
        Some(0),
        true,
        "{spinner} {msg:30!} [{bar:40}] {bytes}/{total_bytes} eta {eta}",
    );
    let start = Instant::now();
    // The converter writes into a staging directory; the result then goes to --out like any
    // output of this command (see `output`): a regular file is replaced keeping its owner and
    // mode, anything else is written through, nothing is left behind on error or interrupt.
    let target = Target::resolve(Some(&args.out))?;
    if target.is_stdout() && std::io::stdout().is_terminal() {
        bail!("a GGUF file is binary: give --out FILE or redirect standard output");
    }
    for input in files_under(&args.hf_dir, 2) {
        target.refuse_to_replace(&input, "input file")?;
    }
    let staging = Staging::new(&target)?;
    let made = staging.file(
        args.out
            .file_name()
            .filter(|n| *n != std::ffi::OsStr::new("-"))
            .unwrap_or(std::ffi::OsStr::new("model.gguf")),
    );
    let mut on_progress = |p: &ConvertProgress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} {}", p.index + 1, p.count, p.tensor));
    };
    let summary = convert(&args.hf_dir, &made, out_type, &mut on_progress)
        .with_context(|| format!("cannot convert {}", args.hf_dir.display()))?;
    bar.finish_and_clear();
    staging.place(&made, &target)?;
    eprintln!(
        "wrote {} ({}): {} tensors, {} parameters, {} metadata keys, {} in {:.1} s",
        args.out.display(),
        summary.out_type,
        summary.n_tensors,
        summary.n_params,
        summary.n_metadata,
        human_bytes(summary.file_size),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The files in `dir` and in its subdirectories down to `depth` levels (the converter's
/// inputs: `model.safetensors`, `2_Dense/model.safetensors`, ...).
fn files_under(dir: &Path, depth: usize) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth > 1 => files.extend(files_under(&path, depth - 1)),
            Ok(t) if !t.is_dir() => files.push(path),
            _ => {}
        }
    }
    files
}

/// Builds the ids of a text that is exactly `n` tokens long, `<bos>` and `<eos>` included:
/// `"hello hello …"` tokenises to one token per word, which the tokenizer confirms.
fn bench_ids(model: &Model, n: usize) -> Result<(String, Vec<u32>)> {
    if n < 2 || n > model.context_length() {
        bail!(
            "--tokens must be between 2 and the model's context length {}",
            model.context_length()
        );
    }
    let words = n - 2;
    let text = vec!["hello"; words].join(" ");
    let ids = model.tokenize_with(&text, EmbedOptions::default().truncation(Truncation::Error))?;
    if ids.len() != n {
        bail!(
            "could not build a text of exactly {n} tokens ({words} words gave {} tokens)",
            ids.len()
        );
    }
    Ok((text, ids))
}

/// Minimum warm-up time of `gemma-embed bench`.
const WARM_UP: std::time::Duration = std::time::Duration::from_millis(300);

/// `gemma-embed bench`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let (model, load_time) = open_model(&args.model)?;
    let (_text, ids) = bench_ids(&model, args.tokens)?;
    let batch = [ids];
    let options = EmbedOptions::default();
    // Warm-up: at least one run and at least WARM_UP of them, so the timed runs do not pay for
    // first touches of the weights or an idle CPU waking up.
    let warm_start = Instant::now();
    loop {
        model.embed_tokens(&batch, &options)?;
        if warm_start.elapsed() >= WARM_UP {
            break;
        }
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let start = Instant::now();
        let v = model.embed_tokens(&batch, &options)?;
        times.push(start.elapsed().as_secs_f64());
        std::hint::black_box(v);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let tokens = args.tokens;
    eprintln!(
        "{tokens} tokens, {} threads, {} backend: {:.2} ms/text (min {:.2}), {:.1} tokens/s over {} runs",
        model.threads(),
        model.backend(),
        mean * 1e3,
        min * 1e3,
        tokens as f64 / mean,
        args.iters
    );
    let line = BenchLine {
        tokens,
        threads: model.threads(),
        ms_per_text: round3(mean * 1e3),
        tokens_per_s: round3(tokens as f64 / mean),
        ms_min: round3(min * 1e3),
        iters: args.iters,
        load_ms: round3(load_time.as_secs_f64() * 1e3),
        backend: model.backend(),
        precision: args
            .model
            .precision
            .map_or("default".to_owned(), |p| format!("{p:?}").to_lowercase()),
    };
    let mut out = Destination::stdout();
    writeln!(out, "{}", serde_json::to_string(&line)?)?;
    out.commit()
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// `gemma-embed info`.
pub fn info(args: InfoArgs) -> Result<()> {
    let (model, load_time) = open_model(&args.model)?;
    let info = model.info();
    let mut out = Destination::stdout();
    if args.json {
        let prompts: serde_json::Map<String, serde_json::Value> = model
            .prompts()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone().into()))
            .collect();
        let value = serde_json::json!({
            "path": model.path().display().to_string(),
            "architecture": info.architecture,
            "name": info.name,
            "weight_type": info.weight_type.to_string(),
            "layers": info.n_layers,
            "hidden_size": info.hidden_size,
            "output_dim": model.output_dim(),
            "dimensions": model.dimensions(),
            "context_length": model.context_length(),
            "vocab_size": info.vocab_size,
            "has_dense": info.has_dense,
            "prompts": prompts,
            "backend": model.backend(),
            "threads": model.threads(),
            "load_ms": round3(load_time.as_secs_f64() * 1e3),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "file            {}", model.path().display())?;
        writeln!(out, "architecture    {}", info.architecture)?;
        writeln!(
            out,
            "name            {}",
            info.name.as_deref().unwrap_or("-")
        )?;
        writeln!(out, "weights         {}", info.weight_type)?;
        writeln!(out, "layers          {}", info.n_layers)?;
        writeln!(out, "hidden size     {}", info.hidden_size)?;
        writeln!(out, "output dim      {}", model.output_dim())?;
        let dims: Vec<String> = model.dimensions().iter().map(ToString::to_string).collect();
        writeln!(out, "dimensions      {}", dims.join(", "))?;
        writeln!(out, "context length  {}", model.context_length())?;
        writeln!(out, "vocabulary      {}", info.vocab_size)?;
        writeln!(
            out,
            "dense layers    {}",
            if info.has_dense { "yes" } else { "no" }
        )?;
        writeln!(out, "kernel backend  {}", model.backend())?;
        writeln!(out, "threads         {}", model.threads())?;
        writeln!(
            out,
            "load time       {:.1} ms",
            load_time.as_secs_f64() * 1e3
        )?;
        writeln!(out, "prompts")?;
        for (name, prefix) in model.prompts() {
            writeln!(out, "  {name:26} {prefix:?}")?;
        }
    }
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_flag_and_extension() {
        let file = |p: &str| Target::File {
            path: p.into(),
            existing: None,
        };
        let cases = [
            (None, Some("e.csv"), Some(Format::Csv)),
            (None, Some("E.JSON"), Some(Format::Json)),
            (None, Some("dir.v2/e.npy"), Some(Format::Npy)),
            (None, Some("e.jsonl"), Some(Format::Jsonl)),
            (None, Some("e.txt"), Some(Format::Jsonl)),
            (None, Some("noext"), Some(Format::Jsonl)),
            (None, None, Some(Format::Jsonl)),
            (Some(Format::Csv), Some("e.csv"), Some(Format::Csv)),
            (Some(Format::Csv), Some("e.out"), Some(Format::Csv)),
            (Some(Format::Json), Some("e.csv"), None),
            (Some(Format::Jsonl), Some("e.json"), None),
            (Some(Format::Npy), None, Some(Format::Npy)),
        ];
        for (explicit, path, want) in cases {
            let target = path.map_or(Target::Stdout, file);
            let got = output_format(explicit, path.map(Path::new), &target);
            match want {
                Some(f) => assert_eq!(got.unwrap(), f, "{explicit:?} {path:?}"),
                None => {
                    let msg = got.unwrap_err().to_string();
                    assert!(msg.contains(path.unwrap()), "{msg}");
                }
            }
        }
        // `-o -` is standard output: `-` has no extension to follow, whatever --format says.
        assert_eq!(
            output_format(Some(Format::Csv), Some(Path::new("-")), &Target::Stdout).unwrap(),
            Format::Csv
        );
    }
}
