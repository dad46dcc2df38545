//! The cap on open connections, which bounds the sidecar's memory, and what
//! happens at the cap, which keeps it available.
//!
//! Every open connection holds memory whatever its client sends: a task,
//! hyper's buffers, up to a whole request head. So the number of connections
//! open at once, not the clients' good manners, is what keeps the sidecar
//! inside its container's memory limit.
//!
//! The accept loop accepts first, then takes a place for the connection. At
//! the cap, it closes one open connection, and the new one takes its place.
//! Waiting instead, with new connections held in the kernel's listen
//! backlog, let anyone who holds the cap's worth of silent connections keep
//! every new client waiting for the header-read timeout. The one closed:
//!
//! 1. Of the connections whose client has not yet sent one whole request
//!    head, the one accepted longest ago: silent and slowloris clients, oldest
//!    first, which are what a flood is made of. A new client is the youngest
//!    of them, and is closed only after every one older than it.
//! 2. Only if every client has sent a request: the one whose last request
//!    head is the oldest, an idle keep-alive connection. A server may close
//!    an inactive connection at any time (RFC 9112, section 9.5), and clients
//!    may retry a request on a kept-alive connection that closed before it
//!    (section 9.3.1).
//!
//! So an app that keeps a connection open and sends a request a second is
//! never closed while a flood's connections are there to close instead.
//!
//! Reaching the cap is logged once per episode: once when a connection first
//! has to be closed for room, and once, with how many were, when an accept
//! finds more than a quarter of the places free again. A crowd that comes and
//! goes near the cap does not start a new episode with every connection.

use std::sync::{Arc, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::head_clock::HeadClock;

/// Room for `max` connections at once.
#[derive(Debug)]
pub struct ConnectionCap {
    places: Arc<Semaphore>,
    max: usize,
    /// The clocks of the connections handed a place, some of them ended:
    /// pruned when it reaches twice the cap, so it stays that small.
    open: Vec<Weak<HeadClock>>,
    /// Connections closed for room since the episode at the cap began, if
    /// one is under way: one began when a connection was first closed for
    /// room, and has not found more than a quarter of the places free since.
    episode: Option<u64>,
}

/// A connection's place under the cap, freed when it is dropped, and the
/// clock the cap reads to choose whom to close.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    pub clock: Arc<HeadClock>,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max)),
            max,
            open: Vec::with_capacity(2 * max),
            episode: None,
        }
    }

    /// A place for a connection just accepted. At the cap, closes the one
    /// that has gone longest without a complete head, and waits for it to end.
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
            Err(_) => {
                self.close_the_longest_without_a_head();
                // The semaphore is never closed, so acquiring can only wait,
                // not fail; the connection told to close frees its place at
                // its task's next turn.
                Arc::clone(&self.places)
                    .acquire_owned()
                    .await
                    .expect("the connection cap's semaphore is never closed")
            }
        };
        let clock = Arc::new(HeadClock::new());
        if self.open.len() >= 2 * self.max {
            self.open.retain(|clock| clock.strong_count() > 0);
        }
        self.open.push(Arc::downgrade(&clock));
        Place {
            _permit: permit,
            clock,
        }
    }

    /// Tells the connection to close that the rule in this module's
    /// documentation picks, and counts it in the episode.
    fn close_the_longest_without_a_head(&mut self) {
        let oldest = self
            .open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|clock| !clock.is_closing())
            .min_by_key(|clock| (clock.has_had_a_head(), clock.last_progress()));
        // None only when every open connection has been told already: then
        // the first of them to end frees the place.
        if let Some(clock) = oldest {
            clock.close();
        }
        let closed = self.episode.get_or_insert_with(|| {
            warn!(
                max_connections = self.max,
                "at the connection cap; each new connection takes the place of the one longest without a complete request head"
            );
            0
        });
        *closed += 1;
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

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_longest_without_a_head_makes_room() {
        let mut cap = ConnectionCap::new(3);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(room_now(cap.room()).await.expect("a place below the cap"));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // The first connection completes a head, and later the third: the
        // second, the only one without a head, goes first, then the first.
        held[0].clock.head_completed();
        tokio::time::advance(Duration::from_secs(1)).await;
        held[2].clock.head_completed();
        assert!(cap.episode.is_none(), "filling up is not an episode");

        {
            let mut fourth = std::pin::pin!(cap.room());
            assert!(room_now(&mut fourth).await.is_none(), "over the cap");
            let closing: Vec<bool> = held.iter().map(|p| p.clock.is_closing()).collect();
            assert_eq!(closing, [false, true, false]);
            // Its task ends: the place is the new connection's.
            held.remove(1);
            held.push(room_now(&mut fourth).await.expect("the place made"));
        }
        held[2].clock.head_completed();

        let mut fifth = std::pin::pin!(cap.room());
        assert!(room_now(&mut fifth).await.is_none(), "over the cap");
        let closing: Vec<bool> = held.iter().map(|p| p.clock.is_closing()).collect();
        assert_eq!(closing, [true, false, false], "the oldest head goes");
    }

    #[tokio::test]
    async fn an_episode_lasts_until_more_than_a_quarter_of_the_places_are_free() {
        let mut cap = ConnectionCap::new(8);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(room_now(cap.room()).await.expect("a place"));
        }
        for _ in 0..2 {
            let mut ninth = std::pin::pin!(cap.room());
            assert!(room_now(&mut ninth).await.is_none());
            held.retain(|place| !place.clock.is_closing());
            held.push(room_now(&mut ninth).await.expect("the place made"));
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
        assert!(cap.open.len() <= 2, "{} clocks kept", cap.open.len());

        let only = room_now(cap.room()).await.expect("a place");
        let mut second = std::pin::pin!(cap.room());
        assert!(room_now(&mut second).await.is_none());
        assert!(only.clock.is_closing());
        drop(only);
        let _second = room_now(&mut second).await.expect("the place made");
    }
}
