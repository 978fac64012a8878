//! Which chunk a peer should fetch next: a pure state machine over the
//! chunks of one download.
//!
//! Chunks are handed out lowest index first, so the file fills from the
//! front (which keeps the whole-file hash close behind). When nothing is
//! left unassigned (the end-game), a peer with room in its pipeline may take
//! a chunk another peer is already fetching, so one slow peer cannot hold
//! up the finish; whichever copy verifies first wins.
//!
//! Invariants: a chunk is `Done` at most once and never leaves `Done`;
//! `fetchers` counts the fetches in flight for a chunk and is at most
//! [`MAX_FETCHERS`]; `in_flight` lists exactly the chunks with a fetch in
//! flight; `first_missing` is at most the lowest `Missing` index.

/// Most peers fetching the same chunk at once (end-game duplicates).
pub const MAX_FETCHERS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    InFlight { fetchers: u8 },
    Done,
}

/// The chunk states of one download.
#[derive(Debug)]
pub struct Scheduler {
    chunks: Vec<State>,
    first_missing: usize,
    in_flight: Vec<u32>,
    done: usize,
}

impl Scheduler {
    /// A download of `count` chunks, none fetched.
    pub fn new(count: usize) -> Scheduler {
        Scheduler {
            chunks: vec![State::Missing; count],
            first_missing: 0,
            in_flight: Vec::new(),
            done: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
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

    /// The next chunk for a peer already fetching `busy` and that must not
    /// be given any of `avoid` (chunks it sent bad data for). `None` when
    /// there is nothing useful for it to do.
    pub fn next_for(&mut self, busy: &[u32], avoid: &[u32]) -> Option<u32> {
        let skip = |i: u32| busy.contains(&i) || avoid.contains(&i);
        // Missing chunks, lowest first. `avoid` is tiny, so scanning past
        // its entries costs nothing.
        let mut i = self.first_missing;
        while i < self.chunks.len() {
            if self.chunks[i] == State::Missing {
                if !skip(i as u32) {
                    self.chunks[i] = State::InFlight { fetchers: 1 };
                    self.in_flight.push(i as u32);
                    return Some(i as u32);
                }
            } else if i == self.first_missing {
                self.first_missing += 1;
            }
            i += 1;
        }
        // End-game: duplicate a chunk someone else is fetching.
        let dup = self.in_flight.iter().copied().find(|&c| {
            !skip(c)
                && matches!(self.chunks[c as usize], State::InFlight { fetchers } if fetchers < MAX_FETCHERS)
        })?;
        if let State::InFlight { fetchers } = &mut self.chunks[dup as usize] {
            *fetchers += 1;
        }
        Some(dup)
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
    fn hands_out_lowest_first_then_duplicates_in_the_end_game() {
        let mut s = Scheduler::new(4);
        assert_eq!(s.next_for(&[], &[]), Some(0));
        assert_eq!(s.next_for(&[0], &[]), Some(1));
        assert_eq!(s.next_for(&[], &[2]), Some(3), "avoids the chunk it spoiled");
        assert_eq!(s.next_for(&[], &[]), Some(2));
        // Nothing missing: a peer fetching 0 and 1 may duplicate 2 or 3.
        let dup = s.next_for(&[0, 1], &[]).unwrap();
        assert!(dup == 2 || dup == 3);
        // At most two fetchers per chunk.
        let other = s.next_for(&[0, 1, dup], &[]).unwrap();
        assert_ne!(other, dup);
        assert_eq!(s.next_for(&[0, 1, 2, 3], &[]), None);
        assert_eq!(s.next_for(&[], &[]), Some(0), "0 has one fetcher");
        assert_eq!(s.next_for(&[], &[]), Some(1));
        assert_eq!(s.next_for(&[], &[]), None, "everything has two fetchers");
    }

    #[test]
    fn release_makes_a_chunk_available_again_and_done_is_final() {
        let mut s = Scheduler::new(3);
        for _ in 0..3 {
            s.next_for(&[], &[]);
        }
        s.release(1);
        assert_eq!(s.next_for(&[0, 2], &[]), Some(1), "released chunk first");
        assert!(s.complete(1));
        assert!(!s.complete(1), "a late duplicate is not counted twice");
        s.release(1);
        assert!(s.is_done(1), "release after done changes nothing");
        assert!(s.complete(0) && s.complete(2));
        assert!(s.is_complete());
        assert_eq!(s.done(), 3);
        assert_eq!(s.next_for(&[], &[]), None);
    }

    #[test]
    fn duplicate_fetches_release_one_at_a_time() {
        let mut s = Scheduler::new(1);
        assert_eq!(s.next_for(&[], &[]), Some(0));
        assert_eq!(s.next_for(&[], &[]), Some(0), "end-game duplicate");
        s.release(0);
        assert_eq!(s.next_for(&[0], &[]), None, "one fetch still in flight");
        s.release(0);
        assert_eq!(s.next_for(&[], &[]), Some(0), "missing again");
    }

    #[test]
    fn empty_download_is_complete_and_done_chunks_are_skipped() {
        assert!(Scheduler::new(0).is_complete());
        let mut s = Scheduler::new(5);
        for i in [0, 1, 3] {
            s.complete(i);
        }
        assert_eq!(s.next_for(&[], &[]), Some(2));
        assert_eq!(s.next_for(&[], &[]), Some(4));
        assert_eq!(s.done(), 3);
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
                    if let Some(c) = s.next_for(&peers[p], &[]) {
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
}
