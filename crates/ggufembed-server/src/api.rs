//! The routes: request parsing and validation, and the answers.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ggufembed::tokenizer::{EncodeOptions, PieceType, Truncation};
use ggufembed::{Model, Prompt};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::batcher::Job;
use crate::error::{ApiError, Flavor};
use crate::metrics::Timing;
use crate::server::{AppState, Engine};

/// One input of a request: a text, or token ids given directly.
enum Input {
    Text(String),
    Ids(Vec<u32>),
}

/// Which end of an over-long text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Keep the start (cut the end), like sentence-transformers.
    Right,
    /// Keep the end.
    Left,
}

/// A JSON answer with status 200.
fn json_ok(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {e}"),
        )
        .into_response_as(Flavor::Tei),
    }
}

fn engine(state: &AppState) -> Result<&Engine, ApiError> {
    state.engine.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading; retry when /health answers 200",
        )
    })
}

/// Reads the body (within the payload limit and the read timeout) as a JSON object.
async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let limit = state.config.payload_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the payload limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.config.read_timeout;
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within the read timeout of {} s",
                    timeout.as_secs_f64()
                ),
            )
        })?
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                )
            }
        })?;
    let bytes = collected.to_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the request body is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty; send a JSON object",
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the request body must be a JSON object, not {}",
                type_name(&other)
            ),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Optional fields of a request body, each checked for its type (`null` counts as absent).
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn wrong(key: &str, expected: &str, got: &Value) -> ApiError {
        ApiError::invalid(
            key,
            format!("`{key}` must be {expected}, not {}", type_name(got)),
        )
    }

    fn str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Self::wrong(key, "a string", other)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(Self::wrong(key, "true or false", other)),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a positive integer", v)),
        }
    }
}

/// The inputs of `field`: a string, an array of strings, an array of token ids, or an array of
/// arrays of token ids.
fn parse_inputs(
    map: &Map<String, Value>,
    field: &str,
    max_inputs: usize,
    vocab: usize,
    allow_ids: bool,
) -> Result<Vec<Input>, ApiError> {
    let expected = if allow_ids {
        "a string, an array of strings, an array of token ids or an array of arrays of token ids"
    } else {
        "a string or an array of strings"
    };
    let value = match map.get(field) {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                field,
                format!("missing field `{field}`: give {expected}"),
            ))
        }
        Some(v) => v,
    };
    let text = |s: &str, at: String| -> Result<Input, ApiError> {
        if s.is_empty() {
            Err(ApiError::invalid(
                field,
                format!("{at} is an empty string: there is nothing to embed; send at least one character"),
            ))
        } else {
            Ok(Input::Text(s.to_owned()))
        }
    };
    let ids = |items: &[Value], at: String| -> Result<Input, ApiError> {
        if items.is_empty() {
            return Err(ApiError::invalid(
                field,
                format!("{at} is an empty array of token ids: there is nothing to embed"),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(j, v)| match v.as_u64() {
                Some(id) if id < vocab as u64 => Ok(id as u32),
                Some(id) => Err(ApiError::invalid(
                    field,
                    format!(
                        "{at}[{j}] = {id} is not a token id of this model (its vocabulary has {vocab} tokens, ids 0 to {})",
                        vocab.saturating_sub(1)
                    ),
                )),
                None => Err(ApiError::invalid(
                    field,
                    format!("{at}[{j}] must be a token id (an integer from 0), not {v}"),
                )),
            })
            .collect::<Result<Vec<u32>, ApiError>>()
            .map(Input::Ids)
    };
    let inputs = match value {
        Value::String(s) => vec![text(s, format!("`{field}`"))?],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` is an empty array: give at least one input"),
            ))
        }
        Value::Array(items) if allow_ids && items[0].is_number() => {
            vec![ids(items, format!("`{field}`"))?]
        }
        Value::Array(items) => {
            if items.len() > max_inputs {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "`{field}` has {} inputs, more than this server's limit of {max_inputs} per request (--max-client-batch-size); split it",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => text(s, format!("`{field}[{i}]`")),
                    Value::Array(inner) if allow_ids => ids(inner, format!("`{field}[{i}]`")),
                    other => Err(ApiError::invalid(
                        field,
                        format!(
                            "`{field}[{i}]` is {}; `{field}` must be {expected}",
                            type_name(other)
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        other => {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` must be {expected}, not {}", type_name(other)),
            ))
        }
    };
    Ok(inputs)
}

