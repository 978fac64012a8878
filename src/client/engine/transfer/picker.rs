//! Which chunk a peer should fetch next: a pure state machine over the
//! chunks of one download.
//!
//! Each peer is given the *rarest* missing chunk it has: the one the
//! fewest connected peers hold, at random among equals, so a new file
//! spreads across a swarm of downloaders instead of every one of them
//! draining the one seeder (with only complete peers every chunk is equally
//! rare, and downloaders that start together still fetch different chunks
//! from the seeder, which they can then trade). A complete peer is given
//! only chunks no partial peer holds, so a seeder uploads what the swarm
//! lacks, not what it can already trade. The rarest is sought among
//! the first [`RAREST_WINDOW`] missing candidates from the front of the
//! file, which bounds the work per request on huge files and keeps the
//! file filling roughly front to back.
//!
//! When nothing is left unassigned (the end-game), a peer with room in its
//! pipeline may take a chunk another peer is already fetching, so one slow
//! peer cannot hold up the finish; whichever copy verifies first wins.
//!
//! Invariants: a chunk is `Done` at most once and never leaves `Done`;
//! `fetchers` counts the fetches in flight for a chunk and is at most
//! [`MAX_FETCHERS`]; `in_flight` lists exactly the chunks with a fetch in
//! flight; `first_missing` is at most the lowest `Missing` index;
//! `avail[i]` counts the partial peers holding chunk `i` (complete peers
//! are counted once, in `complete_peers`).

use crate::client::engine::transfer::bitmap::bit;
use crate::rand::Rng;

/// Most peers fetching the same chunk at once (end-game duplicates).
pub const MAX_FETCHERS: u8 = 2;
/// Candidates looked at per request when seeking the rarest chunk.
pub const RAREST_WINDOW: usize = 4096;

/// What a peer holds of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Has {
    /// Not known yet (its answer to `GetHave` is on its way).
    Unknown,
    /// Every chunk.
    All,
    /// The chunks whose bits are set (bit `i % 8` of byte `i / 8`).
    Bits(Vec<u8>),
}

