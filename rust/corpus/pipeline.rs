//! One reader thread, N encoder threads, and the calling thread writing results in input order.
//!
//! Memory is bounded by permits: the reader takes one before it hands out a job and the writer
//! gives it back once that job's tokens are written, so at most `window` jobs exist at a time
//! (queued, being encoded, or waiting in the reorder buffer behind a slower one), whatever the
//! corpus size.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::encoding::CoreBpe;
use crate::error::{Error, Result};

use super::source::{self, read_jobs, Item};
use super::work::{encode_job, Encoded};
use super::{Dtype, Input, Position, Settings};

/// How often the writer calls [`Handler::tick`] (progress, Ctrl-C) while it waits.
pub const TICK: Duration = Duration::from_millis(100);

/// A job's tokens with the point where reading goes on after it.
pub struct Done {
    pub encoded: Encoded,
    pub end: Position,
    /// Bytes of the input files read up to the end of this job.
    pub raw_done: u64,
}

/// What the writer does with results, in order.
pub trait Handler {
    fn done(&mut self, done: Done) -> Result<()>;
    /// Called about every [`TICK`]; an error stops the run.
    fn tick(&mut self) -> Result<()>;
}

enum Msg {
    Done(Result<Done>),
    Failed(Error),
    End,
}

pub struct Plan<'a> {
    pub bpe: &'a CoreBpe,
    pub settings: &'a Settings,
    pub inputs: &'a [Input],
    /// Each input's identity when the run was planned (checked again as it is read).
    pub identities: &'a [source::Identity],
    pub start: &'a Position,
    /// Size of the input files before `start.file`.
    pub raw_before: u64,
    /// None: count only.
    pub dtype: Option<Dtype>,
    pub threads: usize,
    pub job_bytes: usize,
    /// Whether long documents may be cut (`crate::pretok::cut` holds for the pattern).
    pub cuttable: bool,
}

/// Runs the pipeline; returns the first error in input order, or the handler's.
pub fn run(plan: &Plan<'_>, handler: &mut dyn Handler) -> Result<()> {
    let threads = plan.threads.max(1);
    let window = (2 * threads + 2).min(64);
    let stop = AtomicBool::new(false);
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(window);
    for _ in 0..window {
        permit_tx
            .send(())
            .map_err(|_| Error::InvalidArgument("internal error: permit channel".into()))?;
    }
    let (job_tx, job_rx) = mpsc::sync_channel(window);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (result_tx, result_rx) = mpsc::channel::<(u64, Msg)>();

    std::thread::scope(|scope| {
        let stop = &stop;
        {
            let result_tx = result_tx.clone();
            let reader = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut seq = 0u64;
                let mut emit = |item: Item| -> bool {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    match item {
                        Item::Job(job) => {
                            if permit_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
                                return false;
                            }
                            if job_tx.send((seq, job)).is_err() {
                                return false;
                            }
                        }
                        Item::Failed(error) => {
                            let _ = result_tx.send((seq, Msg::Failed(error)));
                        }
                    }
                    seq += 1;
                    true
                };
                read_jobs(
                    plan.inputs,
                    plan.identities,
                    &plan.settings.field,
                    plan.start,
                    plan.raw_before,
                    plan.job_bytes,
                    threads,
                    plan.cuttable,
                    &mut emit,
                );
                let _ = result_tx.send((seq, Msg::End));
            });
            if let Err(e) = reader {
                return Err(Error::ThreadStart(format!(
                    "cannot start the corpus reader thread: {e}"
                )));
            }
        }
        // An encoder thread that cannot be started (a process or memory limit) is not used:
        // fewer encoders share the jobs; with none at all the run stops with an error.
        let mut started = 0;
        let mut failure = None;
        for _ in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let result_tx = result_tx.clone();
            let encoder = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut tokens = Vec::new();
                loop {
                    let next = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, job)) = next else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let encoded = catch_unwind(AssertUnwindSafe(|| {
                        encode_job(
                            plan.bpe,
                            plan.settings,
                            plan.inputs,
                            &job,
                            plan.dtype,
                            &mut tokens,
                        )
                    }))
                    .unwrap_or_else(|_| {
                        Err(Error::InvalidArgument(
                            "internal error: an encoder thread panicked".into(),
                        ))
                    });
                    let done = encoded.map(|encoded| Done {
                        encoded,
                        end: job.end.clone(),
                        raw_done: job.raw_done,
                    });
                    drop(job);
                    if result_tx.send((seq, Msg::Done(done))).is_err() {
                        break;
                    }
                }
            });
            match encoder {
                Ok(_) => started += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(result_tx);
        if let (0, Some(e)) = (started, failure) {
            // The reader stops at its next job: no permit is left to take.
            stop.store(true, Ordering::Relaxed);
            drop(permit_tx);
            return Err(Error::ThreadStart(format!(
                "cannot start any of {threads} encoder threads: {e}"
            )));
        }
        let outcome = write_in_order(&result_rx, &permit_tx, handler);
        stop.store(true, Ordering::Relaxed);
        drop(permit_tx);
        drop(result_rx);
        outcome
    })
}

fn write_in_order(
    results: &mpsc::Receiver<(u64, Msg)>,
    permits: &mpsc::SyncSender<()>,
    handler: &mut dyn Handler,
) -> Result<()> {
    let mut pending: BTreeMap<u64, Msg> = BTreeMap::new();
    let mut next = 0u64;
    let mut last_tick = Instant::now();
    loop {
        match results.recv_timeout(TICK) {
            Ok((seq, msg)) => {
                pending.insert(seq, msg);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::InvalidArgument(
                    "internal error: the reader and encoder threads stopped early".into(),
                ));
            }
        }
        while let Some(msg) = pending.remove(&next) {
            match msg {
                Msg::Done(Ok(done)) => {
                    handler.done(done)?;
                    // The reader may have stopped; then nobody needs the permit.
                    let _ = permits.try_send(());
                }
                Msg::Done(Err(error)) | Msg::Failed(error) => return Err(error),
                Msg::End => return Ok(()),
            }
            next += 1;
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            handler.tick()?;
        }
    }
}
