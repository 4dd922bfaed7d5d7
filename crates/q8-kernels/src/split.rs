//! The row splitter of the matrix products, and the threading argument of every entry point
//! that can split its work.
//!
//! The output rows of a product are cut into chunks of a multiple of [`ROW_ALIGN`] rows (every
//! backend's row tile divides it), about four per thread for load balance; each chunk is one
//! task of the current [`Team`](crate::Team) or rayon pool. A chunk computes the same values
//! whichever thread runs it, so results do not depend on the number of threads.

use core::ops::Range;

use crate::team;

/// Where an operation runs: split over the current team or rayon pool, or on the calling
/// thread only (for callers that parallelise over texts themselves). The result is the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Threads {
    /// Split over the [`Team`](crate::Team) installed on this thread, else the current rayon
    /// pool (install a pool with `ThreadPool::install` to bound it).
    #[default]
    Current,
    /// On the calling thread only.
    Single,
}

impl Threads {
    /// Whether the work may be split over other threads.
    pub(crate) fn parallel(self) -> bool {
        self == Threads::Current
    }
}

/// Row granularity of the parallel split (a multiple of every backend's row tile).
pub(crate) const ROW_ALIGN: usize = 16;

/// Calls `f(rows, out)` over chunks of the `n` output rows, where `out[t]` is
/// `y[t*n + rows.start .. t*n + rows.end]` — on the current team or rayon pool unless `threads` is [`Threads::Single`].
pub(crate) fn for_row_chunks<F>(n: usize, tokens: usize, y: &mut [f32], threads: Threads, f: F)
where
    F: Fn(Range<usize>, &mut [&mut [f32]]) + Sync,
{
    for_row_chunks_many(&[n], tokens, vec![y], threads, |_, rows, out| f(rows, out));
}

/// One task of [`for_row_chunks_many`]: product index, its rows, and each token's output slice
/// for those rows.
type RowChunk<'a> = (usize, Range<usize>, Vec<&'a mut [f32]>);

/// [`for_row_chunks`] over several products at once, in one parallel region: product `i` has
/// `ns[i]` output rows and output `ys[i]` (`tokens × ns[i]`); `f(i, rows, out)` computes a chunk
/// of product `i`. Chunks are sized from the rows of all products together, so small products
/// (q, k and v of a few tokens) share one fork-join instead of one each.
///
/// The chunks of the outputs are made with `split_at_mut`, so every task owns its disjoint
/// pieces.
pub(crate) fn for_row_chunks_many<F>(
    ns: &[usize],
    tokens: usize,
    ys: Vec<&mut [f32]>,
    threads: Threads,
    f: F,
) where
    F: Fn(usize, Range<usize>, &mut [&mut [f32]]) + Sync,
{
    let total: usize = ns.iter().sum();
    if total == 0 || tokens == 0 {
        return;
    }
    let threads = if threads.parallel() {
        team::current_threads()
    } else {
        1
    };
    if threads <= 1 || total <= ROW_ALIGN {
        for (i, (&n, y)) in ns.iter().zip(ys).enumerate() {
            if n > 0 {
                let mut out: Vec<&mut [f32]> = y.chunks_mut(n).collect();
                f(i, 0..n, &mut out);
            }
        }
        return;
    }
    // About 4 chunks per thread for load balance, but only one per thread for small products
    // (a few µs of work, where waking threads costs as much as the imbalance); each chunk a
    // multiple of ROW_ALIGN rows.
    let per_thread = if total.saturating_mul(tokens) < 4096 {
        1
    } else {
        4
    };
    let chunk = total
        .div_ceil(threads * per_thread)
        .div_ceil(ROW_ALIGN)
        .max(1)
        * ROW_ALIGN;
    let mut parts: Vec<RowChunk<'_>> = Vec::new();
    for (i, (&n, y)) in ns.iter().zip(ys).enumerate() {
        if n == 0 {
            continue;
        }
        let first = parts.len();
        for c in 0..n.div_ceil(chunk) {
            let rows = c * chunk..((c + 1) * chunk).min(n);
            parts.push((i, rows, Vec::with_capacity(tokens)));
        }
        for mut row in y.chunks_mut(n) {
            for (_, range, outs) in parts[first..].iter_mut() {
                let (head, tail) = row.split_at_mut(range.len());
                outs.push(head);
                row = tail;
            }
        }
    }
    team::for_each_task(true, parts, |(i, range, mut outs)| f(i, range, &mut outs));
}