impl Has {
    pub fn contains(&self, index: u32) -> bool {
        match self {
            Has::Unknown => false,
            Has::All => true,
            Has::Bits(bits) => bit(bits, index as usize),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    InFlight { fetchers: u8 },
    Done,
}

/// What the search for the rarest chunk found.
enum Pick {
    Chunk(u32),
    /// Missing chunks this (complete) peer could serve, all held by a
    /// partial peer.
    LeftToPartialPeers,
    Nothing,
}

/// The chunk states of one download.
#[derive(Debug)]
pub struct Scheduler {
    chunks: Vec<State>,
    first_missing: usize,
    in_flight: Vec<u32>,
    done: usize,
    /// Partial peers holding each chunk (allocated with the first one).
    avail: Vec<u16>,
    partial_peers: usize,
    rng: Rng,
}

impl Scheduler {
    /// A download of `count` chunks, none fetched.
    pub fn new(count: usize) -> Scheduler {
        Scheduler {
            chunks: vec![State::Missing; count],
            first_missing: 0,
            in_flight: Vec::new(),
            done: 0,
            avail: Vec::new(),
            partial_peers: 0,
            rng: Rng::seeded(count as u64 ^ 0x5eed),
        }
    }

    /// Random tie-breaks from `rng` (a fixed seed otherwise).
    pub fn with_rng(mut self, rng: Rng) -> Scheduler {
        self.rng = rng;
        self
    }

    /// A connected peer's holdings became known.
    pub fn peer_joined(&mut self, has: &Has) {
        if let Has::Bits(bits) = has {
            if self.avail.is_empty() {
                self.avail = vec![0; self.chunks.len()];
            }
            self.partial_peers += 1;
            for (i, a) in self.avail.iter_mut().enumerate() {
                if bit(bits, i) {
                    *a = a.saturating_add(1);
                }
            }
        }
    }

    /// A connected peer left (with what it held).
    pub fn peer_left(&mut self, has: &Has) {
        if let Has::Bits(bits) = has {
            self.partial_peers = self.partial_peers.saturating_sub(1);
            for (i, a) in self.avail.iter_mut().enumerate() {
                if bit(bits, i) {
                    *a = a.saturating_sub(1);
                }
            }
        }
    }

    /// A partial peer announced a new chunk.
    pub fn peer_gained(&mut self, index: u32) {
        if let Some(a) = self.avail.get_mut(index as usize) {
            *a = a.saturating_add(1);
        }
    }

    /// A partial peer turned out to lack a chunk it claimed.
    pub fn peer_lost(&mut self, index: u32) {
        if let Some(a) = self.avail.get_mut(index as usize) {
            *a = a.saturating_sub(1);
        }
    }

    /// Chunks verified so far.
    pub fn done(&self) -> usize {
        self.done
    }

    pub fn is_complete(&self) -> bool {
        self.done == self.chunks.len()
    }

    pub fn is_done(&self, index: usize) -> bool {
        self.chunks.get(index) == Some(&State::Done)
    }

    /// Fetches of `index` in flight.
    pub fn fetchers(&self, index: u32) -> u8 {
        match self.chunks.get(index as usize) {
            Some(State::InFlight { fetchers }) => *fetchers,
            _ => 0,
        }
    }

    /// The next chunk for a peer holding `has`, already fetching `busy`,
    /// that must not be given any of `avoid` (chunks it sent bad data
    /// for). `None` when there is nothing useful for it to do.
    pub fn next_for(&mut self, has: &Has, busy: &[u32], avoid: &[u32]) -> Option<u32> {
        match self.rarest_missing(has, busy, avoid) {
            Pick::Chunk(i) => {
                self.chunks[i as usize] = State::InFlight { fetchers: 1 };
                self.in_flight.push(i);
                return Some(i);
            }
            // Not the end-game: what is left is for the partial peers.
            Pick::LeftToPartialPeers => return None,
            Pick::Nothing => {}
        }
        // End-game: duplicate a chunk someone else is fetching.
        let skip = |i: u32| busy.contains(&i) || avoid.contains(&i) || !has.contains(i);
        let dup = self.in_flight.iter().copied().find(|&c| {
            !skip(c)
                && matches!(self.chunks[c as usize], State::InFlight { fetchers } if fetchers < MAX_FETCHERS)
        })?;
        if let State::InFlight { fetchers } = &mut self.chunks[dup as usize] {
            *fetchers += 1;
        }
        Some(dup)
    }

    /// The missing chunk `has` holds that the fewest peers hold, at random
    /// among equals, among the first [`RAREST_WINDOW`] candidates.
    ///
    /// A complete peer (a seeder) is given only chunks no partial peer
    /// holds: the others it leaves to the downloaders that have them, so
    /// the seeder's upload goes to what the swarm lacks.
    fn rarest_missing(&mut self, has: &Has, busy: &[u32], avoid: &[u32]) -> Pick {
        let (mut best, mut best_avail, mut ties, mut seen) = (None, u16::MAX, 0u64, 0);
        let mut i = self.first_missing;
        while i < self.chunks.len() && seen < RAREST_WINDOW {
            let index = i as u32;
            if self.chunks[i] != State::Missing {
                if i == self.first_missing {
                    self.first_missing += 1;
                }
            } else if has.contains(index) && !busy.contains(&index) && !avoid.contains(&index) {
                seen += 1;
                let avail = self.avail.get(i).copied().unwrap_or(0);
                if avail < best_avail {
                    (best, best_avail, ties) = (Some(index), avail, 1);
                } else if avail == best_avail {
                    // Reservoir sampling: each equal candidate has the
                    // same chance in the end.
                    ties += 1;
                    if self.rng.below(ties as usize) == 0 {
                        best = Some(index);
                    }
                }
            }
            i += 1;
        }
        match best {
            Some(_) if *has == Has::All && best_avail > 0 => Pick::LeftToPartialPeers,
            Some(i) => Pick::Chunk(i),
            None => Pick::Nothing,
        }
    }

    /// A fetch of `index` delivered a verified chunk. Returns true the first
    /// time (the caller records it), false for a late duplicate.
    pub fn complete(&mut self, index: u32) -> bool {
        let i = index as usize;
        match self.chunks.get(i) {
            Some(State::InFlight { .. }) | Some(State::Missing) => {
                self.chunks[i] = State::Done;
                self.in_flight.retain(|&c| c != index);
                self.done += 1;
                true
            }
            _ => false,
        }
    }

    /// A fetch of `index` ended without a verified chunk (bad data, a peer
    /// gone, a timeout, or a duplicate cancelled): the chunk is available
    /// again once no fetch of it is left in flight.
    pub fn release(&mut self, index: u32) {
        let i = index as usize;
        if let Some(State::InFlight { fetchers }) = self.chunks.get(i).copied() {
            if fetchers > 1 {
                self.chunks[i] = State::InFlight {
                    fetchers: fetchers - 1,
                };
            } else {
                self.chunks[i] = State::Missing;
                self.in_flight.retain(|&c| c != index);
                self.first_missing = self.first_missing.min(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_chunk_once_then_duplicates_in_the_end_game() {
        let mut s = Scheduler::new(4);
        let mut given = Vec::new();
        for _ in 0..3 {
            // Never a chunk the peer spoiled (2), never one already given.
            let c = s.next_for(&Has::All, &[], &[2]).unwrap();
            assert!(c != 2 && !given.contains(&c), "{c} in {given:?}");
            given.push(c);
        }
        assert_eq!(
            s.next_for(&Has::All, &given, &[2]),
            None,
            "only 2 is left, and it is avoided; the rest are this peer's own"
        );
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(2));
        // Nothing missing: a peer fetching 0 and 1 may duplicate 2 or 3.
        let dup = s.next_for(&Has::All, &[0, 1], &[]).unwrap();
        assert!(dup == 2 || dup == 3);
        // At most two fetchers per chunk.
        let other = s.next_for(&Has::All, &[0, 1, dup], &[]).unwrap();
        assert_ne!(other, dup);
        assert_eq!(s.next_for(&Has::All, &[0, 1, 2, 3], &[]), None);
        let (a, b) = (
            s.next_for(&Has::All, &[], &[]).unwrap(),
            s.next_for(&Has::All, &[], &[]).unwrap(),
        );
        assert_eq!([a.min(b), a.max(b)], [0, 1], "0 and 1 had one fetcher each");
        assert_eq!(
            s.next_for(&Has::All, &[], &[]),
            None,
            "everything has two fetchers"
        );
    }

    #[test]
    fn release_makes_a_chunk_available_again_and_done_is_final() {
        let mut s = Scheduler::new(3);
        for _ in 0..3 {
            s.next_for(&Has::All, &[], &[]);
        }
        s.release(1);
        assert_eq!(
            s.next_for(&Has::All, &[0, 2], &[]),
            Some(1),
            "released chunk first"
        );
        assert!(s.complete(1));
        assert!(!s.complete(1), "a late duplicate is not counted twice");
        s.release(1);
        assert!(s.is_done(1), "release after done changes nothing");
        assert!(s.complete(0) && s.complete(2));
        assert!(s.is_complete());
        assert_eq!(s.done(), 3);
        assert_eq!(s.next_for(&Has::All, &[], &[]), None);
    }

    #[test]
    fn duplicate_fetches_release_one_at_a_time() {
        let mut s = Scheduler::new(1);
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(0));
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(0), "end-game duplicate");
        s.release(0);
        assert_eq!(
            s.next_for(&Has::All, &[0], &[]),
            None,
            "one fetch still in flight"
        );
        s.release(0);
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(0), "missing again");
    }

    #[test]
    fn empty_download_is_complete_and_done_chunks_are_skipped() {
        assert!(Scheduler::new(0).is_complete());
        let mut s = Scheduler::new(5);
        for i in [0, 1, 3] {
            s.complete(i);
        }
        let (a, b) = (
            s.next_for(&Has::All, &[], &[]).unwrap(),
            s.next_for(&Has::All, &[], &[]).unwrap(),
        );
        assert_eq!([a.min(b), a.max(b)], [2, 4]);
        assert_eq!(s.done(), 3);
    }

    #[test]
    fn with_partial_peers_the_rarest_chunk_goes_first() {
        let bits = |held: &[usize]| {
            let mut b = vec![0u8; 1];
            for &i in held {
                crate::client::engine::transfer::bitmap::set_bit(&mut b, i);
            }
            Has::Bits(b)
        };
        let mut s = Scheduler::new(6);
        // Two partial peers: chunks 0-3 are held by both, 4 by one, 5 by none.
        let (p1, p2) = (bits(&[0, 1, 2, 3, 4]), bits(&[0, 1, 2, 3]));
        s.peer_joined(&p1);
        s.peer_joined(&p2);
        // The seeder (it has everything) is asked for 5, which only it has.
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(5));
        // Everything else is held by a partial peer: left to them, and not
        // duplicated either (it is not the end-game).
        assert_eq!(s.next_for(&Has::All, &[], &[]), None);
        assert_eq!(s.next_for(&p1, &[], &[]).map(|c| c < 5), Some(true));
        // A partial peer is only asked for what it holds.
        let c = s.next_for(&p2, &[], &[]).unwrap();
        assert!(c < 4, "{c}");
        assert!(!Has::Unknown.contains(0));
        assert_eq!(
            s.next_for(&Has::Unknown, &[], &[]),
            None,
            "nothing for a peer not heard from"
        );
        // Ties are broken at random: over many fresh schedulers every
        // equally rare chunk gets picked.
        let mut picked = [false; 4];
        for seed in 0..64 {
            let mut s = Scheduler::new(4).with_rng(Rng::seeded(seed));
            picked[s.next_for(&Has::All, &[], &[]).unwrap() as usize] = true;
        }
        assert_eq!(picked, [true; 4]);
        // A peer leaving takes its chunks out of the counts.
        let mut s = Scheduler::new(2);
        s.peer_joined(&bits(&[0]));
        s.peer_joined(&bits(&[1]));
        s.peer_left(&bits(&[0]));
        s.peer_gained(1);
        assert_eq!(
            s.next_for(&Has::All, &[], &[]),
            Some(0),
            "0 is held by nobody now"
        );
    }

    /// A random walk of fetches, failures and completions keeps the
    /// invariants and always finishes.
    #[test]
    fn random_walk_finishes_with_every_chunk_once() {
        let mut rng = crate::rand::Rng::seeded(42);
        for round in 0..50 {
            let n = 1 + rng.below(40);
            let mut s = Scheduler::new(n);
            let mut peers: Vec<Vec<u32>> = vec![Vec::new(); 1 + rng.below(4)];
            let mut completions = 0;
            let mut steps = 0;
            while !s.is_complete() {
                steps += 1;
                assert!(steps < 100_000, "round {round} does not finish");
                let p = rng.below(peers.len());
                if peers[p].len() < 3 {
                    if let Some(c) = s.next_for(&Has::All, &peers[p], &[]) {
                        assert!(!s.is_done(c as usize));
                        peers[p].push(c);
                        continue;
                    }
                }
                if peers[p].is_empty() {
                    continue;
                }
                let c = peers[p].remove(0);
                if rng.below(4) == 0 {
                    s.release(c);
                } else if s.complete(c) {
                    completions += 1;
                } else {
                    s.release(c);
                }
            }
            assert_eq!(completions, n, "round {round}");
            assert_eq!(s.done(), n);
        }
    }

    #[test]
    fn claims_taken_back_free_the_seeder_to_fetch_them() {
        let mut claims = vec![0u8; 1];
        crate::client::engine::transfer::bitmap::set_bit(&mut claims, 0);
        let mut s = Scheduler::new(1);
        s.peer_joined(&Has::Bits(claims));
        assert_eq!(s.next_for(&Has::All, &[], &[]), None, "left to the partial peer");
        // The partial peer refused it after all.
        s.peer_lost(0);
        assert_eq!(s.next_for(&Has::All, &[], &[]), Some(0));
    }
}
