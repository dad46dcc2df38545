//! One connection's life: served until it ends, until its client has gone
//! the header-read timeout without a request, or until the connection cap
//! asks for its place.
//!
//! The deadline is owned here rather than left to hyper's
//! `header_read_timeout`, which boxes a new timer for every request head
//! (hyper 1.12, `proto/h1/conn.rs`: `poll_read_head` calls
//! `timer.sleep_until` and drops the timer once the head is read). Here one
//! timer lives as long as the connection. The request handler only records
//! the connection's [`Activity`]; when the timer fires, it is set again if
//! there has been progress since, so a busy connection re-arms its timer
//! once per timeout, not once per request.
//!
//! The clock runs from the accept and again from each answer, and stands
//! still while a request is under way: the one timeout bounds a first
//! request that is slow to arrive and a connection left idle between
//! requests, and never cuts an answer, however long a handler takes.
//!
//! Asked to close for room, the connection first answers any request its
//! client has already sent: the task yields once, which in tokio wakes it
//! only after the runtime has polled its I/O driver (tokio 1.54,
//! `task/yield_now.rs` and the current-thread scheduler's `park_internal`),
//! then polls the connection, which reads what has arrived. A request found
//! is answered with `Connection: close`, and the connection ends after it.
//! On loopback a client's request is in the server's socket as soon as the
//! client's `send` returns, so a client that has sent its request is not
//! closed without an answer, but for the two cases in docs/availability.md:
//! an answer the socket would not take, and a request that arrives unseen
//! when one poll of the I/O driver has more than 1,024 events.

use std::future::{Future, poll_fn};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::activity::Activity;

/// Why a connection ended.
#[derive(Debug)]
pub enum Ending<E> {
    /// hyper finished with it: the client closed it, asked to, broke the
    /// protocol, the drain closed it, or it was asked to close for room
    /// and answered its last request first.
    Served(Result<(), E>),
    /// The header-read timeout passed without a request.
    TimedOut,
    /// The connection cap closed it, with no request from its client, to
    /// make room for a new one.
    MadeRoom,
}

/// Drives `connection` until it ends, its client has gone `timeout` without
/// a request, or `activity` is asked to close it and no request has arrived.
pub async fn serve<E>(
    connection: impl Future<Output = Result<(), E>>,
    activity: &Activity,
    timeout: Duration,
) -> Ending<E> {
    let mut connection = std::pin::pin!(connection);
    let mut asked_to_close = std::pin::pin!(activity.closed());
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(activity.last_progress() + timeout));
    let mut answering_last = false;
    loop {
        // Biased: the connection first, as it is what wakes the task on every
        // request; the order also saves select!'s random draw per wake-up.
        tokio::select! {
            biased;
            ended = &mut connection => return Ending::Served(ended),
            () = &mut asked_to_close, if !answering_last => {
                tokio::task::yield_now().await;
                let before = activity.requests();
                if let Poll::Ready(ended) =
                    poll_fn(|cx| Poll::Ready(connection.as_mut().poll(cx))).await
                {
                    return Ending::Served(ended);
                }
                if !activity.is_under_way() && activity.requests() == before {
                    return Ending::MadeRoom;
                }
                // hyper ends the connection after this answer.
                answering_last = true;
            }
            () = &mut deadline => {
                let now = Instant::now();
                let due = if activity.is_under_way() {
                    now + timeout
                } else {
                    activity.last_progress() + timeout
                };
                if due <= now {
                    return Ending::TimedOut;
                }
                deadline.as_mut().reset(due);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A connection that never ends by itself, as with a silent client.
    fn forever() -> std::future::Pending<Result<(), ()>> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_ends_at_the_timeout() {
        let activity = Activity::new();
        let started = Instant::now();
        assert!(matches!(
            serve(forever(), &activity, TIMEOUT).await,
            Ending::TimedOut
        ));
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn each_answer_moves_the_deadline() {
        let activity = Arc::new(Activity::new());
        let started = Instant::now();
        let requests = async {
            for _ in 0..3 {
                tokio::time::sleep(TIMEOUT / 2).await;
                drop(activity.request());
            }
        };
        let (ending, ()) = tokio::join!(serve(forever(), &activity, TIMEOUT), requests);
        assert!(matches!(ending, Ending::TimedOut));
        // The last answer came at 15 s.
        assert_eq!(started.elapsed(), TIMEOUT * 3 / 2 + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_under_way_is_never_cut_and_the_clock_restarts_at_its_answer() {
        let activity = Arc::new(Activity::new());
        let started = Instant::now();
        let slow_handler = async {
            let request = activity.request();
            tokio::time::sleep(TIMEOUT * 3).await;
            drop(request);
        };
        let (ending, ()) = tokio::join!(serve(forever(), &activity, TIMEOUT), slow_handler);
        assert!(matches!(ending, Ending::TimedOut));
        assert_eq!(started.elapsed(), TIMEOUT * 3 + TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_for_room_ends_a_connection_without_a_request_at_once() {
        let activity = Activity::new();
        activity.close();
        let started = Instant::now();
        assert!(matches!(
            serve(forever(), &activity, TIMEOUT).await,
            Ending::MadeRoom
        ));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_for_room_lets_a_request_under_way_be_answered() {
        let activity = Arc::new(Activity::new());
        let request = activity.request();
        activity.close();
        // The connection ends once it has answered, as hyper's does after an
        // answer that says `Connection: close`.
        let answered = async {
            tokio::time::sleep(TIMEOUT * 2).await;
            drop(request);
            Ok::<(), ()>(())
        };
        assert!(matches!(
            serve(answered, &activity, TIMEOUT).await,
            Ending::Served(Ok(()))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_for_room_answers_a_request_that_arrives_as_the_connection_is_read() {
        let activity = Arc::new(Activity::new());
        activity.close();
        // Stands in for hyper reading a head already in the socket: on its
        // first poll after the close, a request arrives and is answered, and
        // the connection writes on.
        let mut polls = 0;
        let connection = poll_fn(|cx| {
            polls += 1;
            if polls == 2 {
                drop(activity.request());
            }
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(Ok::<(), ()>(()))
            }
        });
        let ending = serve(connection, &activity, TIMEOUT).await;
        assert!(matches!(ending, Ending::Served(Ok(()))), "{ending:?}");
    }
}
