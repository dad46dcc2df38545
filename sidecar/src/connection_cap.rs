//! The cap on open connections, which bounds the sidecar's memory.
//!
//! Every open connection holds memory whatever its client sends: a task,
//! hyper's buffers, up to a whole request head. So the number of connections
//! open at once, not the clients' good manners, is what keeps the sidecar
//! inside its container's memory limit.
//!
//! The accept loop takes room for a connection *before* it accepts one. At
//! the cap it stops calling `accept`, and new connections wait in the
//! kernel's listen backlog until one closes: backpressure. Accepting them
//! only to close them at once would turn a busy moment into failed requests.
//!
//! Reaching the cap is logged once per episode: once when the accept loop
//! first has to wait, and once when it finds more than a quarter of the
//! places free again. While clients keep the cap full, every freed place is
//! taken at once, and a crowd that comes and goes near the cap does not
//! start a new episode with every connection.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

/// Room for `max` connections at once.
#[derive(Debug)]
pub struct ConnectionCap {
    places: Arc<Semaphore>,
    max: usize,
    /// Whether the accept loop has had to wait for room, and has not found
    /// more than a quarter of the places free since: an episode at the cap
    /// is under way.
    at_cap: bool,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max)),
            max,
            at_cap: false,
        }
    }

    /// Waits for room for one more connection. The connection holds the
    /// place until it drops the returned permit.
    pub async fn room(&mut self) -> OwnedSemaphorePermit {
        let free = self.places.available_permits();
        if let Ok(place) = Arc::clone(&self.places).try_acquire_owned() {
            if self.at_cap && free > self.max / 4 {
                self.at_cap = false;
                info!(max_connections = self.max, "below the connection cap again");
            }
            return place;
        }
        if !self.at_cap {
            self.at_cap = true;
            warn!(
                max_connections = self.max,
                "at the connection cap; new connections wait in the listen backlog"
            );
        }
        // The semaphore is never closed, so acquiring can only wait, not fail.
        Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the connection cap's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Polls `room` once: the permit if there is room now.
    async fn room_now(
        room: impl Future<Output = OwnedSemaphorePermit>,
    ) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(Duration::ZERO, room).await.ok()
    }

    #[tokio::test]
    async fn holds_at_most_max_places_and_a_waiter_gets_the_one_freed() {
        let mut cap = ConnectionCap::new(2);
        let first = room_now(cap.room()).await.expect("a first place");
        let _second = room_now(cap.room()).await.expect("a second place");
        {
            let mut waiting = std::pin::pin!(cap.room());
            assert!(room_now(&mut waiting).await.is_none(), "a third place");
            drop(first);
            let _third = room_now(&mut waiting).await.expect("the freed place");
        }
        assert!(cap.at_cap, "a place found after waiting does not end it");
    }

    #[tokio::test]
    async fn an_episode_lasts_until_more_than_a_quarter_of_the_places_are_free() {
        let mut cap = ConnectionCap::new(8);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(room_now(cap.room()).await.expect("a place"));
        }
        assert!(!cap.at_cap, "filling up is not an episode");
        {
            let mut waiting = std::pin::pin!(cap.room());
            assert!(room_now(&mut waiting).await.is_none());
            held.pop();
            held.push(room_now(&mut waiting).await.expect("the freed place"));
        }
        assert!(cap.at_cap, "waiting for room starts an episode");

        // 2 of 8 free: a quarter, not more.
        held.truncate(6);
        held.push(room_now(cap.room()).await.expect("a place at once"));
        assert!(cap.at_cap, "a quarter free does not end it");
        // 3 of 8 free.
        held.truncate(5);
        let _room = room_now(cap.room()).await.expect("a place at once");
        assert!(!cap.at_cap, "more than a quarter free ends it");
    }

    #[tokio::test]
    async fn a_cap_of_one_ends_its_episode_when_its_place_is_free() {
        let mut cap = ConnectionCap::new(1);
        let only = room_now(cap.room()).await.expect("a place");
        let freed = {
            let mut waiting = std::pin::pin!(cap.room());
            assert!(room_now(&mut waiting).await.is_none());
            drop(only);
            room_now(&mut waiting).await.expect("the freed place")
        };
        assert!(cap.at_cap);
        drop(freed);
        let _room = room_now(cap.room()).await.expect("a place at once");
        assert!(!cap.at_cap);
    }
}
