//! Surviving accept errors.
//!
//! `accept` fails for reasons that pass: a client that reset its connection
//! before it was accepted (ECONNABORTED), or a process out of file descriptors
//! (EMFILE, ENFILE) until some connections close. None of them is a reason to
//! stop serving. Retrying at once, though, would spin a core while the
//! descriptors stay exhausted, and logging every failure would flood the log.
//! So each failure backs off, doubling up to a cap, and is logged at most once
//! per interval, with the number of failures left unlogged since.

use std::time::Duration;

use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(1);
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What to do after one failed `accept`.
#[derive(Debug, PartialEq, Eq)]
pub struct Reaction {
    /// How long to wait before accepting again.
    pub pause: Duration,
    /// `Some(unlogged)` when this failure is to be logged, with the number of
    /// failures since the last logged one; `None` to stay quiet.
    pub log: Option<u64>,
}

/// The accept loop's memory of recent failures: the next pause, and when a
/// failure was last logged.
#[derive(Debug)]
pub struct AcceptBackoff {
    next_pause: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            next_pause: FIRST_PAUSE,
            last_logged: None,
            suppressed: 0,
        }
    }
}

impl AcceptBackoff {
    /// Records a failure at `now` and says how to react.
    pub fn on_error(&mut self, now: Instant) -> Reaction {
        let pause = self.next_pause;
        self.next_pause = (pause * 2).min(MAX_PAUSE);
        let due = self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL);
        let log = if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        };
        Reaction { pause, log }
    }

    /// Records a successful accept: the next failure starts over fast.
    pub fn on_success(&mut self) {
        self.next_pause = FIRST_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<_> = (0..10)
            .map(|_| backoff.on_error(now).pause.as_millis())
            .collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.on_success();
        assert_eq!(backoff.on_error(now).pause, FIRST_PAUSE);
    }

    #[test]
    fn logs_at_most_once_per_interval_and_counts_the_rest() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        assert_eq!(backoff.on_error(start).log, Some(0));
        for ms in [1, 100, 999] {
            let later = start + Duration::from_millis(ms);
            assert_eq!(backoff.on_error(later).log, None);
        }
        let next = start + LOG_INTERVAL;
        assert_eq!(backoff.on_error(next).log, Some(3));
        assert_eq!(backoff.on_error(next).log, None);
    }
}
