//! What one connection is doing, shared by the three parties that care: the
//! request handler, which marks a request under way and its answer; the
//! connection's task, whose deadline is the last progress plus the
//! header-read timeout and which does not run while a request is under way;
//! and the connection cap, which at the cap picks the connection to close
//! (see [`ConnectionCap`](crate::connection_cap::ConnectionCap)) and asks it
//! to close.
//!
//! A request costs a few clock reads and atomic stores here, and no timer:
//! the connection's single timer reads the activity only when it fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

/// One connection's activity: its last progress (the accept, then each
/// complete request head and each answer), whether a request is under way,
/// and whether it has been asked to close.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    /// Nanoseconds from `accepted` to the last head or answer. A `u64` of
    /// nanoseconds lasts 584 years.
    last_progress_nanos: AtomicU64,
    /// Complete request heads so far.
    requests: AtomicU64,
    under_way: AtomicBool,
    closing: AtomicBool,
    close: Notify,
}

/// A request under way, from its complete head until its answer is ready:
/// dropping it records the answer.
#[derive(Debug)]
pub struct UnderWay(Arc<Activity>);

impl Activity {
    /// The activity of a connection accepted now.
    pub fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last_progress_nanos: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            under_way: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// Records that a whole request head has arrived: the client speaks
    /// HTTP, and its request is under way until the returned guard is
    /// dropped.
    pub fn request(self: &Arc<Self>) -> UnderWay {
        self.progress();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.under_way.store(true, Ordering::Relaxed);
        UnderWay(Arc::clone(self))
    }

    fn progress(&self) {
        let since_accept = Instant::now().duration_since(self.accepted);
        let nanos = u64::try_from(since_accept.as_nanos()).unwrap_or(u64::MAX);
        self.last_progress_nanos.store(nanos, Ordering::Relaxed);
    }

    /// When the connection was accepted.
    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// How many whole request heads have arrived.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether a whole request head has ever arrived.
    pub fn has_had_a_head(&self) -> bool {
        self.requests() > 0
    }

    /// Whether a request is being answered now.
    pub fn is_under_way(&self) -> bool {
        self.under_way.load(Ordering::Relaxed)
    }

    /// The last complete head or answer, or the accept before the first head.
    pub fn last_progress(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.last_progress_nanos.load(Ordering::Relaxed))
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

impl UnderWay {
    /// Whether the connection has been asked to close: its answer then says
    /// `Connection: close`, and the connection ends after it.
    pub fn connection_closing(&self) -> bool {
        self.0.is_closing()
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.progress();
        self.0.under_way.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn progress_is_the_accept_then_each_head_and_each_answer() {
        let activity = Arc::new(Activity::new());
        let accepted = Instant::now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(activity.last_progress(), accepted);
        assert!(!activity.has_had_a_head());

        let request = activity.request();
        assert!(activity.has_had_a_head());
        assert!(activity.is_under_way());
        assert_eq!(activity.last_progress(), accepted + Duration::from_secs(3));

        tokio::time::advance(Duration::from_secs(2)).await;
        drop(request);
        assert!(!activity.is_under_way());
        assert_eq!(activity.last_progress(), accepted + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_close_asked_before_anyone_waits_is_not_lost_and_the_answer_hears_of_it() {
        let activity = Arc::new(Activity::new());
        let request = activity.request();
        assert!(!request.connection_closing());
        activity.close();
        assert!(activity.is_closing());
        assert!(request.connection_closing());
        tokio::time::timeout(Duration::from_secs(10), activity.closed())
            .await
            .expect("the close was lost");
    }
}
