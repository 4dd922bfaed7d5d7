//! [`Team`]: worker threads that stay awake between the parallel regions of one computation.
//!
//! A forward pass of a short text has ~120 parallel regions (every product, every attention),
//! each a few tens of microseconds long, with short serial steps (norms, quantization) between
//! them. Pool threads that fall asleep in those gaps must be woken by the kernel for the next
//! region, which costs more than the region's work is worth. A team's helpers spin for a while
//! ([`SPIN`]) after each region, so consecutive regions find them awake; then they sleep until
//! the next region, so an idle team costs nothing.
//!
//! While a team is installed on a thread ([`Team::install`]), the kernels' parallel entry points
//! called on that thread split their work over the team instead of the rayon pool. Results do not
//! depend on which is used: the work is split into the same tasks.

use std::cell::Cell;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper keeps spinning for the next region before it sleeps.
pub const SPIN: Duration = Duration::from_micros(300);

/// The state word: the region's epoch (high 32 bits), whether it is open to helpers
/// ([`OPEN`]), and how many helpers are inside it (low 31 bits).
const OPEN: u64 = 1 << 31;
const PARTICIPANTS: u64 = OPEN - 1;

/// A job: task `i` of a region is `job(i)`.
type Job = dyn Fn(usize) + Sync;

/// What the leader and the helpers share.
struct Shared {
    /// Epoch, open flag and participant count (see [`OPEN`]).
    state: AtomicU64,
    /// The open region's job. Written by the leader only while the region is closed and no
    /// helper is inside; read by helpers only inside an open region.
    job: UnsafeCell<Option<*const Job>>,
    /// Tasks of the open region.
    tasks: AtomicUsize,
    /// The next task to take.
    next: AtomicUsize,
    /// A task of the region panicked in a helper.
    panicked: AtomicBool,
    /// The helpers that are asleep (or about to be), by index.
    sleeping: Vec<AtomicBool>,
    /// The team is being dropped.
    shutdown: AtomicBool,
}

// SAFETY: `job` is the only field that is not `Sync` by itself. It is written only by the leader
// (who holds `Team::leader`) while the region is closed and no helper is inside, and read only by
// helpers that entered the open region through `state` (acquire), which the leader does not close
// while they are inside; the pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// Worker threads for the parallel regions of computations run on one thread at a time (see the
/// module docs). Made with [`Team::new`]; used by [`Team::install`].
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Held by the thread that runs a region; another thread finds it taken and runs its work
    /// alone.
    leader: Mutex<()>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The team installed on this thread, if any.
    static CURRENT: Cell<Option<*const Team>> = const { Cell::new(None) };
}

impl Team {
    /// A team of `threads` threads in all: the one that runs a computation and `threads − 1`
    /// helpers (none for `threads <= 1`). Errors if a helper thread cannot be spawned.
    pub fn new(threads: usize) -> std::io::Result<Team> {
        let n = threads.saturating_sub(1);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            shutdown: AtomicBool::new(false),
        });
        let mut team = Team {
            shared,
            helpers: Vec::with_capacity(n),
            leader: Mutex::new(()),
        };
        for i in 0..n {
            let shared = Arc::clone(&team.shared);
            let handle = std::thread::Builder::new()
                .name(format!("q8-team-{}", i + 1))
                .spawn(move || helper(&shared, i))?;
            team.helpers.push(handle);
        }
        Ok(team)
    }

    /// Threads that work on a region: the caller and the helpers.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `f` with this team installed on the calling thread: the kernels' parallel entry
    /// points called inside `f` on this thread use the team.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Restores the previous team, also when `f` panics.
        struct Restore(Option<*const Team>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(self as *const Team))));
        f()
    }

    /// Runs `job(0)`, …, `job(tasks − 1)`, each exactly once, on the calling thread and the
    /// helpers, and returns when all have finished. A panic in a task is raised here once all
    /// tasks have finished. If another thread is running a region of this team, the calling
    /// thread runs all tasks itself.
    pub fn run(&self, tasks: usize, job: &(dyn Fn(usize) + Sync)) {
        let guard = match self.leader.try_lock() {
            Ok(g) if tasks > 1 && !self.helpers.is_empty() => g,
            _ => {
                (0..tasks).for_each(job);
                return;
            }
        };
        let sh = &*self.shared;
        // SAFETY: only erases the lifetime: the pointer is dereferenced by helpers inside this
        // region only, and the region is closed (no helper inside) before this function returns,
        // also when a task panics.
        let ptr: *const Job = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(
                job as *const (dyn Fn(usize) + Sync + '_),
            )
        };
        // SAFETY: the region is closed and no helper is inside (the previous `run` closed it
        // with no participants), and we hold the leader lock: no one else reads or writes `job`.
        unsafe { *sh.job.get() = Some(ptr) };
        sh.tasks.store(tasks, Ordering::Relaxed);
        sh.next.store(0, Ordering::Relaxed);
        let epoch = (sh.state.load(Ordering::Relaxed) >> 32).wrapping_add(1);
        sh.state.store((epoch << 32) | OPEN, Ordering::SeqCst);
        for (i, sleeping) in sh.sleeping.iter().enumerate() {
            if sleeping.swap(false, Ordering::SeqCst) {
                self.helpers[i].thread().unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| take_tasks(sh, job)));
        // Close the region once no helper is inside; none can enter after that.
        loop {
            let s = sh.state.load(Ordering::Acquire);
            if s & PARTICIPANTS == 0
                && sh
                    .state
                    .compare_exchange_weak(s, epoch << 32, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            std::hint::spin_loop();
        }
        // SAFETY: the region is closed with no helper inside; we hold the leader lock.
        unsafe { *sh.job.get() = None };
        let helper_panicked = sh.panicked.swap(false, Ordering::Relaxed);
        drop(guard);
        match mine {
            Err(payload) => resume_unwind(payload),
            Ok(()) if helper_panicked => panic!("a task of a q8-kernels team panicked"),
            Ok(()) => {}
        }
    }
}

