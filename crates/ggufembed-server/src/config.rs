//! [`Config`]: what the server serves and its limits.

use std::path::PathBuf;
use std::time::Duration;

/// Default `--max-batch-tokens`: tokens gathered into one run of the model.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 8192;
/// Default `--max-client-batch-size`: inputs in one request.
pub const DEFAULT_MAX_CLIENT_BATCH_SIZE: usize = 64;
/// Default `--max-concurrent-requests`: requests in flight before new ones get 429.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;
/// Default `--payload-limit`: largest request body, in bytes.
pub const DEFAULT_PAYLOAD_LIMIT: usize = 2_000_000;
/// Default read timeout: how long a client may take to send a request's headers or body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time in-flight requests get to finish after SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything `gemma-embed serve` is told.
///
/// ```
/// let config = ggufembed_server::Config::new("model.gguf").port(0).max_client_batch_size(16);
/// assert_eq!(config.port, 0);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The GGUF model file.
    pub model: PathBuf,
    /// How the model is loaded (threads, precision, pack cache).
    pub model_options: ggufembed::Options,
    /// Address to listen on (a host name or an IP address).
    pub host: String,
    /// Port to listen on; `0` picks a free one (printed when listening).
    pub port: u16,
    /// Most tokens run through the model at once, gathered from every waiting request (at
    /// least `max_input_tokens`).
    pub max_batch_tokens: usize,
    /// Most inputs in one request (more get 422).
    pub max_client_batch_size: usize,
    /// Most requests in flight at once; more get 429 at once.
    pub max_concurrent_requests: usize,
    /// Most tokens of one input, special tokens and prompt included; `None`: the model's context.
    pub max_input_tokens: Option<usize>,
    /// Cut longer texts to `max_input_tokens` instead of answering 422 (a request can still
    /// choose with TEI's `truncate`).
    pub auto_truncate: bool,
    /// Largest request body in bytes (more gets 413).
    pub payload_limit: usize,
    /// The task prompt of requests that name none (`query`, `document`, or one of the model's).
    pub default_prompt: Option<String>,
    /// If set, every route but `/health` needs `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// How long a client may take to send a request's headers, and again its body (408 after).
    pub read_timeout: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Print a line to standard error when listening, loaded, and shutting down.
    pub log: bool,
}

impl Config {
    /// The defaults for `model`: 127.0.0.1:8080 and the `DEFAULT_*` limits.
    pub fn new(model: impl Into<PathBuf>) -> Config {
        Config {
            model: model.into(),
            model_options: ggufembed::Options::default(),
            host: "127.0.0.1".to_owned(),
            port: 8080,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
            max_client_batch_size: DEFAULT_MAX_CLIENT_BATCH_SIZE,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_input_tokens: None,
            auto_truncate: false,
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
            default_prompt: None,
            api_key: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            log: true,
        }
    }

    /// Sets [`Config::port`].
    #[must_use]
    pub fn port(mut self, port: u16) -> Config {
        self.port = port;
        self
    }

    /// Sets [`Config::max_client_batch_size`].
    #[must_use]
    pub fn max_client_batch_size(mut self, n: usize) -> Config {
        self.max_client_batch_size = n;
        self
    }
}
