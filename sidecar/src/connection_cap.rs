//! The cap on open connections, which bounds the sidecar's memory, and what
//! happens at the cap, which keeps it available.
//!
//! Every open connection holds memory whatever its client sends: a task,
//! hyper's buffers, up to a whole request head. So the number of connections
//! open at once, not the clients' good manners, is what keeps the sidecar
//! inside its container's memory limit.
//!
//! The accept loop accepts first, then takes a place for the connection. At
//! the cap, it asks one open connection to close, and the new one takes its
//! place at once. Waiting instead, with new connections held in the kernel's
//! listen backlog, let anyone who holds the cap's worth of silent
//! connections keep every new client waiting for the header-read timeout.
//! The one asked is the first of, in this order ([`Rank`]):
//!
//! 1. Silent: no whole request head for [`GRACE`] since the accept. Silent
//!    and slowloris clients, oldest first, which are what a flood is made of.
//! 2. At work: a keep-alive connection that has had more than one request
//!    and averaged more than [`AT_WORK`] requests a second since its accept.
//!    Its client is a busy pool, which reconnects at once; a new client must
//!    not be closed in its stead.
//! 3. New: no head yet, younger than [`GRACE`], oldest first. In a burst of
//!    new connections they are all there is to close, and a new client is
//!    the youngest, so it is asked only after every one older than it.
//! 4. Idle: a keep-alive connection between requests, the one idle longest.
//!    A server may close an inactive connection at any time (RFC 9112,
//!    section 9.5), and clients may retry a request on a kept-alive
//!    connection that closed before it (section 9.3.1). An app that keeps a
//!    connection open and calls once a second is here, behind a flood's.
//! 5. Under way: a request is being answered; it ends after its answer.
//!
//! Asked to close, a connection still answers a request its client has
//! already sent, with `Connection: close` (see [`connection`](crate::connection)).
//!
//! Reaching the cap is logged once per episode: once when a connection first
//! has to be closed for room, and once, with how many were, when an accept
//! finds more than a quarter of the places free again. A crowd that comes and
//! goes near the cap does not start a new episode with every connection.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::activity::Activity;

/// How long a new connection may go without a whole request head before it
/// counts as silent: ample for any client that means to send one, on a
/// loaded machine too.
const GRACE: Duration = Duration::from_secs(1);

/// Requests a second, averaged since the accept, above which a keep-alive
/// connection with more than one request counts as at work. An app's
/// connection that calls once a second is far below; a busy pool's
/// connections are far above, on a debug build too, even when they are
/// closed and reconnect every few milliseconds.
const AT_WORK: u64 = 10;

/// Where a connection stands in the order of whom to ask to close first; see
/// this module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Silent,
    AtWork,
    New,
    Idle,
    UnderWay,
}

impl Rank {
    fn of(activity: &Activity, now: Instant) -> Rank {
        let age = now.saturating_duration_since(activity.accepted());
        if activity.is_under_way() {
            Rank::UnderWay
        } else if !activity.has_had_a_head() {
            if age >= GRACE {
                Rank::Silent
            } else {
                Rank::New
            }
        } else if activity.requests() >= 2
            && u128::from(activity.requests()) * 1000 > u128::from(AT_WORK) * age.as_millis()
        {
            Rank::AtWork
        } else {
            Rank::Idle
        }
    }
}

/// How many connections asked to close may still be ending, beyond the cap.
/// The accept loop hands the new connection the place of the one it asks to
/// close at once, rather than waiting for that connection's task to run and
/// end: under a crowd of busy clients, that wait, a turn of every ready task
/// per accept, was what made a new client wait in the backlog (issue 24).
const MAX_LEAVING: usize = 16;

/// Room for `max` connections at once, and for at most [`MAX_LEAVING`] more
/// that have been asked to close and are ending.
#[derive(Debug)]
pub struct ConnectionCap {
    places: Arc<Semaphore>,
    leaving: Arc<Semaphore>,
    max: usize,
    /// The connections handed a place, some of them ended: pruned when it
    /// reaches twice the cap, so it stays that small.
    open: Vec<Weak<Held>>,
    /// Connections closed for room since the episode at the cap began, if
    /// one is under way: one began when a connection was first closed for
    /// room, and has not found more than a quarter of the places free since.
    episode: Option<u64>,
}

/// What an open connection holds: its place under the cap (or, once asked
/// to close, a place among the leaving), and its activity.
#[derive(Debug)]
struct Held {
    permit: Mutex<OwnedSemaphorePermit>,
    activity: Arc<Activity>,
}