/// Takes tasks of the open region until none are left.
fn take_tasks(sh: &Shared, job: &(dyn Fn(usize) + Sync + '_)) {
    let tasks = sh.tasks.load(Ordering::Relaxed);
    loop {
        let i = sh.next.fetch_add(1, Ordering::Relaxed);
        if i >= tasks {
            return;
        }
        job(i);
    }
}

/// The loop of helper `index`: enter each open region, take its tasks, spin for the next one
/// for up to [`SPIN`], then sleep until woken.
fn helper(sh: &Shared, index: usize) {
    let mut seen = 0u64;
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    while !sh.shutdown.load(Ordering::Acquire) {
        let s = sh.state.load(Ordering::Acquire);
        let epoch = s >> 32;
        if epoch != seen && s & OPEN != 0 {
            if sh
                .state
                .compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            seen = epoch;
            // SAFETY: we are inside the open region (counted in `state`), so the leader has
            // written `job` before opening it and will not clear it or return before we leave.
            let job = unsafe { *sh.job.get() };
            if let Some(job) = job {
                // SAFETY: the job outlives the region (see `Team::run`).
                let job = unsafe { &*job };
                if catch_unwind(AssertUnwindSafe(|| take_tasks(sh, job))).is_err() {
                    sh.panicked.store(true, Ordering::Relaxed);
                }
            }
            sh.state.fetch_sub(1, Ordering::Release);
            idle_since = Instant::now();
            continue;
        }
        seen = epoch;
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        // Sleep until the next region; re-check after announcing it so no wake-up is lost.
        sh.sleeping[index].store(true, Ordering::SeqCst);
        let s = sh.state.load(Ordering::SeqCst);
        if (s >> 32 == seen || s & OPEN == 0) && !sh.shutdown.load(Ordering::SeqCst) {
            std::thread::park();
        }
        sh.sleeping[index].store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for h in self.helpers.drain(..) {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// Calls `f` on every item, in parallel if `parallel`: on the team installed on this thread if
/// there is one, else on the current rayon pool. Each item is handed to exactly one call.
pub(crate) fn for_each_task<T, F>(parallel: bool, items: Vec<T>, f: F)
where
    T: Send,
    F: Fn(T) + Sync + Send,
{
    if !parallel || items.len() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    with_current(|team| match team {
        Some(team) => {
            let slots: Vec<Mutex<Option<T>>> =
                items.into_iter().map(|t| Mutex::new(Some(t))).collect();
            team.run(slots.len(), &|i| {
                let item = match slots[i].lock() {
                    Ok(mut slot) => slot.take(),
                    Err(poisoned) => poisoned.into_inner().take(),
                };
                if let Some(item) = item {
                    f(item);
                }
            });
        }
        None => {
            use rayon::prelude::*;
            items.into_par_iter().for_each(f);
        }
    })
}

/// Threads a parallel entry point called on this thread splits its work over: the installed
/// team's, else the current rayon pool's.
pub(crate) fn current_threads() -> usize {
    with_current(|team| team.map_or_else(rayon::current_num_threads, Team::threads))
}

/// Calls `f` with the team installed on this thread, if any.
fn with_current<R>(f: impl FnOnce(Option<&Team>) -> R) -> R {
    let ptr = CURRENT.with(Cell::get);
    // SAFETY: a pointer in CURRENT is set by `Team::install` on this thread and removed before
    // that call returns (or unwinds); the team is borrowed for the whole call, so it is alive.
    f(ptr.map(|p| unsafe { &*p }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_over_many_regions() {
        let team = Team::new(3).expect("spawns");
        assert_eq!(team.threads(), 3);
        for tasks in [0usize, 1, 2, 7, 64] {
            for _ in 0..50 {
                let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                team.run(tasks, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn helpers_wake_after_sleeping() {
        let team = Team::new(2).expect("spawns");
        for _ in 0..3 {
            std::thread::sleep(SPIN * 3);
            let sum = AtomicUsize::new(0);
            team.run(100, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), 4950);
        }
    }

    #[test]
    fn a_panicking_task_is_raised_after_the_region_closes() {
        let team = Team::new(2).expect("spawns");
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(16, &|i| {
                if i == 5 {
                    panic!("task 5");
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::Relaxed), 15);
        // The team still works.
        let n = AtomicUsize::new(0);
        team.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn install_routes_for_each_task_and_restores() {
        let team = Team::new(2).expect("spawns");
        assert!(with_current(|t| t.is_none()));
        team.install(|| {
            assert_eq!(current_threads(), 2);
            let seen = Mutex::new(Vec::new());
            for_each_task(true, (0..10).collect(), |i: usize| {
                seen.lock().expect("lock").push(i)
            });
            let mut seen = seen.into_inner().expect("lock");
            seen.sort_unstable();
            assert_eq!(seen, (0..10).collect::<Vec<_>>());
        });
        assert!(with_current(|t| t.is_none()));
    }

    #[test]
    fn two_threads_sharing_a_team_both_finish() {
        let team = Team::new(2).expect("spawns");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let n = AtomicUsize::new(0);
                        team.run(9, &|_| {
                            n.fetch_add(1, Ordering::Relaxed);
                        });
                        assert_eq!(n.load(Ordering::Relaxed), 9);
                    }
                });
            }
        });
    }
}
