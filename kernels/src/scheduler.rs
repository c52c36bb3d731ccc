//! One scheduler per GPU: the device's only owner. Work asks it for the device with a
//! priority and a deadline; it grants the device to one job at a time, highest priority
//! first (consensus-path verification, then re-encryption, then proving; first come first
//! served within a class). The queue is bounded: a caller that finds it full waits for
//! room (back-pressure), and a caller not served by its deadline gets
//! [`KernelError::Busy`] and computes on the CPU instead.
//!
//! Jobs run on the caller's thread once granted, so they may borrow the caller's data and
//! need no copying into a worker. Per-class metrics: jobs, refusals, time waited, time
//! held, and bytes moved between host and device.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{KernelError, Result};

/// Classes of GPU work, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Batch proof verification on the consensus path (a block waits for it).
    Consensus = 0,
    /// A CPC's batch re-encryption (a grant waits for it).
    Reencrypt = 1,
    /// Proving (a member waits for it; proofs take the longest).
    Proving = 2,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Consensus, Priority::Reencrypt, Priority::Proving];

    pub fn label(self) -> &'static str {
        match self {
            Priority::Consensus => "consensus",
            Priority::Reencrypt => "reencrypt",
            Priority::Proving => "proving",
        }
    }

    /// How long a job of this class waits for the device before the CPU takes it.
    pub fn default_deadline(self) -> Duration {
        match self {
            Priority::Consensus => Duration::from_millis(250),
            Priority::Reencrypt => Duration::from_secs(2),
            Priority::Proving => Duration::from_secs(30),
        }
    }
}

/// Counters of one priority class.
#[derive(Debug, Default)]
pub struct ClassStats {
    /// Jobs granted the device.
    pub jobs: AtomicU64,
    /// Jobs refused (queue full or deadline passed): they ran on the CPU.
    pub busy: AtomicU64,
    /// Total time jobs waited for the device, in microseconds.
    pub wait_micros: AtomicU64,
    /// Total time jobs held the device, in microseconds.
    pub run_micros: AtomicU64,
    /// Bytes copied between host and device.
    pub bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    busy: bool,
    waiting: BTreeSet<(Priority, u64)>,
    next: u64,
}

/// The scheduler of one device.
#[derive(Debug)]
pub struct Scheduler {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
    stats: [ClassStats; 3],
}

impl Scheduler {
    /// A scheduler whose queue holds at most `capacity` waiting jobs.
    pub fn new(capacity: usize) -> Self {
        Self { state: Mutex::default(), changed: Condvar::new(), capacity: capacity.max(1), stats: Default::default() }
    }

    pub fn stats(&self, p: Priority) -> &ClassStats {
        &self.stats[p as usize]
    }

    /// Jobs now waiting.
    pub fn queued(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).waiting.len()
    }

    fn refuse(&self, p: Priority, waited: Duration, why: &'static str) -> KernelError {
        self.stats(p).busy.fetch_add(1, Ordering::Relaxed);
        KernelError::Busy { class: p.label(), waited_ms: waited.as_millis() as u64, why }
    }

    /// Waits for the device until `deadline` from now; the device is the caller's until
    /// the returned permit drops.
    pub fn acquire(&self, p: Priority, deadline: Duration) -> Result<Permit<'_>> {
        let start = Instant::now();
        let until = start + deadline;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Back-pressure: wait for room in the queue.
        while st.waiting.len() >= self.capacity {
            let now = Instant::now();
            if now >= until {
                return Err(self.refuse(p, start.elapsed(), "queue full"));
            }
            st = self.changed.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let ticket = (p, st.next);
        st.next += 1;
        st.waiting.insert(ticket);
        loop {
            if !st.busy && st.waiting.first() == Some(&ticket) {
                st.waiting.remove(&ticket);
                st.busy = true;
                break;
            }
            let now = Instant::now();
            if now >= until {
                st.waiting.remove(&ticket);
                drop(st);
                // Another waiter may now be first, and there is room in the queue.
                self.changed.notify_all();
                return Err(self.refuse(p, start.elapsed(), "deadline passed"));
            }
            st = self.changed.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(st);
        let waited = start.elapsed();
        let s = self.stats(p);
        s.jobs.fetch_add(1, Ordering::Relaxed);
        s.wait_micros.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        Ok(Permit { scheduler: self, class: p, granted: Instant::now(), bytes: AtomicU64::new(0) })
    }
}

