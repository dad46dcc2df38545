//! One connection's life: served until it ends, until its client has gone
//! the header-read timeout without completing a request head, or until the
//! connection cap asks for its place.
//!
//! The deadline is owned here rather than left to hyper's
//! `header_read_timeout`, which boxes a new timer for every request head
//! (hyper 1.12, `proto/h1/conn.rs`: `poll_read_head` calls
//! `timer.sleep_until` and drops the timer once the head is read). Here one
//! timer lives as long as the connection. The request handler only moves the
//! connection's [`HeadClock`]; when the timer fires, it is set again to the
//! clock's deadline if a head has come since (tokio's `Sleep::reset`), so a
//! busy connection re-arms its timer once per timeout, not once per request.
//!
//! The clock runs from the accept, and again from each complete head, so the
//! one timeout bounds a first request that is slow to arrive, a connection
//! left idle between requests, and an answer its client never reads.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::head_clock::HeadClock;

/// Why a connection ended.
#[derive(Debug)]
pub enum Ending<E> {
    /// hyper finished with it: the client closed it, asked to, broke the
    /// protocol, or the drain closed it.
    Served(Result<(), E>),
    /// The header-read timeout passed without a complete request head.
    TimedOut,
    /// The connection cap closed it to make room for a new one.
    MadeRoom,
}

/// Drives `connection` until it ends, its client has gone `timeout` without
/// a complete request head, or `clock` is asked to close it.
pub async fn serve<E>(
    connection: impl Future<Output = Result<(), E>>,
    clock: &HeadClock,
    timeout: Duration,
) -> Ending<E> {
    let mut connection = std::pin::pin!(connection);
    let mut made_room = std::pin::pin!(clock.closed());
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(clock.last_progress() + timeout));
    loop {
        // Biased: the connection first, as it is what wakes the task on every
        // request; the order also saves select!'s random draw per wake-up.
        tokio::select! {
            biased;
            ended = &mut connection => return Ending::Served(ended),
            () = &mut made_room => return Ending::MadeRoom,
            () = &mut deadline => {
                let due = clock.last_progress() + timeout;
                if due <= Instant::now() {
                    return Ending::TimedOut;
                }
                deadline.as_mut().reset(due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A connection that never ends by itself, as with a silent client.
    fn forever() -> std::future::Pending<Result<(), ()>> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_head_ends_at_the_timeout() {
        let clock = HeadClock::new();
        let started = Instant::now();
        assert!(matches!(
            serve(forever(), &clock, TIMEOUT).await,
            Ending::TimedOut
        ));
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn each_complete_head_moves_the_deadline() {
        let clock = HeadClock::new();
        let started = Instant::now();
        let heads = async {
            for _ in 0..3 {
                tokio::time::sleep(TIMEOUT / 2).await;
                clock.head_completed();
            }
        };
        let (ending, ()) = tokio::join!(serve(forever(), &clock, TIMEOUT), heads);
        assert!(matches!(ending, Ending::TimedOut));
        // The last head came at 15 s.
        assert_eq!(started.elapsed(), TIMEOUT * 3 / 2 + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_for_room_ends_it_at_once_and_an_ended_connection_is_served() {
        let clock = HeadClock::new();
        clock.close();
        assert!(matches!(
            serve(forever(), &clock, TIMEOUT).await,
            Ending::MadeRoom
        ));
        let done = std::future::ready(Ok::<(), ()>(()));
        assert!(matches!(
            serve(done, &HeadClock::new(), TIMEOUT).await,
            Ending::Served(Ok(()))
        ));
    }
}
