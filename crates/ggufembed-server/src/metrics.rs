//! Prometheus metrics, written by hand in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Bucket bounds of the latency histograms, in seconds.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds of the batch-size histogram, in inputs.
const INPUTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Bucket bounds of the batch-token histogram.
const TOKENS: &[f64] = &[
    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
];

/// A histogram with fixed buckets.
struct Histogram {
    bounds: &'static [f64],
    /// `counts[i]`: observations `<= bounds[i]` but above the previous bound; the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.counts[i] += 1;
        self.sum += value;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts.last().copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The histograms, behind one lock (each observation is a few additions).
struct Histograms {
    request: Histogram,
    queue: Histogram,
    tokenize: Histogram,
    inference: Histogram,
    batch_inputs: Histogram,
    batch_tokens: Histogram,
}

/// Which histogram an observation goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    /// An input's wait between its request being queued and its batch starting.
    Queue,
    /// Tokenising one request's texts.
    Tokenize,
}

/// Every number `/metrics` shows.
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    histograms: Mutex<Histograms>,
    in_flight: AtomicU64,
    queue_depth: AtomicU64,
    inputs: AtomicU64,
    tokens: AtomicU64,
    batches: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            histograms: Mutex::new(Histograms {
                request: Histogram::new(SECONDS),
                queue: Histogram::new(SECONDS),
                tokenize: Histogram::new(SECONDS),
                inference: Histogram::new(SECONDS),
                batch_inputs: Histogram::new(INPUTS),
                batch_tokens: Histogram::new(TOKENS),
            }),
            in_flight: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        }
    }

    fn histograms(&self) -> std::sync::MutexGuard<'_, Histograms> {
        // A panic while holding the lock cannot leave the numbers inconsistent in a harmful way.
        self.histograms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a finished request.
    pub(crate) fn request_done(&self, route: &'static str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, status)).or_insert(0) += 1;
        drop(requests);
        self.histograms().request.observe(seconds);
    }

    /// Records a duration.
    pub(crate) fn time(&self, timing: Timing, seconds: f64) {
        let mut h = self.histograms();
        match timing {
            Timing::Queue => h.queue.observe(seconds),
            Timing::Tokenize => h.tokenize.observe(seconds),
        }
    }

    /// Records one run of the model over `inputs` sequences of `tokens` tokens in all.
    pub(crate) fn batch(&self, inputs: usize, tokens: usize, seconds: f64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.inputs.fetch_add(inputs as u64, Ordering::Relaxed);
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        let mut h = self.histograms();
        h.batch_inputs.observe(inputs as f64);
        h.batch_tokens.observe(tokens as f64);
        h.inference.observe(seconds);
    }

    /// Requests being answered now.
    pub(crate) fn in_flight(&self) -> &AtomicU64 {
        &self.in_flight
    }

    /// Inputs waiting for the model.
    pub(crate) fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as u64, Ordering::Relaxed);
    }

    /// The Prometheus text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str(
            "# HELP ggufembed_requests_total Requests answered, by route and HTTP status.\n",
        );
        out.push_str("# TYPE ggufembed_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ggufembed_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let gauges = [
            (
                "ggufembed_requests_in_flight",
                "gauge",
                "API requests (embed, tokenize) being answered now.",
                &self.in_flight,
            ),
            (
                "ggufembed_queue_depth",
                "gauge",
                "Inputs waiting for the model.",
                &self.queue_depth,
            ),
            (
                "ggufembed_inputs_total",
                "counter",
                "Inputs run through the model.",
                &self.inputs,
            ),
            (
                "ggufembed_tokens_total",
                "counter",
                "Tokens run through the model.",
                &self.tokens,
            ),
            (
                "ggufembed_batches_total",
                "counter",
                "Runs of the model.",
                &self.batches,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let h = self.histograms();
        h.request.write(
            &mut out,
            "ggufembed_request_duration_seconds",
            "Time from a request's headers to its answer.",
        );
        h.queue.write(
            &mut out,
            "ggufembed_queue_duration_seconds",
            "Time a request waits for its first batch.",
        );
        h.tokenize.write(
            &mut out,
            "ggufembed_tokenize_duration_seconds",
            "Time to tokenise one request's texts.",
        );
        h.inference.write(
            &mut out,
            "ggufembed_inference_duration_seconds",
            "Time of one run of the model over a batch.",
        );
        h.batch_inputs.write(
            &mut out,
            "ggufembed_batch_inputs",
            "Inputs in one run of the model.",
        );
        h.batch_tokens.write(
            &mut out,
            "ggufembed_batch_tokens",
            "Tokens in one run of the model.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
        assert!(out.contains("x_sum 6\n"), "{out}");
    }
}
