//! A peer's outbound queue, bounded in frames and in bytes.
//!
//! The core queues frames for a peer without waiting (a slow peer must not hold up the
//! others), and a sender task writes them to the peer's connection. Frames vary from a
//! vote of a hundred bytes to a batch or a part of megabytes, so a bound in frames alone
//! lets a queue hold gigabytes: under overload with dissemination, parts re-sent to peers
//! that had not voted filled 8,192-frame queues until the process ran out of memory. A
//! frame that does not fit is dropped and counted, as one the network lost; retransmission
//! covers it. A frame larger than the byte bound still goes alone into an empty queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// The core's end: queues frames for one peer.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    bytes_max: usize,
    frames_max: usize,
}

/// The sender's end: takes the frames in order.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue of at most `frames_max` frames and `bytes_max` bytes.
pub(crate) fn outbox(frames_max: usize, bytes_max: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(frames_max);
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone(), bytes_max, frames_max }, Inbox { rx, queued })
}

impl Outbox {
    /// Queues `frame`; false (dropped) when the queue is full in frames or in bytes, or
    /// its sender has ended.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before != 0 && before + len > self.bytes_max {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        if self.tx.try_send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Frames waiting.
    pub(crate) fn frames(&self) -> usize {
        self.frames_max - self.tx.capacity()
    }

    /// Bytes waiting.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl Inbox {
    /// The next frame; `None` once the core dropped its end.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let f = self.rx.recv().await?;
        self.queued.fetch_sub(f.len(), Ordering::AcqRel);
        Some(f)
    }

    /// The next frame if one waits.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let f = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(f.len(), Ordering::AcqRel);
        Some(f)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_as_well_as_frames_and_taking_frees_room() {
        let (out, mut inbox) = outbox(4, 1000);
        assert!(out.push(frame(600)));
        assert!(!out.push(frame(500)), "600 + 500 bytes is over the bound: dropped");
        assert!(out.push(frame(400)));
        assert_eq!((out.frames(), out.bytes()), (2, 1000));
        assert!(!out.push(frame(1)), "full in bytes");
        assert_eq!(inbox.recv().await.map(|f| f.len()), Some(600));
        assert_eq!(out.bytes(), 400, "a frame taken leaves the bound");
        assert!(out.push(frame(500)));
        // Full in frames, with room in bytes.
        let (out, mut inbox) = outbox(2, 1 << 20);
        assert!(out.push(frame(1)) && out.push(frame(1)));
        assert!(!out.push(frame(1)), "full in frames");
        assert_eq!(out.bytes(), 2, "a refused frame is not counted");
        assert!(inbox.try_recv().is_some());
        assert!(out.push(frame(1)));
    }

    #[tokio::test]
    async fn a_frame_over_the_byte_bound_goes_alone_into_an_empty_queue() {
        let (out, mut inbox) = outbox(8, 100);
        assert!(out.push(frame(5000)), "an empty queue takes one frame of any size");
        assert!(!out.push(frame(1)), "and nothing beside it");
        assert_eq!(inbox.recv().await.map(|f| f.len()), Some(5000));
        assert_eq!(out.bytes(), 0);
        assert!(out.push(frame(1)));
        drop(inbox);
        assert!(!out.push(frame(1)), "a queue whose sender ended takes nothing");
        assert_eq!(out.bytes(), 1);
    }
}