/// The prompt prefix for a request's `prompt_name`, or the server's default.
fn prompt_prefix(engine: &Engine, name: Option<&str>) -> Result<String, ApiError> {
    let prompt = match name {
        Some(name) => name.parse::<Prompt>().unwrap_or_default(),
        None => engine.default_prompt.clone(),
    };
    engine
        .model
        .prompt_text(&prompt)
        .map(str::to_owned)
        .map_err(|e| ApiError::invalid("prompt_name", e.to_string()))
}

/// The output dimension asked for, checked against the model's Matryoshka sizes.
fn dimension(engine: &Engine, fields: &Fields<'_>) -> Result<usize, ApiError> {
    let dims = engine.model.dimensions();
    match fields.uint("dimensions")? {
        None => Ok(engine.model.output_dim()),
        Some(d) if dims.iter().any(|&x| x as u64 == d) => Ok(d as usize),
        Some(d) => Err(ApiError::invalid(
            "dimensions",
            format!(
                "dimensions {d} is not offered by this model; choose one of {}",
                dims.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Tokenises the texts (off the async threads) and checks every input against the length limit.
async fn to_sequences(
    state: &AppState,
    engine: &Engine,
    inputs: Vec<Input>,
    prefix: String,
    truncate: Option<Direction>,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let model = Arc::clone(&engine.model);
    let max = engine.max_input_tokens;
    let start = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| match input {
                Input::Text(text) => encode(&model, &text, &prefix, max, truncate, i),
                Input::Ids(ids) if ids.len() > max => Err(too_long(i, ids.len(), max, true)),
                Input::Ids(ids) => Ok(ids),
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("tokenisation failed: {e}"),
        )
    })?;
    state
        .metrics
        .time(Timing::Tokenize, start.elapsed().as_secs_f64());
    result
}

fn too_long(index: usize, tokens: usize, max: usize, ids: bool) -> ApiError {
    let what = if ids { "token ids" } else { "tokens" };
    let hint = if ids {
        "send fewer ids"
    } else {
        "shorten it, or ask for truncation (`truncate: true`, or start the server with --auto-truncate)"
    };
    ApiError::invalid(
        "input",
        format!(
            "input {index} has {tokens} {what} (prompt and special tokens included), more than the limit of {max}; {hint}"
        ),
    )
    .with_code("context_length_exceeded")
}

/// The ids [`ggufembed::Model::embed_with`] would feed the model for `prefix + text`, cut to
/// `max` tokens if `truncate` says so.
fn encode(
    model: &Model,
    text: &str,
    prefix: &str,
    max: usize,
    truncate: Option<Direction>,
    index: usize,
) -> Result<Vec<u32>, ApiError> {
    let tokenizer = model.tokenizer();
    let full;
    let text = if prefix.is_empty() {
        text
    } else {
        full = format!("{prefix}{text}");
        &full
    };
    let options = EncodeOptions {
        add_special_tokens: true,
        parse_special: true,
        max_length: Some(max),
        truncation: match truncate {
            Some(Direction::Right) => Truncation::Truncate,
            _ => Truncation::Error,
        },
    };
    match tokenizer.encode_with(text, &options) {
        Ok(ids) => Ok(ids),
        Err(ggufembed::TokenizerError::TooLong { tokens, max }) => {
            if truncate == Some(Direction::Left) {
                let unlimited = EncodeOptions {
                    max_length: None,
                    ..options
                };
                let ids = tokenizer
                    .encode_with(text, &unlimited)
                    .map_err(|e| ApiError::invalid("input", format!("input {index}: {e}")))?;
                Ok(keep_end(
                    &ids,
                    max,
                    tokenizer.add_bos(),
                    tokenizer.add_eos(),
                ))
            } else {
                Err(too_long(index, tokens, max, false))
            }
        }
        Err(e) => Err(ApiError::invalid("input", format!("input {index}: {e}"))),
    }
}

/// The last tokens of `ids` within `max`, the special tokens at its ends kept.
fn keep_end(ids: &[u32], max: usize, bos: bool, eos: bool) -> Vec<u32> {
    if ids.len() <= max {
        return ids.to_vec();
    }
    let head = usize::from(bos).min(ids.len());
    let tail = usize::from(eos).min(ids.len() - head);
    let body = max.saturating_sub(head + tail);
    let mut out = Vec::with_capacity(max);
    out.extend_from_slice(&ids[..head]);
    let end = ids.len() - tail;
    out.extend_from_slice(&ids[end - body.min(end - head)..end]);
    out.extend_from_slice(&ids[end..]);
    out
}

/// Sends the sequences to the batching thread and waits for their raw vectors.
async fn run_model(engine: &Engine, seqs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        seqs,
        reply,
        queued: Instant::now(),
    };
    let gone = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    };
    engine.jobs.send(job).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the model failed: {e}"),
        )
    })
}

