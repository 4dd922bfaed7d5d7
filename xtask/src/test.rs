//! `cargo xtask test`: fetch the Q8_0 and F32 models, then `cargo test --workspace --release`.

use std::process::{Command, ExitCode};

use gemma_runtime::convert::OutType;

/// Arguments of `test`: passed through to `cargo test` after `--workspace --release`.
#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo test` (e.g. `-- --nocapture`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cargo_args: Vec<String>,
}

/// Runs `test`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    crate::fetch::ensure(&[OutType::Q8_0, OutType::F32])?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace", "--release"])
        .args(&args.cargo_args)
        .status()?;
    Ok(exit_code(status))
}

/// The exit status of a child process as this process's exit code.
pub fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}
