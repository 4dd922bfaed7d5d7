//! The `gemma-embed` command: embed, tokenize, convert and benchmark with GGUF embedding models.
//!
//! A thin layer over the [`ggufembed`] facade: it reads texts, calls the library, and writes the
//! results. Data goes to standard output (or `--output`); everything else (progress, `--stats`,
//! errors) goes to standard error.

mod args;
mod cleanup;
mod commands;
mod input;
mod output;
mod serve;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::input::InputFormat;
use crate::output::Format;

/// Text embeddings from GGUF models (EmbeddingGemma-300M), in pure Rust.
///
/// Without a subcommand, works like `gemma-embed embed`: embeds the lines of standard input (or
/// the TEXT arguments) and writes one JSON object per line.
///
/// Long flags take one dash or two (`-model m.gguf`, `--model m.gguf`, `-format=json`).
#[derive(Debug, Parser)]
#[command(
    name = "gemma-embed",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    embed: EmbedArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Embed texts (arguments, a file, or standard input) and write the vectors.
    Embed(EmbedArgs),
    /// Show the token ids (and pieces) of texts.
    Tokenize(TokenizeArgs),
    /// Convert a Hugging Face (sentence-transformers) EmbeddingGemma directory to GGUF.
    Convert(ConvertArgs),
    /// Time the embedding of one text of exactly N tokens (like `llama-bench -embd 1 -p N -n 0`).
    Bench(BenchArgs),
    /// Show what the model file holds and which kernel backend runs it.
    Info(InfoArgs),
    /// Serve embeddings over HTTP (OpenAI and text-embeddings-inference APIs) until SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
}

/// Options shared by every command that loads a model.
#[derive(Debug, Args, Default)]
struct ModelArgs {
    /// GGUF model file [default: $GGUFEMBED_MODEL, else embeddinggemma-300m-q8_0.gguf in the
    /// model cache directory]
    #[arg(long, short = 'm', value_name = "PATH")]
    model: Option<PathBuf>,

    /// Worker threads [default: one per core; more than the cores this process may use is cut
    /// to that number]
    #[arg(long, short = 't', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: Option<u32>,

    /// Activations in the Q8_0 matrix products [default: the runtime's choice, mixed]
    #[arg(long, value_enum, value_name = "P")]
    precision: Option<PrecisionArg>,
}

/// `--precision` values (see `ggufembed::Precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PrecisionArg {
    /// int8 activations everywhere (llama.cpp's scheme; fastest).
    Int8,
    /// int8 activations except where outliers make int8 rounding costly.
    Mixed,
    /// f32 activations against dequantised weights (closest to the f32 model).
    F32,
}

impl From<PrecisionArg> for ggufembed::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Int8 => ggufembed::Precision::Int8,
            PrecisionArg::Mixed => ggufembed::Precision::Mixed,
            PrecisionArg::F32 => ggufembed::Precision::F32,
        }
    }
}

/// Where the texts come from.
#[derive(Debug, Args, Default)]
struct InputArgs {
    /// Texts to process; if none are given, they are read from --input or standard input.
    #[arg(value_name = "TEXT", conflicts_with = "input")]
    texts: Vec<String>,

    /// Read texts from FILE (`-` for standard input).
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,

    /// How the input is laid out: one text per line, or one JSON string per line.
    #[arg(long, value_enum, default_value_t = InputFormat::Lines)]
    input_format: InputFormat,
}

#[derive(Debug, Args)]
struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    input: InputArgs,

    /// Write the output to FILE instead of standard output (a regular file is replaced only if
    /// everything succeeds, keeping its owner and mode; a device or FIFO is written through).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format [default: from the --output extension (.jsonl, .json, .csv, .npy), else
    /// jsonl].
    #[arg(long, short = 'f', value_enum)]
    format: Option<Format>,

    /// Task prompt to put in front of every text: `query`, `document`, or any of the model's
    /// prompt names (see `gemma-embed info`).
    #[arg(long, value_name = "NAME", conflicts_with = "prompt_text")]
    prompt: Option<String>,

    /// A literal prefix to put in front of every text.
    #[arg(long, value_name = "TEXT")]
    prompt_text: Option<String>,

    /// Output dimension (Matryoshka: 768, 512, 256 or 128 for EmbeddingGemma).
    #[arg(long, short = 'd', value_name = "N")]
    dim: Option<usize>,

    /// Texts run together (bounds memory).
    #[arg(long, value_name = "N", default_value_t = ggufembed::DEFAULT_BATCH_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    batch_size: usize,

    /// Write the raw pooled vectors (cut to --dim) instead of L2-normalised ones.
    #[arg(long)]
    no_normalize: bool,

    /// Fail on texts longer than the model's context instead of truncating them.
    #[arg(long)]
    no_truncate: bool,

    /// Print load time, first and warm inference time, throughput, peak memory and the kernel
    /// backend to standard error.
    #[arg(long)]
    stats: bool,
}

/// Output format of `gemma-embed tokenize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TokenFormat {
    /// One `{"index", "ids", "tokens"}` object per line.
    Jsonl,
    /// One JSON array of those objects.
    Json,
}

#[derive(Debug, Args)]
struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    input: InputArgs,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = TokenFormat::Jsonl)]
    format: TokenFormat,

    /// Leave out `<bos>` and `<eos>`.
    #[arg(long)]
    no_special: bool,

    /// Cut to at most N tokens (special tokens included), like `embed` does at the context length.
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The Hugging Face model directory (config.json, model.safetensors, tokenizer.model, ...).
    #[arg(value_name = "HF_DIR")]
    hf_dir: PathBuf,

    /// The GGUF file to write (replaced only when complete, keeping its owner and mode; `-`
    /// for standard output).
    #[arg(long, short = 'o', value_name = "FILE.gguf")]
    out: PathBuf,

    /// Weight type: q8_0, f32, f16 or bf16.
    #[arg(long = "type", value_name = "TYPE", default_value = "q8_0")]
    out_type: String,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,

    /// Length of the text in tokens, `<bos>` and `<eos>` included.
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
    tokens: usize,

    /// Timed runs (after untimed warm-up runs: at least one, for at least 0.3 s).
    #[arg(long, short = 'k', value_name = "K", default_value_t = 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    iters: usize,
}

#[derive(Debug, Args)]
struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let argv = match args::normalize(std::env::args_os().collect(), &Cli::command()) {
        Ok(argv) => argv,
        Err(err) => {
            eprintln!("error: {err}\n\nFor more information, try '--help'.");
            // clap's exit code for a usage error.
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        None => commands::embed(cli.embed),
        Some(Command::Embed(args)) => commands::embed(args),
        Some(Command::Tokenize(args)) => commands::tokenize(args),
        Some(Command::Convert(args)) => commands::convert(args),
        Some(Command::Bench(args)) => commands::bench(args),
        Some(Command::Info(args)) => commands::info(args),
        Some(Command::Serve(args)) => serve::serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`gemma-embed ... | head`) is the reader's choice, not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gemma-embed: error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone, directly or through
/// serde_json (whose error hides the `io::Error` from the source chain).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// The error and its causes, joined by ": ", each cause once: many errors already include
/// their source's text in their own ("cannot open x: No such device"), and printing the
/// source again would say it twice.
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