/// The device, held by one job. Dropping it hands the device to the next job.
#[derive(Debug)]
pub struct Permit<'a> {
    scheduler: &'a Scheduler,
    class: Priority,
    granted: Instant,
    bytes: AtomicU64,
}

impl Permit<'_> {
    pub fn class(&self) -> Priority {
        self.class
    }

    /// Counts bytes moved between host and device by this job.
    pub fn moved(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let s = self.scheduler.stats(self.class);
        s.run_micros.fetch_add(self.granted.elapsed().as_micros() as u64, Ordering::Relaxed);
        s.bytes.fetch_add(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        let mut st = self.scheduler.state.lock().unwrap_or_else(|e| e.into_inner());
        st.busy = false;
        drop(st);
        self.scheduler.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    /// While one job holds the device, jobs of every class queue up; they are then served
    /// consensus first, re-encryption next, proving last, in arrival order within a class.
    #[test]
    fn serves_by_priority_then_arrival() {
        let s = Arc::new(Scheduler::new(16));
        let order = Arc::new(StdMutex::new(Vec::new()));
        let holder = s.acquire(Priority::Proving, Duration::from_secs(5)).unwrap();
        let mut threads = Vec::new();
        let arrivals = [
            (Priority::Proving, "p1"),
            (Priority::Reencrypt, "r1"),
            (Priority::Proving, "p2"),
            (Priority::Consensus, "c1"),
            (Priority::Reencrypt, "r2"),
        ];
        for (i, (p, name)) in arrivals.into_iter().enumerate() {
            let (sched, order) = (s.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _permit = sched.acquire(p, Duration::from_secs(10)).unwrap();
                order.lock().unwrap().push(name);
            }));
            // Arrive one after another.
            while s.queued() < i + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(holder);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["c1", "r1", "r2", "p1", "p2"]);
        assert_eq!(s.stats(Priority::Proving).jobs.load(Ordering::Relaxed), 3);
        assert_eq!(s.stats(Priority::Consensus).jobs.load(Ordering::Relaxed), 1);
        assert!(s.stats(Priority::Consensus).wait_micros.load(Ordering::Relaxed) > 0);
    }

    /// A job not served by its deadline is refused (the caller uses the CPU), leaves the
    /// queue, and does not block the jobs behind it.
    #[test]
    fn deadlines_and_back_pressure_refuse_cleanly() {
        let s = Arc::new(Scheduler::new(1));
        let holder = s.acquire(Priority::Proving, Duration::from_secs(1)).unwrap();
        match s.acquire(Priority::Consensus, Duration::from_millis(20)) {
            Err(KernelError::Busy { class: "consensus", why: "deadline passed", .. }) => {}
            other => panic!("expected a refusal: {other:?}"),
        }
        assert_eq!(s.queued(), 0, "the refused job left the queue");
        // Fill the one queue slot; the next caller finds the queue full.
        let s2 = s.clone();
        let waiter = std::thread::spawn(move || s2.acquire(Priority::Reencrypt, Duration::from_secs(5)).map(|_| ()));
        while s.queued() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        match s.acquire(Priority::Consensus, Duration::from_millis(20)) {
            Err(KernelError::Busy { why: "queue full", .. }) => {}
            other => panic!("expected back-pressure: {other:?}"),
        }
        assert_eq!(s.stats(Priority::Consensus).busy.load(Ordering::Relaxed), 2);
        drop(holder);
        waiter.join().unwrap().unwrap();
        // The device is free again.
        let p = s.acquire(Priority::Proving, Duration::from_millis(100)).unwrap();
        p.moved(1234);
        drop(p);
        assert_eq!(s.stats(Priority::Proving).bytes.load(Ordering::Relaxed), 1234);
    }
}
