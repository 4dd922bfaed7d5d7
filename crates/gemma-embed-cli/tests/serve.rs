//! `gemma-embed serve` end to end: the real binary on a free loopback port, the real model, a real
//! HTTP client. Answers are compared bit for bit with the library's embeddings of each text alone.
//!
//! Needs the Q8_0 model in the cache directory (or `GGUFEMBED_MODEL`): `cargo xtask fetch-model`.
//! The OpenAI Python client test needs `pip install openai`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ggufembed::{EmbedOptions, Model, Options, Prompt};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gemma-embed");

fn model_path() -> PathBuf {
    let path = ggufembed::default_model_path();
    assert!(
        path.is_file(),
        "model {} not found: run `cargo xtask fetch-model` (or set GGUFEMBED_MODEL)",
        path.display()
    );
    path
}

/// The library's model, opened once for all tests of this file.
fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::open(model_path(), Options::default().threads(2)).expect("cannot open the model")
    })
}

/// What the library gives for `text` alone (remembered: some texts are checked many times).
fn expected(text: &str, prompt: Prompt, dim: usize, normalize: bool) -> Vec<f32> {
    type Key = (String, String, usize, bool);
    static SEEN: OnceLock<Mutex<HashMap<Key, Vec<f32>>>> = OnceLock::new();
    let key = (text.to_owned(), format!("{prompt:?}"), dim, normalize);
    let seen = SEEN.get_or_init(Default::default);
    if let Some(v) = seen.lock().unwrap().get(&key) {
        return v.clone();
    }
    let options = EmbedOptions::default()
        .prompt(prompt)
        .dim(dim)
        .normalize(normalize);
    let v = model()
        .embed_one_with(text, options)
        .expect("library embedding");
    seen.lock().unwrap().insert(key, v.clone());
    v
}

/// A running `gemma-embed serve`; killed when dropped unless stopped.
struct Server {
    child: Option<Child>,
    base: String,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let model = model_path();
        let mut args = vec![
            "serve",
            "--model",
            model.to_str().expect("model path is UTF-8"),
            "--threads",
            "2",
            "--port",
            "0",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start gemma-embed serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not say where it listens: {}",
                    log.lock().unwrap()
                )
            });
        let server = Server {
            child: Some(child),
            base: format!("http://{addr}"),
            addr,
            log,
        };
        // /health answers 503 until the model is loaded.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, _) = server.get("/health", None);
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "/health before the model is loaded");
            assert!(
                Instant::now() < deadline,
                "the model did not load: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut request = agent().get(self.url(path));
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.call().expect("GET");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    }

    /// POSTs `body` (JSON text) and returns the status and the parsed answer.
    fn post(&self, agent: &ureq::Agent, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = agent
            .post(self.url(path))
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.send(body).expect("POST");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(100 << 20)
            .read_to_string()
            .expect("body");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer to {path} is not JSON ({e}): {text}"));
        (status, value)
    }

    /// Sends SIGTERM and waits for the exit.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a float array ({e}): {v}"))
}

fn from_base64(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("valid base64");
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[track_caller]
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert!(
        same_bits(got, want),
        "{what}: not bit-identical to the library (lengths {} and {}; first values {:?} vs {:?})",
        got.len(),
        want.len(),
        &got[..got.len().min(4)],
        &want[..want.len().min(4)]
    );
}

/// Texts of many sizes: short lines of the corpus, special tokens, and long documents.
fn texts() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpus");
    let lines = std::fs::read_to_string(root.join("lines.jsonl")).expect("corpus lines");
    let mut out: Vec<String> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<String>(l).ok())
        .filter(|t| !t.trim().is_empty())
        .step_by(97)
        .take(12)
        .collect();
    out.push("Hello, world!".into());
    out.push("<start_of_turn>user\nwhich planet is red?<end_of_turn>".into());
    out.push("日本語のテキストと emoji 🎉 and ünïcödé".into());
    out.push("a".into());
    let docs = std::fs::read_to_string(root.join("docs.jsonl")).expect("corpus docs");
    let long = docs
        .lines()
        .filter_map(|l| serde_json::from_str::<String>(l).ok())
        .find(|d| d.len() > 3000)
        .expect("a long document");
    out.push(long.chars().take(1200).collect());
    out
}