/// Cuts a raw vector to `dim` and normalises it: what `Model::embed_with` does after the model.
fn finish(mut v: Vec<f32>, dim: usize, normalize: bool) -> Vec<f32> {
    v.truncate(dim);
    if normalize {
        ggufembed::l2_normalize(&mut v);
    }
    v
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingOut {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct OpenAiItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingOut,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct OpenAiList {
    object: &'static str,
    data: Vec<OpenAiItem>,
    model: String,
    usage: Usage,
}

/// `POST /v1/embeddings`.
pub(crate) async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    openai_embeddings_inner(&state, &headers, body)
        .await
        .unwrap_or_else(|e| e.into_response_as(Flavor::OpenAi))
}

async fn openai_embeddings_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = engine(state)?;
    let map = read_json(state, headers, body).await?;
    let fields = Fields(&map);
    let model_name = fields
        .str("model")?
        .map_or_else(|| engine.name.clone(), str::to_owned);
    fields.str("user")?;
    let base64 = match fields.str("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("encoding_format {other:?} is not offered; use \"float\" or \"base64\""),
            ))
        }
    };
    let dim = dimension(engine, &fields)?;
    let prefix = prompt_prefix(engine, fields.str("prompt_name")?)?;
    let inputs = parse_inputs(
        &map,
        "input",
        state.config.max_client_batch_size,
        engine.model.tokenizer().vocab_size(),
        true,
    )?;
    let truncate = state.config.auto_truncate.then_some(Direction::Right);
    let seqs = to_sequences(state, engine, inputs, prefix, truncate).await?;
    let tokens = seqs.iter().map(Vec::len).sum();
    let raw = run_model(engine, seqs).await?;
    let data = raw
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let v = finish(v, dim, true);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingOut::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingOut::Float(v)
            };
            OpenAiItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    Ok(json_ok(&OpenAiList {
        object: "list",
        data,
        model: model_name,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// `truncate` and `truncation_direction` of a TEI request.
fn tei_truncation(state: &AppState, fields: &Fields<'_>) -> Result<Option<Direction>, ApiError> {
    let truncate = fields
        .bool("truncate")?
        .unwrap_or(state.config.auto_truncate);
    let direction = match fields.str("truncation_direction")? {
        None => Direction::Right,
        Some(d) if d.eq_ignore_ascii_case("right") => Direction::Right,
        Some(d) if d.eq_ignore_ascii_case("left") => Direction::Left,
        Some(other) => {
            return Err(ApiError::invalid(
                "truncation_direction",
                format!("truncation_direction {other:?} is not one of \"Right\", \"Left\""),
            ))
        }
    };
    Ok(truncate.then_some(direction))
}

/// `POST /embed` (text-embeddings-inference).
pub(crate) async fn tei_embed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tei_embed_inner(&state, &headers, body)
        .await
        .unwrap_or_else(|e| e.into_response_as(Flavor::Tei))
}

async fn tei_embed_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = engine(state)?;
    let map = read_json(state, headers, body).await?;
    let fields = Fields(&map);
    let normalize = fields.bool("normalize")?.unwrap_or(true);
    let truncate = tei_truncation(state, &fields)?;
    let dim = dimension(engine, &fields)?;
    let prefix = prompt_prefix(engine, fields.str("prompt_name")?)?;
    let inputs = parse_inputs(
        &map,
        "inputs",
        state.config.max_client_batch_size,
        engine.model.tokenizer().vocab_size(),
        true,
    )?;
    let seqs = to_sequences(state, engine, inputs, prefix, truncate).await?;
    let raw = run_model(engine, seqs).await?;
    let out: Vec<Vec<f32>> = raw.into_iter().map(|v| finish(v, dim, normalize)).collect();
    Ok(json_ok(&out))
}

#[derive(Serialize)]
struct TokenOut {
    id: u32,
    /// The bytes of the input this token covers (lossy where a token ends inside a character).
    text: String,
    /// The vocabulary's piece (spaces as `▁`).
    piece: String,
    special: bool,
    /// Byte offset in the (prompted) text where the token starts.
    start: usize,
    /// Byte offset just past the token's end.
    stop: usize,
}

/// `POST /tokenize` (text-embeddings-inference, with the vocabulary pieces added).
pub(crate) async fn tei_tokenize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tei_tokenize_inner(&state, &headers, body)
        .await
        .unwrap_or_else(|e| e.into_response_as(Flavor::Tei))
}

