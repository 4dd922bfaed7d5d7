//! The subcommands.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ggufembed::{EmbedOptions, Model, Options, Prompt, Truncation};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::input::{read_texts, Source};
use crate::output::{Destination, EmbeddingWriter};
use crate::stats::{human_bytes, peak_rss_bytes};
use crate::{BenchArgs, ConvertArgs, EmbedArgs, InfoArgs, ModelArgs, TokenFormat, TokenizeArgs};

/// Opens the model named by `args` (or the default one) and reports how long it took.
fn open_model(args: &ModelArgs) -> Result<(Model, Duration)> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(ggufembed::default_model_path);
    let mut options = Options::default().threads(args.threads.map_or(0, |t| t as usize));
    if let Some(p) = args.precision {
        options = options.precision(p.into());
    }
    let start = Instant::now();
    let model = Model::open(&path, options)
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    Ok((model, start.elapsed()))
}

/// A progress bar on standard error when it is a terminal and the job is long enough to need one.
fn progress_bar(len: u64, worth_it: bool, template: &str) -> ProgressBar {
    if !worth_it || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
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

/// `gemma-embed embed`.
pub fn embed(mut args: EmbedArgs) -> Result<()> {
    // Read (and validate) all input before the slow model load.
    let input = std::mem::take(&mut args.input);
    let to_stdout = args
        .output
        .as_deref()
        .is_none_or(|p| p == std::path::Path::new("-"));
    if args.format == crate::output::Format::Npy && to_stdout && std::io::stdout().is_terminal() {
        bail!("--format npy is binary: give --output FILE or redirect standard output");
    }
    let (texts, source) = read_texts(input.texts, input.input, input.input_format)?;
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

    let mut writer = EmbeddingWriter::begin(
        args.format,
        Destination::open(args.output.as_deref())?,
        texts.len(),
        dim,
    )?;
    let bar = progress_bar(
        texts.len() as u64,
        texts.len() > args.batch_size,
        "{spinner} {pos}/{len} texts [{bar:40}] {per_sec} eta {eta}",
    );
    let start = Instant::now();
    let mut tokens = 0usize;
    for (chunk_no, chunk) in texts.chunks(args.batch_size).enumerate() {
        let first = chunk_no * args.batch_size;
        let ids = model
            .tokenize_batch(chunk, &options)
            .map_err(|e| locate(e, first, &source))?;
        tokens += ids.iter().map(Vec::len).sum::<usize>();
        let vectors = model
            .embed_tokens(&ids, &options)
            .map_err(|e| locate(e, first, &source))?;
        for v in &vectors {
            writer.write(v)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    writer.finish()?.commit()?;

    if args.stats {
        print_stats(&model, load_time, texts.len(), tokens, elapsed);
    }
    Ok(())
}

/// Turns a batch-relative [`ggufembed::Error::TooLong`] into a message naming the input line.
fn locate(err: ggufembed::Error, first: usize, source: &Source) -> anyhow::Error {
    match err {
        ggufembed::Error::TooLong { index, tokens, max } => anyhow::anyhow!(
            "{} encodes to {tokens} tokens, more than the model's context of {max}; shorten it or \
             drop --no-truncate",
            source.locate(first + index)
        ),
        other => other.into(),
    }
}

fn print_stats(model: &Model, load: Duration, texts: usize, tokens: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let info = model.info();
    eprintln!(
        "model       {} ({}, {} dims)",
        model.path().display(),
        info.weight_type,
        model.output_dim()
    );
    eprintln!("backend     {}", model.backend());
    eprintln!("threads     {}", model.threads());
    eprintln!("load        {:.1} ms", load.as_secs_f64() * 1e3);
    eprintln!("texts       {texts}");
    eprintln!("tokens      {tokens}");
    eprintln!("embed       {:.3} s", secs);
    eprintln!("texts/s     {:.2}", texts as f64 / secs);
    eprintln!("tokens/s    {:.1}", tokens as f64 / secs);
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
    let path = args
        .model
        .model
        .clone()
        .unwrap_or_else(ggufembed::default_model_path);
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.model.threads {
        pool = pool.num_threads(t as usize);
    }
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
    let mut out = Destination::open(None)?;
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
        0,
        true,
        "{spinner} {msg:30!} [{bar:40}] {bytes}/{total_bytes} eta {eta}",
    );
    let start = Instant::now();
    let mut on_progress = |p: &ConvertProgress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} {}", p.index + 1, p.count, p.tensor));
    };
    // The converter writes to a temporary name and renames at the end: a failed run leaves
    // no partial file.
    let summary = convert(&args.hf_dir, &args.out, out_type, &mut on_progress)
        .with_context(|| format!("cannot convert {}", args.hf_dir.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({}): {} tensors, {} parameters, {} metadata keys, {} in {:.1} s",
        summary.path.display(),
        summary.out_type,
        summary.n_tensors,
        summary.n_params,
        summary.n_metadata,
        human_bytes(summary.file_size),
        start.elapsed().as_secs_f64()
    );
    Ok(())
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
    println!("{}", serde_json::to_string(&line)?);
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// `gemma-embed info`.
pub fn info(args: InfoArgs) -> Result<()> {
    let (model, load_time) = open_model(&args.model)?;
    let info = model.info();
    let mut out = Destination::open(None)?;
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