#[test]
fn answers_are_bit_identical_to_the_library() {
    let server = Server::start(&[]);
    let agent = agent();
    let texts = texts();

    // All texts in one OpenAI request, floats and base64, two dimensions.
    for (format, dim) in [
        ("float", 768),
        ("base64", 768),
        ("float", 256),
        ("base64", 128),
    ] {
        let body = json!({"input": texts, "model": "gemma", "encoding_format": format, "dimensions": dim, "user": "u1"});
        let (status, answer) = server.post(&agent, "/v1/embeddings", &body.to_string(), None);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["object"], "list");
        assert_eq!(answer["model"], "gemma");
        let data = answer["data"].as_array().expect("data");
        assert_eq!(data.len(), texts.len());
        let mut tokens = 0;
        for (i, (item, text)) in data.iter().zip(&texts).enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
            let got = match format {
                "float" => floats(&item["embedding"]),
                _ => from_base64(&item["embedding"]),
            };
            assert_bits(
                &got,
                &expected(text, Prompt::None, dim, true),
                &format!("{format} {dim} text {i}"),
            );
            tokens += model().tokenize(text).unwrap().len();
        }
        assert_eq!(answer["usage"]["prompt_tokens"], tokens);
        assert_eq!(answer["usage"]["total_tokens"], tokens);
    }

    // One text per request, with a prompt; TEI with and without normalisation.
    for (i, text) in texts.iter().enumerate().step_by(3) {
        let body = json!({"input": text, "prompt_name": "query", "dimensions": 512});
        let (status, answer) = server.post(&agent, "/v1/embeddings", &body.to_string(), None);
        assert_eq!(status, 200, "{answer}");
        assert_bits(
            &floats(&answer["data"][0]["embedding"]),
            &expected(text, Prompt::Query, 512, true),
            &format!("query prompt, text {i}"),
        );
        for normalize in [true, false] {
            let body = json!({"inputs": [text, "second"], "normalize": normalize, "prompt_name": "document"});
            let (status, answer) = server.post(&agent, "/embed", &body.to_string(), None);
            assert_eq!(status, 200, "{answer}");
            assert_bits(
                &floats(&answer[0]),
                &expected(text, Prompt::Document, 768, normalize),
                &format!("/embed normalize={normalize}, text {i}"),
            );
        }
    }

    // Token ids in, as /tokenize gives them out.
    let text = &texts[12];
    let body = json!({"inputs": [text]});
    let (status, answer) = server.post(&agent, "/tokenize", &body.to_string(), None);
    assert_eq!(status, 200, "{answer}");
    let tokens = answer[0].as_array().expect("tokens");
    let ids: Vec<u32> = tokens
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, model().tokenize(text).unwrap());
    let covered: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(&covered, text, "the tokens' texts make up the input");
    assert_eq!(tokens[0]["special"], true);
    assert_eq!(tokens[1]["start"], 0);
    assert_eq!(tokens.last().unwrap()["stop"], text.len());
    let body = json!({"input": [ids.clone(), ids]});
    let (status, answer) = server.post(&agent, "/v1/embeddings", &body.to_string(), None);
    assert_eq!(status, 200, "{answer}");
    let want = expected(text, Prompt::None, 768, true);
    assert_bits(&floats(&answer["data"][1]["embedding"]), &want, "token ids");

    // /info and /metrics.
    let (status, info) = server.get("/info", None);
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["dimensions"], 768);
    assert_eq!(info["context_length"], 2048);
    assert_eq!(info["architecture"], "gemma-embedding");
    assert_eq!(info["limits"]["max_input_tokens"], 2048);
    assert!(info["prompts"]["query"].is_string());
    let (status, metrics) = server.get("/metrics", None);
    assert_eq!(status, 200);
    for needle in [
        "ggufembed_requests_total{route=\"/v1/embeddings\",status=\"200\"}",
        "ggufembed_inference_duration_seconds_bucket{le=\"+Inf\"}",
        "ggufembed_queue_duration_seconds_count",
        "ggufembed_tokenize_duration_seconds_count",
        "ggufembed_batch_inputs_bucket",
        "ggufembed_queue_depth 0",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
    assert!(server.stop().success());
}