async fn tei_tokenize_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = engine(state)?;
    let map = read_json(state, headers, body).await?;
    let fields = Fields(&map);
    let special = fields.bool("add_special_tokens")?.unwrap_or(true);
    let prefix = prompt_prefix(engine, fields.str("prompt_name")?)?;
    let texts: Vec<String> = parse_inputs(
        &map,
        "inputs",
        state.config.max_client_batch_size,
        engine.model.tokenizer().vocab_size(),
        false,
    )?
    .into_iter()
    .filter_map(|input| match input {
        Input::Text(t) => Some(format!("{prefix}{t}")),
        Input::Ids(_) => None,
    })
    .collect();
    let model = Arc::clone(&engine.model);
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let options = EncodeOptions {
                    add_special_tokens: special,
                    ..EncodeOptions::default()
                };
                model
                    .tokenizer()
                    .encode_with(text, &options)
                    .map(|ids| with_offsets(&model, text, &ids, special))
                    .map_err(|e| ApiError::invalid("inputs", format!("input {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("tokenisation failed: {e}"),
        )
    })??;
    state
        .metrics
        .time(Timing::Tokenize, start.elapsed().as_secs_f64());
    Ok(json_ok(&out))
}

/// Each token of `text` with the bytes it covers.
fn with_offsets(model: &Model, text: &str, ids: &[u32], special: bool) -> Vec<TokenOut> {
    let tokenizer = model.tokenizer();
    let bytes = text.as_bytes();
    let mut at = 0usize;
    let last = ids.len().saturating_sub(1);
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let piece = tokenizer.id_to_piece(id).unwrap_or_default();
            let kind = tokenizer.token_type(id);
            let added = special
                && ((i == 0 && tokenizer.add_bos() && Some(id) == tokenizer.bos_id())
                    || (i == last && tokenizer.add_eos() && Some(id) == tokenizer.eos_id()));
            let len = if added {
                0
            } else {
                match kind {
                    Some(PieceType::Byte) => 1,
                    Some(PieceType::Unknown) => bytes.get(at).map_or(0, |&b| utf8_len(b)),
                    _ => piece.replace('\u{2581}', " ").len(),
                }
            };
            let start = at.min(bytes.len());
            let stop = (at + len).min(bytes.len());
            at = stop;
            TokenOut {
                id,
                text: String::from_utf8_lossy(&bytes[start..stop]).into_owned(),
                piece: piece.to_owned(),
                special: added || kind == Some(PieceType::Control),
                start,
                stop,
            }
        })
        .collect()
}

/// Length of the UTF-8 character that starts with byte `b` (1 for a stray continuation byte).
fn utf8_len(b: u8) -> usize {
    match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xFF => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::keep_end;

    #[test]
    fn keep_end_keeps_special_tokens() {
        let ids = [2, 10, 11, 12, 13, 1];
        assert_eq!(keep_end(&ids, 4, true, true), vec![2, 12, 13, 1]);
        assert_eq!(keep_end(&ids, 6, true, true), ids.to_vec());
        assert_eq!(keep_end(&ids, 2, true, true), vec![2, 1]);
        assert_eq!(keep_end(&[10, 11, 12], 2, false, false), vec![11, 12]);
    }
}
