//! Data parallelism without a persistent thread pool.
//!
//! Design notes: PyTorch DataLoader workers are forked from a parent that may already have used
//! fastllm. A global pool (rayon's, say) created in the parent has no threads in the child, and
//! the child deadlocks on its first parallel call. Scoped threads created per call and joined
//! before returning leave nothing behind, so a forked child always starts clean. Spawning two
//! threads costs tens of microseconds, negligible next to a batch worth parallelising; calls with
//! one item or one thread run inline.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// The most threads any call or `set_num_threads` accepts.
pub const MAX_THREAD_COUNT: usize = 1024;

/// Checks a thread count given by a caller (`name` is the argument, for the message): 0 (as many
/// as allowed) up to [`MAX_THREAD_COUNT`].
pub fn checked_threads(name: &str, value: i64) -> Result<usize> {
    match usize::try_from(value) {
        Ok(n) if n <= MAX_THREAD_COUNT => Ok(n),
        _ => Err(Error::InvalidArgument(format!(
            "{name} must be between 0 (all cores) and {MAX_THREAD_COUNT}, got {value}"
        ))),
    }
}

/// Process-wide cap on threads per call; 0 = the number of cores.
static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the process-wide cap on threads per call (0 = the number of cores).
pub fn set_max_threads(threads: usize) {
    MAX_THREADS.store(threads.min(MAX_THREAD_COUNT), Ordering::Relaxed);
}

/// The process-wide cap on threads per call.
pub fn max_threads() -> usize {
    match MAX_THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// The number of threads to use when the caller asks for `requested` (0 = as many as allowed).
pub fn effective_threads(requested: usize, items: usize) -> usize {
    let cap = max_threads();
    let wanted = if requested == 0 {
        cap
    } else {
        requested.min(cap)
    };
    wanted.min(items).max(1)
}

/// Applies `f` to every item on up to `threads` threads (0 = as many as allowed) and returns the results in
/// input order. Items are handed out one at a time, so uneven items balance across threads.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = effective_threads(threads, items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        // A thread that cannot be spawned (a process or memory limit) is simply not used: the
        // calling thread and those already spawned take its share of the items.
        let handles: Vec<_> = (1..threads)
            .map_while(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
            .collect();
        let mut place = |done: Vec<(usize, R)>| {
            for (i, r) in done {
                slots[i] = Some(r);
            }
        };
        place(worker());
        for handle in handles {
            match handle.join() {
                Ok(done) => place(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [0, 1, 2, 7] {
            let out = map(&items, threads, |&x| x * x);
            assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        }
        assert_eq!(map(&[] as &[u8], 4, |&x| x), Vec::<u8>::new());
    }

    #[test]
    fn thread_counts_are_checked() {
        assert_eq!(checked_threads("num_threads", 8), Ok(8));
        assert_eq!(checked_threads("num_threads", 0), Ok(0));
        for bad in [-1, 1025, i64::MAX] {
            let err = checked_threads("num_threads", bad).map_err(|e| e.to_string());
            assert_eq!(
                err,
                Err(format!(
                    "num_threads must be between 0 (all cores) and 1024, got {bad}"
                ))
            );
        }
    }
}