#[test]
fn concurrent_clients_get_their_own_answers() {
    let server = Arc::new(Server::start(&["--max-batch-tokens", "2048"]));
    // Mostly short texts (1 to ~20 tokens), now and then one of ~100 tokens.
    let mut pool: Vec<String> = [
        "a",
        "Hello, world!",
        "which planet is red?",
        "Mars is the fourth planet from the Sun.",
        "日本語のテキスト",
        "<start_of_turn>user\nhi<end_of_turn>",
        "The quick brown fox jumps over the lazy dog, then sleeps in the afternoon sun.",
        "42",
    ]
    .map(String::from)
    .to_vec();
    pool.extend(texts().into_iter().take(6));
    pool.push(texts().into_iter().take(10).collect::<Vec<_>>().join(" "));
    let expected: Vec<(Vec<f32>, Vec<f32>)> = pool
        .iter()
        .map(|t| {
            (
                expected(t, Prompt::None, 768, true),
                expected(t, Prompt::None, 256, true),
            )
        })
        .collect();
    let expected = Arc::new(expected);
    let pool = Arc::new(pool);
    let clients: Vec<_> = (0..32u64)
        .map(|client| {
            let (server, pool, expected) = (Arc::clone(&server), Arc::clone(&pool), Arc::clone(&expected));
            std::thread::spawn(move || {
                let agent = agent();
                let mut seed = client * 7919 + 1;
                let mut next = move |n: usize| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 33) as usize % n
                };
                let mut answered = 0;
                for request in 0..50 {
                    let count = 1 + next(2);
                    // The longest text only now and then.
                    let picks: Vec<usize> = (0..count)
                        .map(|_| if next(50) == 0 { pool.len() - 1 } else { next(pool.len() - 1) })
                        .collect();
                    let inputs: Vec<&str> = picks.iter().map(|&i| pool[i].as_str()).collect();
                    let small = next(2) == 0;
                    let dim = if small { 256 } else { 768 };
                    let want = |k: usize| if small { &expected[picks[k]].1 } else { &expected[picks[k]].0 };
                    if request % 2 == 0 {
                        let body = json!({"input": inputs, "dimensions": dim, "encoding_format": "base64"});
                        let (status, answer) = server.post(&agent, "/v1/embeddings", &body.to_string(), None);
                        assert_eq!(status, 200, "client {client} request {request}: {answer}");
                        let data = answer["data"].as_array().unwrap();
                        assert_eq!(data.len(), count);
                        for (k, item) in data.iter().enumerate() {
                            assert_eq!(item["index"], k);
                            assert_bits(&from_base64(&item["embedding"]), want(k), &format!("client {client} request {request} input {k}"));
                        }
                    } else {
                        let body = json!({"inputs": inputs, "dimensions": dim});
                        let (status, answer) = server.post(&agent, "/embed", &body.to_string(), None);
                        assert_eq!(status, 200, "client {client} request {request}: {answer}");
                        let data = answer.as_array().unwrap();
                        assert_eq!(data.len(), count);
                        for (k, v) in data.iter().enumerate() {
                            assert_bits(&floats(v), want(k), &format!("client {client} request {request} input {k}"));
                        }
                    }
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert_eq!(answered, 32 * 50);
    let (_, metrics) = server.get("/metrics", None);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ggufembed_requests_total{route=\"/embed\",status=\"200\"}"))
        .expect("a count of /embed answers");
    assert!(line.ends_with(" 800"), "{line}");
    let server = Arc::into_inner(server).expect("clients are done");
    assert!(server.stop().success());
}

/// Sends raw bytes on a new connection and returns what the server answers (until it closes
/// the connection or a whole response with a Content-Length has arrived).
fn raw(addr: &str, request: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).expect("send");
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if let Some(length) = length {
                if buf.len() >= end + 4 + length {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    let body = &buf[end + 4..end + 4 + length];
                    let value = serde_json::from_slice(body).unwrap_or_else(|e| {
                        panic!(
                            "answer is not JSON ({e}): {}",
                            String::from_utf8_lossy(body)
                        )
                    });
                    return (status, value);
                }
            }
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "connection closed before a whole answer: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[track_caller]
fn assert_openai_error(status: u16, answer: &Value, want: u16, needle: &str) {
    assert_eq!(status, want, "{answer}");
    let error = &answer["error"];
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message: {answer}"));
    assert!(error["type"].is_string(), "{answer}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{answer}"
    );
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[track_caller]
fn assert_tei_error(status: u16, answer: &Value, want: u16, needle: &str) {
    assert_eq!(status, want, "{answer}");
    let message = answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {answer}"));
    assert!(answer["error_type"].is_string(), "{answer}");
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[test]
fn bad_requests_get_their_status_and_error_shape() {
    const KEY: &str = "sesame-123";
    let server = Server::start(&[
        "--max-client-batch-size",
        "4",
        "--payload-limit",
        "20000",
        "--max-input-tokens",
        "64",
        "--read-timeout",
        "1",
        "--max-concurrent-requests",
        "2",
        "--api-key",
        KEY,
    ]);
    let agent = agent();
    let post = |path: &str, body: &str| server.post(&agent, path, body, Some(KEY));

    // API key.
    let (status, answer) = server.post(&agent, "/v1/embeddings", r#"{"input":"a"}"#, None);
    assert_openai_error(status, &answer, 401, "API key");
    let (status, answer) = server.post(&agent, "/embed", r#"{"inputs":"a"}"#, Some("wrong"));
    assert_tei_error(status, &answer, 401, "API key");
    assert_eq!(server.get("/info", None).0, 401);
    assert_eq!(server.get("/health", None).0, 200, "/health needs no key");
    assert_eq!(server.get("/info", Some(KEY)).0, 200);

    // Syntax: 400.
    let (status, answer) = post("/v1/embeddings", r#"{"input": "a""#);
    assert_openai_error(status, &answer, 400, "not valid JSON");
    let (status, answer) = post("/embed", "");
    assert_tei_error(status, &answer, 400, "empty");
    let mut bad_utf8 = format!("POST /embed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n").into_bytes();
    bad_utf8.extend_from_slice(b"{\"inputs\":\"\xff\xfe\"}");
    let (status, answer) = raw(&server.addr, &bad_utf8);
    assert_tei_error(status, &answer, 400, "UTF-8");

    // Types and values: 422.
    let cases: &[(&str, &str, &str)] = &[
        (r#"[1,2]"#, "input", "JSON object"),
        (r#"{"model":"m"}"#, "input", "missing field `input`"),
        (r#"{"input":5}"#, "input", "must be a string"),
        (r#"{"input":[]}"#, "input", "empty array"),
        (r#"{"input":""}"#, "input", "empty string"),
        (
            r#"{"input":["a",""]}"#,
            "input",
            "`input[1]` is an empty string",
        ),
        (
            r#"{"input":["a",{"b":1}]}"#,
            "input",
            "`input[1]` is an object",
        ),
        (r#"{"input":["a","b","c","d","e"]}"#, "input", "limit of 4"),
        (
            r#"{"input":[1,2,300000]}"#,
            "input",
            "300000 is not a token id",
        ),
        (r#"{"input":[1,-2]}"#, "input", "must be a token id"),
        (r#"{"input":[[]]}"#, "input", "empty array of token ids"),
        (
            r#"{"input":"a","dimensions":300}"#,
            "dimensions",
            "choose one of 768, 512, 256, 128",
        ),
        (
            r#"{"input":"a","dimensions":"768"}"#,
            "dimensions",
            "positive integer",
        ),
        (
            r#"{"input":"a","encoding_format":"hex"}"#,
            "encoding_format",
            "base64",
        ),
        (
            r#"{"input":"a","encoding_format":1}"#,
            "encoding_format",
            "string",
        ),
        (
            r#"{"input":"a","prompt_name":"nope"}"#,
            "prompt_name",
            "no task prompt named",
        ),
    ];
    for (body, param, needle) in cases {
        let (status, answer) = post("/v1/embeddings", body);
        assert_openai_error(status, &answer, 422, needle);
        if *body != "[1,2]" {
            assert_eq!(answer["error"]["param"], *param, "{body}: {answer}");
        }
    }
    let long = "word ".repeat(200);
    let count = model().tokenize(&long).unwrap().len();
    let (status, answer) = post(
        "/v1/embeddings",
        &json!({"input": ["short", long]}).to_string(),
    );
    assert_openai_error(status, &answer, 422, &format!("input 1 has {count} tokens"));
    assert_eq!(answer["error"]["code"], "context_length_exceeded");
    for (body, needle) in [
        (
            json!({"inputs": long}),
            format!("input 0 has {count} tokens"),
        ),
        (json!({"inputs": 7}), "must be a string".into()),
        (
            json!({"inputs": "a", "normalize": "yes"}),
            "true or false".into(),
        ),
        (
            json!({"inputs": "a", "truncation_direction": "up"}),
            "truncation_direction".into(),
        ),
        (
            json!({"inputs": ["a", "b", "c", "d", "e"]}),
            "limit of 4".into(),
        ),
        (
            json!({"inputs": "a", "dimensions": 100}),
            "dimensions 100".into(),
        ),
    ] {
        let (status, answer) = post("/embed", &body.to_string());
        assert_tei_error(status, &answer, 422, &needle);
        assert_eq!(answer["error_type"], "Validation");
    }
    let (status, answer) = post("/tokenize", r#"{"inputs":[1,2]}"#);
    assert_tei_error(status, &answer, 422, "string");

    // Truncation on request: the first 63 tokens and <eos>, as the library cuts them.
    let (status, answer) = post(
        "/embed",
        &json!({"inputs": long, "truncate": true}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let tokenizer = model().tokenizer();
    let options = ggufembed::tokenizer::EncodeOptions {
        max_length: Some(64),
        ..Default::default()
    };
    let ids = tokenizer.encode_with(&long, &options).unwrap();
    assert_eq!(ids.len(), 64);
    let want = model()
        .embed_tokens(&[ids], EmbedOptions::default())
        .unwrap();
    assert_bits(&floats(&answer[0]), &want[0], "right-truncated text");
    let body = json!({"inputs": long, "truncate": true, "truncation_direction": "Left"});
    let (status, answer) = post("/embed", &body.to_string());
    assert_eq!(status, 200, "{answer}");
    let all = tokenizer.encode_with(&long, &Default::default()).unwrap();
    let mut ids = vec![all[0]];
    ids.extend_from_slice(&all[all.len() - 63..]);
    let want = model()
        .embed_tokens(&[ids], EmbedOptions::default())
        .unwrap();
    assert_bits(&floats(&answer[0]), &want[0], "left-truncated text");

    // A good request next to the bad ones still gets its answer.
    let (status, answer) = post("/v1/embeddings", r#"{"input":"Hello, world!"}"#);
    assert_eq!(status, 200, "{answer}");
    assert_bits(
        &floats(&answer["data"][0]["embedding"]),
        &expected("Hello, world!", Prompt::None, 768, true),
        "a good request",
    );

    // Routes and methods.
    let (status, answer) = post("/v2/embeddings", "{}");
    assert_tei_error(status, &answer, 404, "no route");
    let (status, body) = server.get("/v1/embeddings", Some(KEY));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_openai_error(status, &answer, 405, "not allowed");

    // Payload limit: declared, and sent without a length.
    let head = |extra: &str| {
        format!("POST /embed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n{extra}\r\n")
    };
    let (status, answer) = raw(&server.addr, head("Content-Length: 30000\r\n").as_bytes());
    assert_tei_error(status, &answer, 413, "payload limit of 20000 bytes");
    let mut chunked = head("Transfer-Encoding: chunked\r\n").into_bytes();
    chunked.extend_from_slice(format!("{:x}\r\n", 20001).as_bytes());
    chunked.extend(std::iter::repeat_n(b' ', 20001));
    chunked.extend_from_slice(b"\r\n");
    let (status, answer) = raw(&server.addr, &chunked);
    assert_tei_error(status, &answer, 413, "payload limit");

    // A half-sent body: 408 after the read timeout.
    let mut partial = head("Content-Length: 40\r\n").into_bytes();
    partial.extend_from_slice(b"{\"inputs\":");
    let (status, answer) = raw(&server.addr, &partial);
    assert_tei_error(status, &answer, 408, "read timeout");

    // Two requests in flight (their bodies held back) use up --max-concurrent-requests 2; a third
    // gets 429 at once; the two then finish normally.
    let body = br#"{"inputs":"held back"}"#;
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(head(&format!("Content-Length: {}\r\n", body.len())).as_bytes())
                .unwrap();
            s.write_all(&body[..5]).unwrap();
            s
        })
        .collect();
    wait_for_in_flight(&server, Some(KEY), 2);
    let (status, answer) = post("/embed", r#"{"inputs":"one too many"}"#);
    assert_tei_error(status, &answer, 429, "--max-concurrent-requests");
    let (status, answer) = post("/v1/embeddings", r#"{"input":"one too many"}"#);
    assert_openai_error(status, &answer, 429, "limit of 2 concurrent requests");
    let want = expected("held back", Prompt::None, 768, true);
    for s in &mut held {
        s.write_all(&body[5..]).unwrap();
        let (status, answer) = read_response(s);
        assert_eq!(status, 200, "{answer}");
        assert_bits(&floats(&answer[0]), &want, "a held-back request");
    }
    let (status, metrics) = server.get("/metrics", Some(KEY));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ggufembed_requests_total{route=\"/embed\",status=\"429\"} 1"),
        "{metrics}"
    );
    assert!(server.stop().success());
}

/// Waits until `/metrics` counts at least `n` API requests in flight.
fn wait_for_in_flight(server: &Server, key: Option<&str>, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = server.get("/metrics", key);
        let now: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("ggufembed_requests_in_flight "))
            .and_then(|v| v.parse().ok())
            .expect("an in-flight gauge");
        if now >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} requests in flight:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_under_load_answers_every_accepted_request() {
    // A read timeout longer than the test, so the held-back bodies wait as long as needed.
    let server = Server::start(&["--read-timeout", "3600"]);
    let text = texts().into_iter().take(4).collect::<Vec<_>>().join(" ");
    let want = Arc::new(expected(&text, Prompt::None, 768, true));
    let body = Arc::new(json!({"inputs": text}).to_string());

    // Six requests accepted, their bodies held back until after the signal.
    let head = format!("POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut held: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body.as_bytes()[..10]).unwrap();
            s
        })
        .collect();
    // Eight clients sending requests in a loop until the server is gone.
    let url = server.url("/embed");
    let loaders: Vec<_> = (0..8)
        .map(|_| {
            let (url, body, want) = (url.clone(), Arc::clone(&body), Arc::clone(&want));
            std::thread::spawn(move || {
                let agent = agent();
                let mut answered = 0usize;
                for _ in 0..1000 {
                    let sent = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_str());
                    let Ok(mut response) = sent else { break };
                    assert_eq!(
                        response.status().as_u16(),
                        200,
                        "an accepted request failed"
                    );
                    let text = response
                        .body_mut()
                        .read_to_string()
                        .expect("a whole answer");
                    let answer: Value = serde_json::from_str(&text).expect("JSON");
                    assert_bits(&floats(&answer[0]), &want, "an answer under load");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    wait_for_in_flight(&server, None, 7);

    let pid = server.child.as_ref().map(Child::id).expect("running");
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // The server stops accepting, but the requests it has are answered, held bodies included.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&server.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for s in &mut held {
        s.write_all(&body.as_bytes()[10..]).unwrap();
        let (status, answer) = read_response(s);
        assert_eq!(status, 200, "{answer}");
        assert_bits(
            &floats(&answer[0]),
            &want,
            "a request accepted before SIGTERM",
        );
    }
    let answered: usize = loaders.into_iter().map(|t| t.join().expect("client")).sum();
    assert!(answered > 0);
    let mut server = server;
    let status = server.child.take().expect("running").wait().expect("wait");
    assert!(status.success(), "exit status {status}: {}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}

#[test]
fn openai_python_client() {
    const KEY: &str = "python-key";
    let server = Server::start(&["--api-key", KEY]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(server.url("/v1"))
        .arg(KEY)
        .output()
        .expect("cannot run python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed (needs `pip install openai`): {stderr}",
        script.display()
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let texts = ["Hello, world!", "which planet is red?"];
    for (key, dim) in [("default", 768), ("float256", 256)] {
        let got: Vec<Vec<f32>> = serde_json::from_value(answer[key].clone()).unwrap();
        assert_eq!(got.len(), 2);
        for (g, t) in got.iter().zip(texts) {
            assert_bits(
                g,
                &expected(t, Prompt::None, dim, true),
                &format!("python {key} {t:?}"),
            );
        }
    }
    assert_eq!(answer["model"], "embeddinggemma");
    assert_eq!(answer["empty_status"], 422);
    assert_eq!(answer["dimension_status"], 422);
    assert_eq!(answer["auth_status"], 401);
    assert!(server.stop().success());
}
