//! Errors: [`ServerError`] for starting and running the server, [`ApiError`] for answers to
//! requests (rendered in the OpenAI or the text-embeddings-inference shape).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound or the async runtime could not start.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error outside of any one connection (runtime start, signal handlers, threads).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The model could not be loaded.
    #[error("cannot load the model: {0}")]
    Model(#[from] ggufembed::Error),
    /// A setting does not work with the loaded model or with another setting.
    #[error("invalid setting --{option}: {reason}")]
    Config {
        /// The setting's name (as a command-line flag).
        option: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// Which API's error shape an answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// `{"error","error_type"}`.
    Tei,
}

impl Flavor {
    /// The flavor of the routes under `path`: OpenAI under `/v1/`, TEI elsewhere.
    pub(crate) fn of_path(path: &str) -> Flavor {
        if path == "/v1" || path.starts_with("/v1/") {
            Flavor::OpenAi
        } else {
            Flavor::Tei
        }
    }
}

/// An error answered to a client: an HTTP status and a message that says what to change.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, if one is (OpenAI's `param`).
    pub param: Option<String>,
    /// Machine-readable code (OpenAI's `code`), e.g. `"context_length_exceeded"`.
    pub code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 422: a well-formed request whose content cannot be served.
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// OpenAI's `type` for this status.
    fn openai_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::NOT_FOUND => "not_found_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// TEI's `error_type` for this status.
    fn tei_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::TOO_MANY_REQUESTS => "Overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "Unhealthy",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            StatusCode::REQUEST_TIMEOUT => "Timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            StatusCode::BAD_REQUEST => "BadRequest",
            s if s.is_server_error() => "Backend",
            _ => "Validation",
        }
    }

    /// The answer in `flavor`'s shape.
    pub(crate) fn into_response_as(self, flavor: Flavor) -> Response {
        let body = match flavor {
            Flavor::OpenAi => serde_json::json!({
                "error": {
                    "message": self.message,
                    "type": self.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Flavor::Tei => serde_json::json!({
                "error": self.message,
                "error_type": self.tei_type(),
            }),
        };
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
