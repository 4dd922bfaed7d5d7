//! The HTTP side: routes, the guard every API request passes (API key, concurrency limit,
//! metrics), model loading, the accept loop and graceful shutdown.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ggufembed::{Model, Prompt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::api;
use crate::batcher::{Batcher, Job};
use crate::error::{ApiError, Flavor, ServerError};
use crate::metrics::Metrics;
use crate::Config;

/// What every handler shares.
pub(crate) struct AppState {
    pub config: Config,
    /// Set once the model is loaded.
    pub engine: OnceLock<Engine>,
    pub metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
}

/// The loaded model and the way to its batching thread.
pub(crate) struct Engine {
    pub model: Arc<Model>,
    pub jobs: mpsc::Sender<Job>,
    pub max_input_tokens: usize,
    pub default_prompt: Prompt,
    /// The name answers carry when a request names no model (the file name without `.gguf`).
    pub name: String,
}

/// The routes that count in the metrics, and whether each is an API route (API key and
/// concurrency limit apply).
const ROUTES: &[(&str, bool)] = &[
    ("/v1/embeddings", true),
    ("/v1/models", false),
    ("/embed", true),
    ("/tokenize", true),
    ("/health", false),
    ("/info", false),
    ("/metrics", false),
];

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/embeddings", post(api::openai_embeddings))
        .route("/v1/models", get(models))
        .route("/embed", post(api::tei_embed))
        .route("/tokenize", post(api::tei_tokenize))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Lowers the in-flight gauge (API requests) when a request ends, however it ends.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight().fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks the API key and the concurrency limit, and counts the request.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let (route, limited) = ROUTES
        .iter()
        .find(|(r, _)| Some(*r) == matched.as_deref())
        .copied()
        .unwrap_or(("other", false));
    let flavor = Flavor::of_path(route);
    let response = 'answer: {
        if let Some(key) = &state.config.api_key {
            if route != "/health" && !authorized(request.headers(), key) {
                break 'answer ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong API key: send the header `Authorization: Bearer KEY`",
                )
                .with_code("invalid_api_key")
                .into_response_as(flavor);
            }
        }
        let _permit = if limited {
            match Arc::clone(&state.permits).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let max = state.config.max_concurrent_requests;
                    let mut response = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "the server is answering its limit of {max} concurrent requests \
                             (--max-concurrent-requests); retry shortly"
                        ),
                    )
                    .with_code("too_many_requests")
                    .into_response_as(flavor);
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    break 'answer response;
                }
            }
        } else {
            None
        };
        let _in_flight = _permit.is_some().then(|| {
            state.metrics.in_flight().fetch_add(1, Ordering::Relaxed);
            InFlight(&state.metrics)
        });
        next.run(request).await
    };
    state.metrics.request_done(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Whether `headers` carry `Authorization: Bearer KEY` (compared in constant time).
fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let (a, b) = (token.trim().as_bytes(), key.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.engine.get().is_some() {
        (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

fn loading() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the model is still loading; retry when /health answers 200",
    )
    .into_response_as(Flavor::Tei)
}

async fn info(State(state): State<Arc<AppState>>) -> Response {
    let Some(engine) = state.engine.get() else {
        return loading();
    };
    let model = &engine.model;
    let info = model.info();
    let config = &state.config;
    let prompts: serde_json::Map<String, serde_json::Value> = model
        .prompts()
        .iter()
        .map(|(name, text)| (name.clone(), json!(text)))
        .collect();
    let default_prompt = model
        .prompt_text(&engine.default_prompt)
        .unwrap_or_default();
    axum::Json(json!({
        "model_id": engine.name,
        "model_path": model.path().display().to_string(),
        "model_name": info.name,
        "architecture": info.architecture,
        "model_type": "embedding",
        "weight_type": info.weight_type,
        "dimensions": model.output_dim(),
        "matryoshka_dimensions": model.dimensions(),
        "context_length": model.context_length(),
        "vocab_size": info.vocab_size,
        "prompts": prompts,
        "default_prompt": default_prompt,
        "backend": model.backend(),
        "threads": model.threads(),
        "limits": {
            "max_batch_tokens": config.max_batch_tokens,
            "max_client_batch_size": config.max_client_batch_size,
            "max_concurrent_requests": config.max_concurrent_requests,
            "max_input_tokens": engine.max_input_tokens,
            "auto_truncate": config.auto_truncate,
            "payload_limit": config.payload_limit,
            "read_timeout_seconds": config.read_timeout.as_secs_f64(),
        },
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let Some(engine) = state.engine.get() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading; retry when /health answers 200",
        )
        .into_response_as(Flavor::OpenAi);
    };
    axum::Json(json!({
        "object": "list",
        "data": [{"id": engine.name, "object": "model", "created": 0, "owned_by": "ggufembed"}],
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {path}; the routes are POST /v1/embeddings, POST /embed, POST /tokenize, \
             GET /health, GET /info, GET /metrics, GET /v1/models"
        ),
    )
    .into_response_as(Flavor::of_path(&path))
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {path}", request.method()),
    )
    .into_response_as(Flavor::of_path(&path))
}

/// Loads the model, checks the settings that depend on it and starts the batching thread.
async fn load(state: Arc<AppState>) -> Result<Batcher, ServerError> {
    let config = state.config.clone();
    let model = tokio::task::spawn_blocking(move || {
        Model::open(&config.model, config.model_options.clone())
    })
    .await
    .map_err(|e| ServerError::Io {
        what: "the model loader stopped",
        source: std::io::Error::other(e.to_string()),
    })??;
    let config = &state.config;
    let context = model.context_length();
    let max_input_tokens = config.max_input_tokens.unwrap_or(context);
    if max_input_tokens < 3 || max_input_tokens > context {
        return Err(ServerError::Config {
            option: "max-input-tokens",
            reason: format!(
                "{max_input_tokens} is not between 3 and the model's context of {context}"
            ),
        });
    }
    if config.max_batch_tokens < max_input_tokens {
        return Err(ServerError::Config {
            option: "max-batch-tokens",
            reason: format!(
                "{} is less than the longest input ({max_input_tokens} tokens, --max-input-tokens)",
                config.max_batch_tokens
            ),
        });
    }
    let default_prompt = config
        .default_prompt
        .as_deref()
        .map_or(Prompt::None, |name| name.parse().unwrap_or_default());
    if let Err(e) = model.prompt_text(&default_prompt) {
        return Err(ServerError::Config {
            option: "default-prompt",
            reason: e.to_string(),
        });
    }
    let name = model
        .path()
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    let model = Arc::new(model);
    let batcher = Batcher::start(
        Arc::clone(&model),
        config.max_batch_tokens,
        config.max_concurrent_requests,
        Arc::clone(&state.metrics),
    )
    .map_err(|source| ServerError::Io {
        what: "cannot start the batching thread",
        source,
    })?;
    let engine = Engine {
        model,
        jobs: batcher.sender(),
        max_input_tokens,
        default_prompt,
        name,
    };
    // `load` runs once per state, so the cell is empty.
    let _ = state.engine.set(engine);
    Ok(batcher)
}

fn check(config: &Config) -> Result<(), ServerError> {
    let positive = [
        ("max-batch-tokens", config.max_batch_tokens),
        ("max-client-batch-size", config.max_client_batch_size),
        ("max-concurrent-requests", config.max_concurrent_requests),
        ("payload-limit", config.payload_limit),
    ];
    for (option, value) in positive {
        if value == 0 {
            return Err(ServerError::Config {
                option,
                reason: "must be at least 1".into(),
            });
        }
    }
    if config.max_concurrent_requests > Semaphore::MAX_PERMITS {
        return Err(ServerError::Config {
            option: "max-concurrent-requests",
            reason: format!("must be at most {}", Semaphore::MAX_PERMITS),
        });
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` completes; then stops accepting, lets the requests in
/// flight finish (up to [`Config::shutdown_timeout`]) and returns.
///
/// `/health` answers 503 until the model is loaded (in the background, after the listener is up).
/// A model that fails to load, or settings that do not fit it, end the server with the error.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    check(&config)?;
    let log = config.log;
    let read_timeout = config.read_timeout;
    let shutdown_timeout = config.shutdown_timeout;
    let state = Arc::new(AppState {
        permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        config,
        engine: OnceLock::new(),
        metrics: Arc::new(Metrics::new()),
    });
    let app = router(Arc::clone(&state));
    let loader = tokio::spawn(load(Arc::clone(&state)));
    tokio::pin!(loader);
    tokio::pin!(shutdown);
    let graceful = GracefulShutdown::new();
    let mut batcher = None;
    let mut loaded = false;
    let load_started = Instant::now();
    let failure = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            result = &mut loader, if !loaded => {
                loaded = true;
                match result {
                    Ok(Ok(b)) => {
                        batcher = Some(b);
                        if log {
                            if let Some(engine) = state.engine.get() {
                                eprintln!(
                                    "gemma-embed serve: model {} loaded in {:.0} ms ({} threads, backend {})",
                                    engine.model.path().display(),
                                    load_started.elapsed().as_secs_f64() * 1e3,
                                    engine.model.threads(),
                                    engine.model.backend(),
                                );
                            }
                        }
                    }
                    Ok(Err(e)) => break Some(e),
                    Err(e) => break Some(ServerError::Io {
                        what: "the model loader stopped",
                        source: std::io::Error::other(e.to_string()),
                    }),
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or a connection reset before it was accepted:
                        // wait a moment instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(read_timeout)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        }
    };
    drop(listener);
    if log && failure.is_none() {
        eprintln!(
            "gemma-embed serve: shutting down; finishing {} requests in flight",
            state.metrics.in_flight().load(Ordering::Relaxed)
        );
    }
    let _ = tokio::time::timeout(shutdown_timeout, graceful.shutdown()).await;
    drop(app);
    drop(state);
    if let Some(batcher) = batcher {
        let _ = tokio::time::timeout(shutdown_timeout, batcher.finish()).await;
    }
    if log && failure.is_none() {
        eprintln!("gemma-embed serve: stopped");
    }
    failure.map_or(Ok(()), Err)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, ServerError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let io = |source| ServerError::Io {
            what: "cannot install the signal handlers",
            source,
        };
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs the server until SIGTERM or SIGINT, on its own async runtime; returns when the requests
/// in flight are answered.
///
/// Prints (when [`Config::log`] is set) `gemma-embed serve: listening on http://ADDR` to standard
/// error once the socket is bound (with `port` 0 this is how to learn the port), then a line
/// when the model is loaded and when shutting down.
pub fn run(config: Config) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("ggufembed-http")
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            what: "cannot start the async runtime",
            source,
        })?;
    runtime.block_on(async move {
        check(&config)?;
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|source| ServerError::Bind {
                addr: format!("{}:{}", config.host, config.port),
                source,
            })?;
        let shutdown = shutdown_signal()?;
        if config.log {
            match listener.local_addr() {
                Ok(addr) => eprintln!("gemma-embed serve: listening on http://{addr}"),
                Err(e) => eprintln!("gemma-embed serve: listening (address unknown: {e})"),
            }
        }
        serve(listener, config, shutdown).await
    })
}
