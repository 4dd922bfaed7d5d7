//! The batching thread: gathers the token sequences of every waiting request into runs of the
//! model bounded by a token budget.
//!
//! The model's vectors do not depend on the batch a sequence runs in (the runtime promises
//! bit-identical results per sequence whatever the batch and the thread count), so batching
//! changes only the speed. The raw vectors are returned; each request cuts and normalises its
//! own, exactly as [`ggufembed::Model::embed_with`] does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ggufembed::{EmbedOptions, Model};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Metrics, Timing};

/// What a request gets back: one raw vector per sequence, or the model's error message.
pub(crate) type Reply = Result<Vec<Vec<f32>>, String>;

/// One request's sequences, waiting for the model.
pub(crate) struct Job {
    pub seqs: Vec<Vec<u32>>,
    pub reply: oneshot::Sender<Reply>,
    pub queued: Instant,
}

/// A job being worked through: `next` is its first sequence not yet run.
struct Active {
    job: Job,
    next: usize,
    out: Vec<Vec<f32>>,
    failed: Option<String>,
    started: bool,
}

/// Handle on the batching thread; dropping every sender lets it finish the queued work and end.
pub(crate) struct Batcher {
    tx: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl Batcher {
    /// Starts the thread. `capacity` bounds the jobs queued at once (the concurrency limit keeps
    /// the queue below it).
    pub(crate) fn start(
        model: Arc<Model>,
        max_batch_tokens: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Batcher> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("ggufembed-batcher".into())
            .spawn(move || run(&model, max_batch_tokens, rx, &metrics))?;
        Ok(Batcher { tx, thread })
    }

    /// A sender for the handlers.
    pub(crate) fn sender(&self) -> mpsc::Sender<Job> {
        self.tx.clone()
    }

    /// Drops this handle's sender and waits (on a blocking thread) until the queued work is done.
    pub(crate) async fn finish(self) {
        let Batcher { tx, thread } = self;
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// One run of the model, checked to give one vector per sequence.
fn embed(
    model: &Model,
    batch: &[Vec<u32>],
    options: &EmbedOptions,
) -> Result<Vec<Vec<f32>>, String> {
    let vectors = model
        .embed_tokens(batch, options)
        .map_err(|e| e.to_string())?;
    if vectors.len() == batch.len() {
        Ok(vectors)
    } else {
        Err(format!(
            "the model returned {} vectors for {} inputs",
            vectors.len(),
            batch.len()
        ))
    }
}

fn run(model: &Model, budget: usize, mut rx: mpsc::Receiver<Job>, metrics: &Metrics) {
    let mut active: VecDeque<Active> = VecDeque::new();
    let add = |active: &mut VecDeque<Active>, job: Job| {
        let n = job.seqs.len();
        active.push_back(Active {
            job,
            next: 0,
            out: Vec::with_capacity(n),
            failed: None,
            started: false,
        });
    };
    loop {
        if active.is_empty() {
            match rx.blocking_recv() {
                Some(job) => add(&mut active, job),
                None => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            add(&mut active, job);
        }
        // A client that went away needs no answer: skip what it still has to run.
        active.retain(|a| !a.job.reply.is_closed());

        // Fill the batch in arrival order up to the token budget; a sequence longer than the
        // budget runs alone.
        let mut batch: Vec<Vec<u32>> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        let mut tokens = 0usize;
        'fill: for (i, a) in active.iter_mut().enumerate() {
            while a.next < a.job.seqs.len() {
                let len = a.job.seqs[a.next].len();
                if !batch.is_empty() && tokens + len > budget {
                    break 'fill;
                }
                if !a.started {
                    a.started = true;
                    metrics.time(Timing::Queue, a.job.queued.elapsed().as_secs_f64());
                }
                batch.push(std::mem::take(&mut a.job.seqs[a.next]));
                owners.push(i);
                a.next += 1;
                tokens += len;
            }
        }
        let waiting: usize = active.iter().map(|a| a.job.seqs.len() - a.next).sum();
        metrics.set_queue_depth(waiting + batch.len());

        if !batch.is_empty() {
            let options = EmbedOptions::default()
                .normalize(false)
                .batch_size(batch.len());
            let start = Instant::now();
            let result = embed(model, &batch, &options);
            metrics.batch(batch.len(), tokens, start.elapsed().as_secs_f64());
            let results: Vec<Result<Vec<f32>, String>> = match result {
                Ok(vectors) => vectors.into_iter().map(Ok).collect(),
                // The model failed on the batch: run each sequence alone, so that only the
                // requests whose own input fails get an error.
                Err(_) if batch.len() > 1 => batch
                    .iter()
                    .map(|seq| {
                        embed(
                            model,
                            std::slice::from_ref(seq),
                            &options.clone().batch_size(1),
                        )
                        .and_then(|mut v| v.pop().ok_or_else(|| "no vector".to_owned()))
                    })
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            for (result, &i) in results.into_iter().zip(&owners) {
                match result {
                    Ok(v) => active[i].out.push(v),
                    Err(e) => {
                        active[i].failed.get_or_insert(e);
                        active[i].out.push(Vec::new());
                    }
                }
            }
        }
        metrics.set_queue_depth(active.iter().map(|a| a.job.seqs.len() - a.next).sum());

        // Answer the jobs that are done.
        let mut i = 0;
        while i < active.len() {
            if active[i].next == active[i].job.seqs.len() {
                if let Some(a) = active.remove(i) {
                    let reply = match a.failed {
                        Some(message) => Err(message),
                        None => Ok(a.out),
                    };
                    let _ = a.job.reply.send(reply);
                }
            } else {
                i += 1;
            }
        }
    }
}
