//! `gemma-embed serve`: the flags of the embedding server, handed to `ggufembed-server`.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use ggufembed::Options;
use ggufembed_server::Config;

use crate::ModelArgs;

fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// Flags of `gemma-embed serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,

    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0: any free port; the address is printed on standard error).
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 8080)]
    port: u16,

    /// Most tokens run through the model at once, gathered from all waiting requests.
    #[arg(long, value_name = "N", default_value_t = ggufembed_server::DEFAULT_MAX_BATCH_TOKENS,
          value_parser = at_least_one())]
    max_batch_tokens: usize,

    /// Most inputs in one request (more: 422).
    #[arg(long, value_name = "N", default_value_t = ggufembed_server::DEFAULT_MAX_CLIENT_BATCH_SIZE,
          value_parser = at_least_one())]
    max_client_batch_size: usize,

    /// Most requests in flight at once (more: 429 at once).
    #[arg(long, value_name = "N", default_value_t = ggufembed_server::DEFAULT_MAX_CONCURRENT_REQUESTS,
          value_parser = at_least_one())]
    max_concurrent_requests: usize,

    /// Most tokens in one input, prompt and special tokens included [default: the model's context].
    #[arg(long, value_name = "N", value_parser = at_least_one())]
    max_input_tokens: Option<usize>,

    /// Cut texts longer than --max-input-tokens instead of answering 422.
    #[arg(long)]
    auto_truncate: bool,

    /// Largest request body in bytes (more: 413).
    #[arg(long, value_name = "BYTES", default_value_t = ggufembed_server::DEFAULT_PAYLOAD_LIMIT,
          value_parser = at_least_one())]
    payload_limit: usize,

    /// Task prompt of requests that name none: `query`, `document`, or one of the model's
    /// prompt names (see `gemma-embed info`).
    #[arg(long, value_name = "NAME")]
    default_prompt: Option<String>,

    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,

    /// Seconds a client may take to send a request's headers, and again its body (then 408).
    #[arg(long, value_name = "SECONDS", default_value_t = ggufembed_server::DEFAULT_READ_TIMEOUT.as_secs_f64())]
    read_timeout: f64,

    /// Seconds the requests in flight get to finish after SIGTERM or SIGINT.
    #[arg(long, value_name = "SECONDS", default_value_t = ggufembed_server::DEFAULT_SHUTDOWN_TIMEOUT.as_secs_f64())]
    shutdown_timeout: f64,
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            anyhow::anyhow!("--{flag} must be a positive number of seconds, not {value}")
        })
}

/// `gemma-embed serve`.
pub fn serve(args: ServeArgs) -> Result<()> {
    let mut options = Options::default().threads(args.model.threads.map_or(0, |t| t as usize));
    if let Some(p) = args.model.precision {
        options = options.precision(p.into());
    }
    let mut config = Config::new(
        args.model
            .model
            .unwrap_or_else(ggufembed::default_model_path),
    );
    config.model_options = options;
    config.host = args.host;
    config.port = args.port;
    config.max_batch_tokens = args.max_batch_tokens;
    config.max_client_batch_size = args.max_client_batch_size;
    config.max_concurrent_requests = args.max_concurrent_requests;
    config.max_input_tokens = args.max_input_tokens;
    config.auto_truncate = args.auto_truncate;
    config.payload_limit = args.payload_limit;
    config.default_prompt = args.default_prompt;
    config.api_key = args.api_key;
    config.read_timeout = seconds("read-timeout", args.read_timeout)?;
    config.shutdown_timeout = seconds("shutdown-timeout", args.shutdown_timeout)?;
    ggufembed_server::run(config)?;
    Ok(())
}
