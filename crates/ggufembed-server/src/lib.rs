//! An embedding server for GGUF models: the OpenAI (`POST /v1/embeddings`) and
//! text-embeddings-inference (`POST /embed`, `POST /tokenize`) APIs, plus `GET /health`,
//! `GET /info` and `GET /metrics` (Prometheus text). `gemma-embed serve` is this crate.
//!
//! ```no_run
//! let config = ggufembed_server::Config::new(ggufembed::default_model_path()).port(8080);
//! ggufembed_server::run(config)?; // until SIGTERM or SIGINT
//! # Ok::<(), ggufembed_server::ServerError>(())
//! ```
//!
//! # How requests are served
//!
//! HTTP runs on tokio (axum routes over hyper); the model never runs on the async threads.
//! A request's texts are tokenised on tokio's blocking pool, then its token sequences go through
//! a bounded channel to one batching thread, which gathers the sequences of every waiting request
//! into runs of the model of at most `max_batch_tokens` tokens and hands each request its raw
//! vectors back. The runtime gives every sequence the same bits whatever batch it runs in, and
//! each request cuts (Matryoshka) and normalises its own vectors exactly as
//! [`ggufembed::Model::embed_with`] does, so an answer is bit-identical to embedding the text
//! alone with the library, under any load.
//!
//! # Errors
//!
//! A client's mistake is answered with a 4xx status and a JSON error in the API's shape
//! (OpenAI: `{"error":{"message","type","param","code"}}`; TEI: `{"error","error_type"}`) and
//! never harms another request: body over the payload limit 413, invalid JSON or UTF-8 400,
//! wrong field types or values 422, missing or wrong API key 401, past the concurrency limit 429
//! at once, a body slower than the read timeout 408. A 5xx means the server itself failed (503
//! while the model loads).
//!
//! # Shutdown
//!
//! On SIGTERM or SIGINT the server stops accepting connections, answers every request it has
//! accepted, and [`run`] returns `Ok`.

mod api;
mod batcher;
mod config;
mod error;
mod metrics;
mod server;

pub use config::{
    Config, DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_CLIENT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_PAYLOAD_LIMIT, DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use error::ServerError;
pub use server::{run, serve};
