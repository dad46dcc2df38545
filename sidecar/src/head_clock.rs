//! When one connection last completed a request head, shared by the three
//! parties that care: the request handler, which sets it; the connection's
//! task, whose deadline is that moment plus the header-read timeout; and the
//! connection cap, which at the cap closes the connection whose clock is the
//! oldest (see [`ConnectionCap`](crate::connection_cap::ConnectionCap)).
//!
//! A request costs one clock read and one atomic store here, and no timer:
//! the connection's single timer reads the clock only when it fires.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

const NO_HEAD: u64 = u64::MAX;

/// One connection's clock: since its accept, or since its last complete head.
#[derive(Debug)]
pub struct HeadClock {
    accepted: Instant,
    /// Nanoseconds from `accepted` to the last complete head, or [`NO_HEAD`]
    /// before the first. A `u64` of nanoseconds lasts 584 years.
    last_head_nanos: AtomicU64,
    closing: AtomicBool,
    close: Notify,
}

impl HeadClock {
    /// The clock of a connection accepted now.
    pub fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last_head_nanos: AtomicU64::new(NO_HEAD),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// Records that a whole request head has arrived: the connection is
    /// doing its job, and its clock starts again.
    pub fn head_completed(&self) {
        let since_accept = Instant::now().duration_since(self.accepted);
        let nanos = u64::try_from(since_accept.as_nanos()).unwrap_or(NO_HEAD - 1);
        self.last_head_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Whether a whole request head has ever arrived: whether the client has
    /// shown that it speaks HTTP.
    pub fn has_had_a_head(&self) -> bool {
        self.last_head_nanos.load(Ordering::Relaxed) != NO_HEAD
    }

    /// The last complete head, or the accept before the first.
    pub fn last_progress(&self) -> Instant {
        match self.last_head_nanos.load(Ordering::Relaxed) {
            NO_HEAD => self.accepted,
            nanos => self.accepted + Duration::from_nanos(nanos),
        }
    }

    /// Asks the connection's task to close it, to make room for a new one.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        // A permit is stored if the task is not waiting yet, so it is never lost.
        self.close.notify_one();
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Completes once [`close`](Self::close) has been called.
    pub fn closed(&self) -> Notified<'_> {
        self.close.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn progress_is_the_accept_until_a_head_completes_then_the_last_head() {
        let clock = HeadClock::new();
        let accepted = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.last_progress(), accepted);
        assert!(!clock.has_had_a_head());
        clock.head_completed();
        assert_eq!(clock.last_progress(), accepted + Duration::from_secs(3));
        assert!(clock.has_had_a_head());
    }

    #[tokio::test]
    async fn a_close_asked_before_anyone_waits_is_not_lost() {
        let clock = HeadClock::new();
        assert!(!clock.is_closing());
        clock.close();
        assert!(clock.is_closing());
        tokio::time::timeout(Duration::from_secs(10), clock.closed())
            .await
            .expect("the close was lost");
    }
}
