//! `cargo xtask convert HF_DIR --out FILE --type T`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use gemma_runtime::convert::{self, ConvertProgress, ConvertSummary, OutType};

/// Arguments of `convert`.
#[derive(clap::Args)]
pub struct Args {
    /// The sentence-transformers EmbeddingGemma directory.
    hf_dir: PathBuf,
    /// The GGUF file to write.
    #[arg(long)]
    out: PathBuf,
    /// Output type: q8_0, f32, f16 or bf16.
    #[arg(long = "type", default_value = "q8_0")]
    ty: String,
}

/// Runs `convert`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let ty: OutType = args.ty.parse()?;
    convert_with_bar(&args.hf_dir, &args.out, ty)?;
    println!("{}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Converts with a progress bar on stderr and a one-line summary.
pub fn convert_with_bar(hf_dir: &Path, out: &Path, ty: OutType) -> anyhow::Result<ConvertSummary> {
    eprintln!(
        "converting {} to {} ({ty})",
        hf_dir.display(),
        out.display()
    );
    let start = Instant::now();
    let mut bar = None;
    let summary = convert::convert(hf_dir, out, ty, &mut |p: &ConvertProgress| {
        let b = bar.get_or_insert_with(|| crate::progress::bytes(p.bytes_total, "converting"));
        b.set_position(p.bytes_done);
        b.set_message(format!("{} ({}/{})", p.tensor, p.index + 1, p.count));
    })
    .with_context(|| format!("converting {} failed", hf_dir.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "wrote {} ({} tensors, {} keys, {:.1} MB) in {:.1} s",
        summary.path.display(),
        summary.n_tensors,
        summary.n_metadata,
        summary.file_size as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(summary)
}
