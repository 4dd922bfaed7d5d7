//! `cargo xtask embed [ARGS...]`: make sure the default model is there, then run
//! `gemma-embed embed ARGS...` (release build): `cargo xtask embed "Hello, world!"`.

use std::process::{Command, ExitCode};

use gemma_runtime::convert::OutType;

/// Arguments of `embed`: passed to `gemma-embed embed`.
#[derive(clap::Args)]
pub struct Args {
    /// Arguments for `gemma-embed embed` (texts and options, e.g. `"Hello, world!"`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs `embed`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    crate::fetch::ensure(&[OutType::Q8_0])?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "gemma-embed-cli",
            "--",
            "embed",
        ])
        .args(&args.args)
        .status()?;
    Ok(crate::test::exit_code(status))
}