/// A connection's place, freed when it is dropped, and the activity the cap
/// reads to choose whom to close.
#[derive(Debug)]
pub struct Place(Arc<Held>);

impl Place {
    pub fn activity(&self) -> &Arc<Activity> {
        &self.0.activity
    }
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max)),
            leaving: Arc::new(Semaphore::new(MAX_LEAVING.min(max))),
            max,
            open: Vec::with_capacity(2 * max),
            episode: None,
        }
    }

    /// A place for a connection just accepted. At the cap, asks the one the
    /// rule in this module's documentation picks to close and takes its
    /// place, once fewer than [`MAX_LEAVING`] are still ending.
    pub async fn room(&mut self) -> Place {
        let free = self.places.available_permits();
        let permit = match Arc::clone(&self.places).try_acquire_owned() {
            Ok(permit) => {
                if free > self.max / 4
                    && let Some(closed) = self.episode.take()
                {
                    info!(
                        max_connections = self.max,
                        closed_for_room = closed,
                        "below the connection cap again"
                    );
                }
                permit
            }
            Err(_) => self.take_a_place().await,
        };
        let held = Arc::new(Held {
            permit: Mutex::new(permit),
            activity: Arc::new(Activity::new()),
        });
        if self.open.len() >= 2 * self.max {
            self.open.retain(|held| held.strong_count() > 0);
        }
        self.open.push(Arc::downgrade(&held));
        Place(held)
    }

    /// At the cap: the place of the connection that the rule in this
    /// module's documentation picks, asked to close, which ends in a place
    /// among the leaving. Counts it in the episode.
    async fn take_a_place(&mut self) -> OwnedSemaphorePermit {
        // The semaphores are never closed, so acquiring can only wait, not
        // fail.
        const OPEN: &str = "the connection cap's semaphores are never closed";
        let leaving = Arc::clone(&self.leaving).acquire_owned().await.expect(OPEN);
        // A place may have come free while the leaving were ending.
        if let Ok(permit) = Arc::clone(&self.places).try_acquire_owned() {
            return permit;
        }
        let now = Instant::now();
        let picked = self
            .open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|held| !held.activity.is_closing())
            .min_by_key(|held| {
                let activity = &held.activity;
                (Rank::of(activity, now), activity.last_progress())
            });
        *self.episode.get_or_insert_with(|| {
            warn!(
                max_connections = self.max,
                "at the connection cap; each new connection takes the place of an open one, silent ones first (see docs/availability.md)"
            );
            0
        }) += 1;
        match picked {
            Some(held) => {
                held.activity.close();
                let mut permit = held.permit.lock().unwrap_or_else(PoisonError::into_inner);
                std::mem::replace(&mut *permit, leaving)
            }
            // Every open connection has been asked already: the first of
            // them to end frees a place.
            None => {
                drop(leaving);
                Arc::clone(&self.places).acquire_owned().await.expect(OPEN)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Polls `room` once: the place if there is one now.
    async fn room_now(room: impl Future<Output = Place>) -> Option<Place> {
        tokio::time::timeout(Duration::ZERO, room).await.ok()
    }

    fn closing(held: &[Place]) -> Vec<bool> {
        held.iter().map(|p| p.activity().is_closing()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_longest_without_a_head_gives_up_its_place_at_once() {
        let mut cap = ConnectionCap::new(3);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(room_now(cap.room()).await.expect("a place below the cap"));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // The first connection completes a head, and later the third: the
        // second, the only one without a head, goes first, then the first.
        drop(held[0].activity().request());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(held[2].activity().request());
        assert!(cap.episode.is_none(), "filling up is not an episode");

        // The new connection has a place while the one asked is still open.
        held.push(room_now(cap.room()).await.expect("the place given up"));
        assert_eq!(closing(&held), [false, true, false, false]);
        drop(held.remove(1));
        drop(held[1].activity().request());

        held.push(room_now(cap.room()).await.expect("the place given up"));
        assert_eq!(
            closing(&held),
            [false, false, true, false],
            "the one without a head, however young, before any with one"
        );
        drop(held.remove(2));
        drop(held[2].activity().request());
        held.push(room_now(cap.room()).await.expect("the place given up"));
        assert_eq!(
            closing(&held),
            [true, false, false, false],
            "then the oldest head"
        );
        assert_eq!(cap.episode, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_then_at_work_then_new_then_idle_then_under_way() {
        let silent = Arc::new(Activity::new());
        let (at_work, idle, under_way) = (
            Arc::new(Activity::new()),
            Arc::new(Activity::new()),
            Arc::new(Activity::new()),
        );
        // Two seconds: 30 requests on one keep-alive connection, one on
        // another, as an app calling now and then.
        for _ in 0..30 {
            drop(at_work.request());
            tokio::time::advance(Duration::from_millis(2000 / 30)).await;
        }
        drop(idle.request());
        let _answering = under_way.request();
        let new = Arc::new(Activity::new());
        tokio::time::advance(GRACE / 2).await;

        let now = Instant::now();
        let ranks: Vec<Rank> = [&new, &idle, &under_way, &at_work, &silent]
            .iter()
            .map(|activity| Rank::of(activity, now))
            .collect();
        assert_eq!(
            ranks,
            [
                Rank::New,
                Rank::Idle,
                Rank::UnderWay,
                Rank::AtWork,
                Rank::Silent
            ]
        );
        assert!(Rank::Silent < Rank::AtWork && Rank::AtWork < Rank::New);
        assert!(Rank::New < Rank::Idle && Rank::Idle < Rank::UnderWay);

        // Once its grace is over, a new connection without a head is silent;
        // a connection that stops working becomes idle.
        tokio::time::advance(GRACE).await;
        assert_eq!(Rank::of(&new, Instant::now()), Rank::Silent);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(Rank::of(&at_work, Instant::now()), Rank::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_a_request_under_way_is_asked_last() {
        let mut cap = ConnectionCap::new(2);
        let first = room_now(cap.room()).await.expect("a place");
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = room_now(cap.room()).await.expect("a place");
        // The older one has a slow request under way; the younger has not
        // even sent a head, and still goes first.
        let _under_way = first.activity().request();
        let _third = room_now(cap.room()).await.expect("the place given up");
        assert!(!first.activity().is_closing());
        assert!(second.activity().is_closing());
    }

    #[tokio::test]
    async fn no_more_than_max_leaving_connections_are_ending_at_once() {
        let mut cap = ConnectionCap::new(2 * MAX_LEAVING);
        let mut held = Vec::new();
        for _ in 0..3 * MAX_LEAVING {
            held.push(room_now(cap.room()).await.expect("a place or one given up"));
        }
        assert_eq!(closing(&held).iter().filter(|c| **c).count(), MAX_LEAVING);
        let mut next = std::pin::pin!(cap.room());
        assert!(
            room_now(&mut next).await.is_none(),
            "all the leaving are ending"
        );
        // One of the leaving ends: the next connection has a place.
        let ended = held.iter().position(|p| p.activity().is_closing()).unwrap();
        drop(held.remove(ended));
        held.push(room_now(&mut next).await.expect("the place given up"));
        assert_eq!(closing(&held).iter().filter(|c| **c).count(), MAX_LEAVING);
    }

    #[tokio::test]
    async fn an_episode_lasts_until_more_than_a_quarter_of_the_places_are_free() {
        let mut cap = ConnectionCap::new(8);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(room_now(cap.room()).await.expect("a place"));
        }
        for _ in 0..2 {
            held.push(room_now(cap.room()).await.expect("the place given up"));
            held.retain(|place| !place.activity().is_closing());
        }
        assert_eq!(cap.episode, Some(2), "two closed for room in one episode");

        // 2 of 8 free: a quarter, not more.
        held.truncate(6);
        held.push(room_now(cap.room()).await.expect("a place at once"));
        assert_eq!(cap.episode, Some(2), "a quarter free does not end it");
        // 3 of 8 free.
        held.truncate(5);
        let _room = room_now(cap.room()).await.expect("a place at once");
        assert_eq!(cap.episode, None, "more than a quarter free ends it");
    }

    #[tokio::test]
    async fn ended_connections_are_forgotten_and_a_cap_of_one_makes_room() {
        let mut cap = ConnectionCap::new(1);
        for _ in 0..10 {
            drop(room_now(cap.room()).await.expect("a place"));
        }
        assert!(cap.open.len() <= 2, "{} connections kept", cap.open.len());

        let only = room_now(cap.room()).await.expect("a place");
        let second = room_now(cap.room()).await.expect("the place given up");
        assert!(only.activity().is_closing());
        // A cap of one leaves room for one connection ending, no more.
        let mut third = std::pin::pin!(cap.room());
        assert!(room_now(&mut third).await.is_none());
        drop(only);
        let _third = room_now(&mut third).await.expect("the place given up");
        assert!(second.activity().is_closing());
    }
}
