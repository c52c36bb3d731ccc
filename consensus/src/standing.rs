//! Peers' standing: what this replica does about a peer whose messages prove it faulty.
//!
//! Two kinds of evidence count against a peer: frames its connection carried that no
//! correct replica sends (oversized, malformed, signed by another key: the engine's
//! `Strikes`), and validly signed messages whose content no correct replica sends (the
//! core's [`crate::replica::Event::PeerFault`]: a pre-prepare from a backup, conflicting
//! pre-prepares, an invalid view change or new view, a bad commit certificate). A correct
//! peer produces neither, so the thresholds can be low; they are not zero, so that one
//! stray message (a peer of another version, a bug) is logged and counted before anything
//! is cut.
//!
//! - From [`FAULTS_THROTTLE`] faults within [`FAULT_WINDOW`], the peer is **throttled**:
//!   each of its messages waits [`THROTTLE_DELAY`] before the core sees it, so that it can
//!   no longer fill the core's queue with messages that cost a check each (a view change
//!   carries up to hundreds of certificates).
//! - From [`FAULTS_BAN`] faults, it is **banned** for [`BAN`]: its connections are closed at
//!   their next frame and new ones refused. The ban ends on its own, since a Byzantine
//!   replica that behaves again still counts toward quorums; a peer that goes on is banned
//!   again at once (its count starts from the ban threshold).
//!
//! Liveness: a banned replica is one of the at most f faulty ones, so the 2f + 1 correct
//! replicas still reach each other. Every fault, throttle and ban is counted in the
//! metrics (`dualchain_consensus_peer_faults`, `_peer_throttles`, `_peer_bans`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::message::ReplicaId;

/// Faults within [`FAULT_WINDOW`] from which a peer's messages are delayed.
pub const FAULTS_THROTTLE: u32 = 8;
/// Faults within [`FAULT_WINDOW`] from which a peer is disconnected for [`BAN`].
pub const FAULTS_BAN: u32 = 32;
/// A peer's count starts again after this long without a fault.
pub const FAULT_WINDOW: Duration = Duration::from_secs(600);
/// How long a banned peer's connections are refused.
pub const BAN: Duration = Duration::from_secs(60);
/// The wait of each message of a throttled peer.
pub const THROTTLE_DELAY: Duration = Duration::from_millis(20);

/// What this replica does with a peer's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Good,
    Throttled,
    Banned,
}

/// What a fault changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// The peer became throttled.
    Throttled,
    /// The peer was banned.
    Banned,
}

#[derive(Debug, Default)]
struct Peer {
    faults: u32,
    last_fault: Option<Instant>,
    banned_until: Option<Instant>,
}

/// Every peer's standing, shared by the core and the connection tasks.
#[derive(Debug, Default)]
pub struct Standings {
    peers: Mutex<HashMap<ReplicaId, Peer>>,
}

impl Standings {
    /// One more fault of `peer` at `now`.
    pub fn fault(&self, peer: ReplicaId, now: Instant) -> Change {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let p = peers.entry(peer).or_default();
        if p.last_fault.is_some_and(|t| now.saturating_duration_since(t) > FAULT_WINDOW) {
            p.faults = 0;
        }
        p.last_fault = Some(now);
        p.faults = p.faults.saturating_add(1);
        if p.banned_until.is_some_and(|t| now < t) {
            return Change::None;
        }
        if p.faults >= FAULTS_BAN {
            p.banned_until = Some(now + BAN);
            // Banned again at its next fault once the ban ends, unless it stays quiet for
            // a whole window.
            p.faults = FAULTS_BAN - 1;
            Change::Banned
        } else if p.faults == FAULTS_THROTTLE {
            Change::Throttled
        } else {
            Change::None
        }
    }

    /// `peer`'s standing at `now`.
    pub fn standing(&self, peer: ReplicaId, now: Instant) -> Standing {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = peers.get(&peer) else { return Standing::Good };
        if p.banned_until.is_some_and(|t| now < t) {
            return Standing::Banned;
        }
        let recent = p.last_fault.is_some_and(|t| now.saturating_duration_since(t) <= FAULT_WINDOW);
        if recent && p.faults >= FAULTS_THROTTLE {
            Standing::Throttled
        } else {
            Standing::Good
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faulty_peer_is_throttled_then_banned_then_let_back() {
        let s = Standings::default();
        let t0 = Instant::now();
        let changes: Vec<Change> = (0..FAULTS_BAN).map(|_| s.fault(3, t0)).collect();
        assert_eq!(changes.iter().filter(|c| **c == Change::Throttled).count(), 1);
        assert_eq!(changes[FAULTS_THROTTLE as usize - 1], Change::Throttled);
        assert_eq!(changes.last(), Some(&Change::Banned));
        assert_eq!(s.standing(3, t0), Standing::Banned);
        assert_eq!(s.standing(2, t0), Standing::Good, "other peers are not touched");
        // Faults during the ban change nothing; after it the peer is throttled, and its
        // next fault bans it again.
        assert_eq!(s.fault(3, t0 + BAN / 2), Change::None);
        assert_eq!(s.standing(3, t0 + BAN), Standing::Throttled);
        assert_eq!(s.fault(3, t0 + BAN), Change::Banned);
        // Quiet for a whole window: the count starts again.
        let later = t0 + BAN * 2 + FAULT_WINDOW + Duration::from_secs(1);
        assert_eq!(s.standing(3, later), Standing::Good);
        assert_eq!(s.fault(3, later), Change::None);
        assert_eq!(s.standing(3, later), Standing::Good);
    }

    #[test]
    fn faults_spread_beyond_the_window_never_add_up() {
        let s = Standings::default();
        let t0 = Instant::now();
        for k in 0..100u32 {
            let at = t0 + (FAULT_WINDOW + Duration::from_secs(1)) * k;
            assert_eq!(s.fault(1, at), Change::None);
            assert_eq!(s.standing(1, at), Standing::Good);
        }
    }
}
