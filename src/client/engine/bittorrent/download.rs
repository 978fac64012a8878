//! One BitTorrent v2 download: what is known of the torrent (a `.torrent`
//! file, or only a magnet link's hash until the info dictionary arrives),
//! its piece layer, and which 16 KiB blocks are missing, asked for, or in
//! hand. Pure bookkeeping; connections ([`crate::client::engine::bittorrent::fetch`]) feed it.
//!
//! Invariants:
//! - `torrent` is set only from a `.torrent` file or from an info
//!   dictionary whose SHA-256 is the magnet's v2 hash; the piece layer only
//!   from the torrent (checked against `pieces root` when parsed) or from
//!   `hashes` messages proven up to `pieces root`.
//! - No block is asked for before the piece layer is complete, so every
//!   piece is verified the moment its last block is in. A piece that fails
//!   has all its blocks fetched again; only verified pieces count.
//! - Blame: every block of a piece in flight remembers its sender. A piece
//!   that fails with one sender blames it. One that fails with several is
//!   held while its block hashes are asked for (BEP 52, proven up to the
//!   root): the blocks that differ are fetched again and their senders
//!   blamed, and from then on a block of it that does not match is refused
//!   on arrival. Where the hashes cannot be had, the piece is fetched again
//!   from one peer alone (a suspect piece), and when it verifies, the
//!   senders of the earlier attempts' blocks that differ are blamed. Blame
//!   goes to [`BtDownload::blamed`], which the engine strikes: a corrupting
//!   peer is blamed for every piece it spoils, whatever the piece size.
//! - A block is asked of at most two connections at once (the second only
//!   when nothing is left unasked: the end game).

use crate::bt::merkle::{block_hash, Hash, HashRequest, Tree, BLOCK, MAX_HASH_COUNT};
use crate::bt::torrent::Torrent;
use crate::client::engine::transfer::bitmap::{bit, set_bit};
use crate::client::engine::transfer::peer_set::PeerSet;
use crate::client::engine::transfer::storage::PartFile;
use crate::client::engine::ConnId;
use crate::meta::{FileMeta, MetaBuilder};
use crate::names;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

/// Chunk size of the project's metadata made for a finished download.
const NATIVE_CHUNK: u32 = 1 << 20;
/// Layer hashes asked for in one `hash request` (libtorrent asks and
/// answers in 512s).
pub const LAYER_CHUNK: u32 = 512;

/// Pieces up to this size are assembled in memory and written once
/// verified: one write per piece instead of one per block, nothing
/// unverified on disk, and the whole-file hash fed from memory when the
/// piece is next in order. Larger pieces are written block by block.
const ASSEMBLE_MAX: u64 = 4 << 20;

/// A piece being downloaded.
struct Partial {
    leaves: Vec<Hash>,
    /// Who sent each block.
    from: Vec<Option<SocketAddr>>,
    /// Its bytes, when it is assembled in memory.
    data: Option<Vec<u8>>,
    /// Its blocks' hashes, proven (after it failed once): a block that
    /// does not match is refused on arrival and its sender blamed.
    known: Option<Vec<Hash>>,
}

/// A piece that failed with blocks from several peers, held whole while
/// its blocks' hashes are asked for (a hash request, BEP 52): then only
/// the blocks that differ are fetched again, and their senders blamed.
struct Held {
    partial: Partial,
    /// The connection asked for the hashes.
    asked: Option<ConnId>,
}

/// Most pieces held at once (each may hold its bytes: 4 MiB at most).
const MAX_HELD: usize = 4;

/// Failed attempts kept per suspect piece, and suspect pieces that keep
/// them (past that a piece is still fetched from one peer, but an
/// earlier attempt's senders are not blamed): bounds the memory a run of
/// bad pieces costs to 2 x 64 x 64 B a block.
const MAX_ATTEMPTS: usize = 2;
const MAX_SUSPECTS_KEPT: usize = 64;

/// A piece that failed with blocks from several peers.
#[derive(Default)]
struct Suspect {
    /// The one peer fetching it now.
    owner: Option<SocketAddr>,
    /// Earlier attempts: each block's hash and sender.
    attempts: Vec<(Vec<Hash>, Vec<Option<SocketAddr>>)>,
}

/// The whole-file hash being computed.
pub enum Whole {
    /// The project's metadata too (a second hash of every byte: only
    /// when the download may be shared).
    Native(MetaBuilder),
    /// Only the SHA-256, for the report; nothing can share the download.
    Sha(Sha256),
}

impl Whole {
    fn update(&mut self, data: &[u8]) {
        match self {
            Whole::Native(b) => b.update(data),
            Whole::Sha(h) => h.update(data),
        }
    }

    /// What the download reports: the project's metadata, or for a
    /// download that is not shared only its name, size and SHA-256 (no
    /// chunk hashes: not valid for sharing, and never shared).
    pub fn finish(self, name: &str, size: u64) -> Result<FileMeta, crate::meta::MetaError> {
        match self {
            Whole::Native(b) => b.finish(name),
            Whole::Sha(h) => Ok(FileMeta {
                name: name.to_string(),
                size,
                chunk_size: NATIVE_CHUNK,
                chunks: Vec::new(),
                sha256: h.finalize().into(),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Missing,
    /// Asked of this many connections (1, or 2 in the end game).
    Asked(u8),
    Have,
}

/// Where a download stands.
#[derive(Debug)]
pub enum BtPhase {
    Running,
    Failed(String),
    Done,
}

/// What a block that arrived did.
#[derive(Debug, PartialEq, Eq)]
pub enum Landed {
    /// Stored; its piece is not complete yet (or it was a duplicate).
    Stored,
    /// Its piece is complete and matches the piece layer.
    Verified(u32),
    /// Its piece is complete and does not match: its blocks are missing
    /// again (who is to blame is in [`BtDownload::blamed`]).
    Bad(u32),
}

pub struct BtDownload {
    /// What the user named it by, until the name is known (escaped).
    pub label: String,
    /// The v2 info hash (handshakes use its first 20 bytes).
    pub info_hash: Hash,
    pub torrent: Option<Torrent>,
    pub peers: PeerSet,
    /// Its `udp://` trackers.
    pub trackers: Vec<crate::client::engine::bittorrent::tracker::UdpTracker>,
    pub phase: BtPhase,
    /// The working file's identity for [`crate::client::engine::transfer::storage::Storage`].
    pub meta: Option<FileMeta>,
    pub part: Option<Box<dyn PartFile>>,
    /// The info dictionary as it arrives from a peer (magnet links), and
    /// the connection fetching it.
    pub info_buf: Vec<u8>,
    pub info_got: Vec<bool>,
    pub info_conn: Option<ConnId>,
    /// The piece layer while it comes in by hash requests; which of its
    /// 512-hash chunks are asked of whom.
    pub layer: Vec<Option<Hash>>,
    pub layer_asked: Vec<Option<ConnId>>,
    blocks: Vec<Block>,
    /// Pieces not yet complete: their blocks' leaf hashes and (small
    /// pieces) bytes. A piece's go when it is verified or fails: memory
    /// follows the pieces in flight, not the file.
    partial: HashMap<usize, Partial>,
    /// Blocks still to come per piece.
    piece_left: Vec<u32>,
    /// Pieces that failed with blocks from several peers and wait for
    /// their block hashes.
    held: BTreeMap<usize, Held>,
    /// Pieces that failed with blocks from several peers and are fetched
    /// again from one peer (their block hashes could not be had).
    suspects: HashMap<usize, Suspect>,
    /// Peers that sent blocks that failed their hash, one entry per bad
    /// piece, for the engine to strike (drained after every turn).
    pub blamed: Vec<SocketAddr>,
    /// Every block before this one is in hand (where the end game looks).
    cursor: usize,
    /// No block before this one is missing (where picking starts): so a
    /// pick costs a step or two, not a scan of every block asked already.
    missing_from: usize,
    pub verified: u64,
    /// Bytes in verified pieces, and of those the bytes an earlier run
    /// verified (from its resume record).
    pub verified_bytes: u64,
    pub resumed_bytes: u64,
    /// Which pieces are verified.
    done: Vec<bool>,
    /// Verified pieces and bytes when the resume record was last
    /// written, and when.
    saved: u64,
    saved_bytes: u64,
    pub saved_at: Instant,
    /// The file's block hashes, kept when the finished download will be
    /// seeded (its merkle tree answers peers' hash requests); `leafed`
    /// says which pieces' hashes are in (resumed pieces get theirs when
    /// the whole-file hash reads them back).
    leaves: Option<Vec<Hash>>,
    leafed: Vec<bool>,
    /// The whole file's SHA-256 (and, when we share, the project's
    /// metadata), fed in order over verified pieces, so its hash is
    /// printed without a pass at the end.
    pub whole: Option<Whole>,
    pub whole_at: u64,
    pub started: Instant,
    pub last_connected: Instant,
    pub last_progress: Instant,
    pub waiting_told: bool,
}

impl BtDownload {
    pub fn new(label: String, info_hash: Hash, now: Instant) -> BtDownload {
        BtDownload {
            label,
            info_hash,
            torrent: None,
            peers: PeerSet::default(),
            trackers: Vec::new(),
            phase: BtPhase::Running,
            meta: None,
            part: None,
            info_buf: Vec::new(),
            info_got: Vec::new(),
            info_conn: None,
            layer: Vec::new(),
            layer_asked: Vec::new(),
            blocks: Vec::new(),
            partial: HashMap::new(),
            piece_left: Vec::new(),
            held: BTreeMap::new(),
            suspects: HashMap::new(),
            blamed: Vec::new(),
            cursor: 0,
            missing_from: 0,
            verified: 0,
            verified_bytes: 0,
            resumed_bytes: 0,
            done: Vec::new(),
            saved: 0,
            saved_bytes: 0,
            saved_at: now,
            leaves: None,
            leafed: Vec::new(),
            whole: None,
            whole_at: 0,
            started: now,
            last_connected: now,
            last_progress: now,
            waiting_told: false,
        }
    }

    pub fn display_name(&self) -> String {
        match &self.torrent {
            Some(t) => names::escape(&t.name),
            None => self.label.clone(),
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self.phase, BtPhase::Running)
    }

    pub fn fail(&mut self, why: String) {
        if !self.is_finished() {
            self.phase = BtPhase::Failed(why);
        }
    }

    /// The torrent is known: size the block table and the layer. `native`:
    /// also compute the project's metadata (chunk hashes), for sharing.
    pub fn set_torrent(&mut self, t: Torrent, native: bool) {
        let blocks = t.layout.blocks() as usize;
        let pieces = t.layout.pieces() as usize;
        let per_piece = t.layout.blocks_per_piece();
        self.blocks = vec![Block::Missing; blocks];
        self.piece_left = (0..pieces as u64)
            .map(|p| t.layout.piece_size(p).div_ceil(BLOCK as u64).min(per_piece) as u32)
            .collect();
        self.done = vec![false; pieces];
        self.leafed = vec![false; pieces];
        self.leaves = native.then(|| vec![[0; 32]; blocks]);
        self.whole = Some(if native {
            MetaBuilder::new(NATIVE_CHUNK).map_or(Whole::Sha(Sha256::new()), Whole::Native)
        } else {
            Whole::Sha(Sha256::new())
        });
        self.whole_at = 0;
        if t.piece_layer.is_none() && t.layout.has_piece_layer() {
            self.layer = vec![None; pieces];
            self.layer_asked = vec![None; pieces.div_ceil(LAYER_CHUNK as usize)];
        }
        self.info_buf = Vec::new();
        self.info_got = Vec::new();
        self.torrent = Some(t);
    }

    /// Whether blocks may be asked for: the torrent and its whole piece
    /// layer are known and the working file is open.
    pub fn ready(&self) -> bool {
        self.part.is_some() && self.torrent.as_ref().and_then(|t| t.piece_hash(0)).is_some()
    }

    pub fn pieces(&self) -> u64 {
        self.torrent.as_ref().map_or(0, |t| t.layout.pieces())
    }

    pub fn is_complete(&self) -> bool {
        self.torrent.is_some() && self.verified == self.pieces()
    }

    /// The next block to ask peer `who`, holding `has` (a bitfield), for,
    /// not one of `busy` (asked of it already): the lowest missing one,
    /// else in the end game the lowest asked of only one other connection.
    /// A suspect piece's blocks go to one peer only. Returns (piece, offset
    /// in the piece, length).
    pub fn next_block(
        &mut self,
        has: &[u8],
        busy: &[(u32, u32)],
        who: SocketAddr,
    ) -> Option<(u32, u32, u32)> {
        let t = self.torrent.as_ref()?;
        let per_piece = t.layout.blocks_per_piece() as usize;
        let suspects = &self.suspects;
        let may = |b: usize| {
            let p = b / per_piece;
            has.get(p / 8).is_some_and(|byte| byte & (0x80 >> (p % 8)) != 0)
                && suspects.get(&p).is_none_or(|s| s.owner.is_none_or(|o| o == who))
        };
        while self.cursor < self.blocks.len() && self.blocks[self.cursor] == Block::Have {
            self.cursor += 1;
        }
        let n = self.blocks.len();
        while self.missing_from < n && self.blocks[self.missing_from] != Block::Missing {
            self.missing_from += 1;
        }
        let missing = (self.missing_from..n).find(|&b| self.blocks[b] == Block::Missing && may(b));
        let b = match missing {
            Some(b) => {
                self.blocks[b] = Block::Asked(1);
                b
            }
            // The end game: nothing is left unasked that this peer has.
            None => {
                let b = (self.cursor..n).find(|&b| {
                    let span = self.block_span(b);
                    self.blocks[b] == Block::Asked(1) && may(b) && !busy.contains(&(span.0, span.1))
                })?;
                self.blocks[b] = Block::Asked(2);
                b
            }
        };
        if let Some(s) = self.suspects.get_mut(&(b / per_piece)) {
            s.owner = Some(who);
        }
        Some(self.block_span(b))
    }

    /// Peer `who` (connection `conn`) is gone: suspect pieces it was
    /// fetching alone, and block hashes it was asked for, are free for
    /// another peer.
    pub fn left(&mut self, who: SocketAddr, conn: ConnId) {
        for s in self.suspects.values_mut().filter(|s| s.owner == Some(who)) {
            s.owner = None;
        }
        for h in self.held.values_mut().filter(|h| h.asked == Some(conn)) {
            h.asked = None;
        }
    }

    fn block_span(&self, b: usize) -> (u32, u32, u32) {
        let layout = self
            .torrent
            .as_ref()
            .map(|t| t.layout)
            .unwrap_or(crate::bt::merkle::Layout {
                size: 0,
                piece_len: BLOCK as u64,
            });
        let per_piece = layout.blocks_per_piece() as usize;
        let start = b as u64 * BLOCK as u64;
        let len = layout.size.saturating_sub(start).min(BLOCK as u64);
        (
            (b / per_piece) as u32,
            ((b % per_piece) * BLOCK) as u32,
            len as u32,
        )
    }

    /// The block index of (piece, begin), when that is a block this
    /// torrent has and `len` is its length.
    pub fn block_of(&self, piece: u32, begin: u32, len: u32) -> Option<usize> {
        let t = self.torrent.as_ref()?;
        let per_piece = t.layout.blocks_per_piece();
        if !(begin as usize).is_multiple_of(BLOCK) || u64::from(begin) >= t.layout.piece_len {
            return None;
        }
        let b = (u64::from(piece) * per_piece + u64::from(begin) / BLOCK as u64) as usize;
        (b < self.blocks.len() && self.block_span(b).2 == len).then_some(b)
    }

    /// The block index of (piece, begin) whatever its length (for
    /// requests of ours, which are always whole blocks).
    pub fn block_of_any(&self, piece: u32, begin: u32) -> Option<usize> {
        let len = self.torrent.as_ref().map(|t| {
            let per_piece = t.layout.blocks_per_piece();
            let b = u64::from(piece) * per_piece + u64::from(begin) / BLOCK as u64;
            t.layout.size.saturating_sub(b * BLOCK as u64).min(BLOCK as u64) as u32
        })?;
        self.block_of(piece, begin, len)
    }

    /// A request for block `b` ended without its data (the connection
    /// closed, or the peer choked us).
    pub fn unask(&mut self, b: usize) {
        if let Some(state) = self.blocks.get_mut(b) {
            *state = match *state {
                Block::Asked(2) => Block::Asked(1),
                Block::Asked(_) => Block::Missing,
                other => other,
            };
            self.cursor = self.cursor.min(b);
            self.missing_from = self.missing_from.min(b);
        }
    }

    /// Block `b` arrived with `data` from peer `from`: hashed, written,
    /// and its piece verified once complete.
    pub fn land(&mut self, b: usize, data: &[u8], from: SocketAddr) -> std::io::Result<Landed> {
        if self.blocks[b] == Block::Have {
            return Ok(Landed::Stored);
        }
        let Some(t) = self.torrent.as_ref() else {
            return Ok(Landed::Stored);
        };
        let Some(part) = self.part.as_mut() else {
            return Ok(Landed::Stored);
        };
        let per_piece = t.layout.blocks_per_piece() as usize;
        let piece = b / per_piece;
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        let piece_at = piece as u64 * t.layout.piece_len;
        let piece_size = t.layout.piece_size(piece as u64);
        let p = self.partial.entry(piece).or_insert_with(|| Partial {
            leaves: vec![[0; 32]; end - first],
            from: vec![None; end - first],
            data: (t.layout.piece_len <= ASSEMBLE_MAX).then(|| vec![0; piece_size as usize]),
            known: None,
        });
        let leaf = block_hash(data);
        if p.known.as_ref().is_some_and(|k| k[b - first] != leaf) {
            // Not the block its proven hash names: refused, asked again.
            self.blamed.push(from);
            self.blocks[b] = Block::Missing;
            self.missing_from = self.missing_from.min(b);
            return Ok(Landed::Stored);
        }
        match &mut p.data {
            // `block_of` checked the length: the block fits its piece.
            Some(buf) => {
                let at = (b - first) * BLOCK;
                buf[at..at + data.len()].copy_from_slice(data);
            }
            None => part.write_at(data, b as u64 * BLOCK as u64)?,
        }
        p.leaves[b - first] = leaf;
        p.from[b - first] = Some(from);
        self.blocks[b] = Block::Have;
        self.piece_left[piece] -= 1;
        if self.piece_left[piece] > 0 {
            return Ok(Landed::Stored);
        }
        let Some(p) = self.partial.remove(&piece) else {
            return Ok(Landed::Stored);
        };
        let expected = t.piece_hash(piece as u64);
        if expected == Some(t.layout.piece_hash(&p.leaves)) {
            if let Some(buf) = &p.data {
                part.write_at(buf, piece_at)?;
                // Next in order: hashed now, while in memory.
                if let (Some(whole), true) = (self.whole.as_mut(), self.whole_at == piece_at) {
                    whole.update(buf);
                    self.whole_at += buf.len() as u64;
                }
            }
            part.written(piece_at, piece_size);
            if let Some(leaves) = self.leaves.as_mut() {
                leaves[first..end].copy_from_slice(&p.leaves);
                self.leafed[piece] = true;
            }
            self.verified += 1;
            self.verified_bytes += piece_size;
            self.done[piece] = true;
            if let Some(s) = self.suspects.remove(&piece) {
                // The good piece is known: whoever sent a block that
                // differs from it in an earlier attempt sent a bad block.
                for (leaves, from) in &s.attempts {
                    let bad = leaves.iter().zip(&p.leaves).zip(from);
                    for (_, who) in bad.filter(|((a, b), _)| a != b) {
                        if let Some(who) = *who {
                            if !self.blamed.contains(&who) {
                                self.blamed.push(who);
                            }
                        }
                    }
                }
            }
            return Ok(Landed::Verified(piece as u32));
        }
        let mut senders: Vec<SocketAddr> = p.from.iter().flatten().copied().collect();
        senders.sort();
        senders.dedup();
        if let [only] = senders[..] {
            // One peer sent it all: it is to blame. A suspect piece stays
            // suspect, for the next peer to fetch alone.
            self.blamed.push(only);
            if let Some(s) = self.suspects.get_mut(&piece) {
                s.owner = None;
            }
        } else if (2..=MAX_HASH_COUNT as usize).contains(&(end - first))
            && p.known.is_none()
            && self.held.len() < MAX_HELD
        {
            // Its blocks stay in hand until their hashes say which are bad.
            self.held.insert(
                piece,
                Held {
                    partial: p,
                    asked: None,
                },
            );
            return Ok(Landed::Bad(piece as u32));
        } else {
            self.suspect(piece, p);
        }
        self.reset_piece(piece);
        Ok(Landed::Bad(piece as u32))
    }

    /// Piece `piece` is fetched again from one peer at a time; `p` was
    /// its failed attempt (kept, within bounds, to blame its senders).
    fn suspect(&mut self, piece: usize, p: Partial) {
        let keep = self.suspects.len() < MAX_SUSPECTS_KEPT || self.suspects.contains_key(&piece);
        let s = self.suspects.entry(piece).or_default();
        s.owner = None;
        if keep {
            if s.attempts.len() == MAX_ATTEMPTS {
                s.attempts.remove(0);
            }
            s.attempts.push((p.leaves, p.from));
        }
    }

    /// Every block of `piece` is missing again.
    fn reset_piece(&mut self, piece: usize) {
        let Some(t) = self.torrent.as_ref() else {
            return;
        };
        let per_piece = t.layout.blocks_per_piece() as usize;
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        self.blocks[first..end].fill(Block::Missing);
        self.piece_left[piece] = (end - first) as u32;
        self.cursor = self.cursor.min(first);
        self.missing_from = self.missing_from.min(first);
    }

    /// A hash request for the blocks of a held piece that peer `conn`,
    /// holding `has`, can answer, if one is not asked yet.
    pub fn leaves_wanted(&mut self, conn: ConnId, has: &[u8]) -> Option<HashRequest> {
        let t = self.torrent.as_ref()?;
        let per = t.layout.blocks_per_piece() as u32;
        let holds = |p: usize| has.get(p / 8).is_some_and(|byte| byte & (0x80 >> (p % 8)) != 0);
        let (&piece, held) = self
            .held
            .iter_mut()
            .find(|(p, h)| h.asked.is_none() && holds(**p))?;
        held.asked = Some(conn);
        Some(HashRequest {
            pieces_root: t.pieces_root,
            base: 0,
            index: piece as u32 * per,
            count: per,
            proof_layers: t.layout.height() - 1,
        })
    }

    /// The blocks' hashes of a held piece, proven: the blocks that differ
    /// are fetched again, their senders blamed.
    pub fn leaves_came(&mut self, req: &HashRequest, proven: &[Hash]) {
        let Some(t) = self.torrent.as_ref() else {
            return;
        };
        let per_piece = t.layout.blocks_per_piece() as usize;
        let piece = req.index as usize / per_piece;
        let Some(mut held) = self.held.remove(&piece) else {
            return;
        };
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        let known = proven[..end - first].to_vec();
        let p = &mut held.partial;
        for i in (0..end - first).filter(|&i| p.leaves[i] != known[i]) {
            if let Some(who) = p.from[i] {
                if !self.blamed.contains(&who) {
                    self.blamed.push(who);
                }
            }
            self.blocks[first + i] = Block::Missing;
            self.piece_left[piece] += 1;
        }
        if self.piece_left[piece] == 0 {
            // Proven hashes that all match a piece that failed cannot
            // be; fetch it all again rather than trust either.
            return self.reset_piece(piece);
        }
        p.known = Some(known);
        self.partial.insert(piece, held.partial);
        self.cursor = self.cursor.min(first);
        self.missing_from = self.missing_from.min(first);
    }

    /// The hash request `req` for a held piece was refused: the piece is
    /// fetched again from one peer alone.
    pub fn leaves_refused(&mut self, req: &HashRequest) {
        let Some(t) = self.torrent.as_ref() else {
            return;
        };
        let piece = req.index as usize / t.layout.blocks_per_piece() as usize;
        if let Some(held) = self.held.remove(&piece) {
            self.suspect(piece, held.partial);
            self.reset_piece(piece);
        }
    }

    /// Feeds verified bytes from `whole_at` on to the whole-file hash,
    /// up to `budget` bytes, stopping at the first piece not verified yet.
    pub fn advance_whole(&mut self, buf: &mut [u8], budget: u64) -> std::io::Result<()> {
        let (Some(t), Some(part), Some(whole)) =
            (self.torrent.as_ref(), self.part.as_ref(), self.whole.as_mut())
        else {
            return Ok(());
        };
        let mut left = budget;
        while left > 0 && self.whole_at < t.layout.size {
            let piece = self.whole_at / t.layout.piece_len;
            if !self.done.get(piece as usize).copied().unwrap_or(false) {
                break;
            }
            let piece_end = ((piece + 1) * t.layout.piece_len).min(t.layout.size);
            let n = (piece_end - self.whole_at).min(buf.len() as u64).min(left) as usize;
            part.read_at(&mut buf[..n], self.whole_at)?;
            whole.update(&buf[..n]);
            if let Some(leaves) = self.leaves.as_mut().filter(|_| !self.leafed[piece as usize]) {
                // A resumed piece: its block hashes, in the same pass.
                let first = (self.whole_at / BLOCK as u64) as usize;
                for (i, block) in buf[..n].chunks(BLOCK).enumerate() {
                    leaves[first + i] = block_hash(block);
                }
                if self.whole_at + n as u64 == piece_end {
                    self.leafed[piece as usize] = true;
                }
            }
            self.whole_at += n as u64;
            left -= n as u64;
        }
        Ok(())
    }

    /// The verified pieces, one bit each (the resume record's bitmap).
    pub fn bitmap(&self) -> Vec<u8> {
        let mut bits = vec![0; self.done.len().div_ceil(8)];
        for (i, _) in self.done.iter().enumerate().filter(|(_, d)| **d) {
            set_bit(&mut bits, i);
        }
        bits
    }

    /// Whether pieces were verified since the record was last written.
    pub fn unsaved(&self) -> bool {
        self.verified != self.saved
    }

    /// Whether so much was verified since the record was last written
    /// that it should be written now, whatever the time: a crash then
    /// costs at most a twentieth of the file (or 16 MiB) fetched again,
    /// however fast the download runs.
    pub fn record_due(&self) -> bool {
        let size = self.torrent.as_ref().map_or(0, |t| t.layout.size);
        self.verified_bytes - self.saved_bytes >= (size / 20).max(16 << 20)
    }

    /// The record was written with every piece verified so far.
    pub fn saved(&mut self, now: Instant) {
        self.saved = self.verified;
        self.saved_bytes = self.verified_bytes;
        self.saved_at = now;
    }

    /// Takes an earlier run's verified pieces (from a record whose data was
    /// synced before it was written); returns how many.
    pub fn restore(&mut self, verified: &[u8]) -> u64 {
        let Some(t) = self.torrent.as_ref() else {
            return 0;
        };
        let per_piece = t.layout.blocks_per_piece() as usize;
        for piece in (0..self.done.len()).filter(|&p| bit(verified, p)) {
            let first = piece * per_piece;
            let end = (first + per_piece).min(self.blocks.len());
            self.blocks[first..end].fill(Block::Have);
            self.piece_left[piece] = 0;
            self.done[piece] = true;
            self.verified += 1;
            self.verified_bytes += t.layout.piece_size(piece as u64);
        }
        self.saved = self.verified;
        self.saved_bytes = self.verified_bytes;
        self.resumed_bytes = self.verified_bytes;
        self.verified
    }

    /// The torrent as the resume record keeps it: the info dictionary and,
    /// once known, the piece layer, as a `.torrent` file's bytes (which
    /// [`Torrent::from_file_bytes`] reads back and checks).
    pub fn record_torrent(&self) -> Vec<u8> {
        let Some(t) = self.torrent.as_ref() else {
            return Vec::new();
        };
        let mut out = b"d4:info".to_vec();
        out.extend_from_slice(&t.info);
        out.extend_from_slice(b"12:piece layersd");
        if let Some(layer) = t.piece_layer.as_ref().filter(|l| !l.is_empty()) {
            out.extend_from_slice(b"32:");
            out.extend_from_slice(&t.pieces_root);
            out.extend_from_slice(format!("{}:", layer.len() * 32).as_bytes());
            layer.iter().for_each(|h| out.extend_from_slice(h));
        }
        out.extend_from_slice(b"ee");
        out
    }

    /// The finished file's merkle tree, when its block hashes were kept.
    pub fn tree(&mut self) -> Option<Tree> {
        let layout = self.torrent.as_ref()?.layout;
        if self.leafed.iter().any(|l| !l) {
            return None;
        }
        Some(Tree::new(layout, self.leaves.take()?))
    }

    /// Stores proven layer hashes from `index` on; true once the whole
    /// layer is in (it is then the torrent's).
    pub fn add_layer(&mut self, index: u32, hashes: &[Hash]) -> bool {
        let Some(t) = self.torrent.as_mut() else {
            return false;
        };
        for (slot, h) in self.layer.iter_mut().skip(index as usize).zip(hashes) {
            *slot = Some(*h);
        }
        if let Some(asked) = self.layer_asked.get_mut((index / LAYER_CHUNK) as usize) {
            *asked = None;
        }
        if self.layer.is_empty() || self.layer.iter().any(Option::is_none) {
            return false;
        }
        let layer: Vec<Hash> = self.layer.iter().flatten().copied().collect();
        // Each chunk was proven on its own; the whole layer must agree too.
        if t.layout.root_from_piece_layer(&layer) != t.pieces_root {
            self.layer.iter_mut().for_each(|h| *h = None);
            return false;
        }
        t.piece_layer = Some(layer);
        self.layer = Vec::new();
        self.layer_asked = Vec::new();
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::bt::merkle::{verify_hashes, Layout};

    const P1: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)), 1);
    const P2: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)), 1);
    const P3: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)), 1);
    use crate::bt::torrent::{info_bytes, Torrent};
    use crate::client::engine::transfer::storage::mem::MemStorage;
    use crate::client::engine::transfer::storage::Storage;

    /// A file of `size` bytes, its torrent (with its piece layer or not)
    /// and tree.
    pub(in super::super) fn torrent(
        size: usize,
        piece_len: u64,
        with_layer: bool,
    ) -> (Vec<u8>, Torrent, Tree) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 255) as u8).collect();
        let layout = Layout {
            size: size as u64,
            piece_len,
        };
        let tree = Tree::new(layout, data.chunks(BLOCK).map(block_hash).collect());
        let mut t = Torrent::from_info_bytes(&info_bytes("f.bin", layout, &tree.root())).unwrap();
        if with_layer && layout.has_piece_layer() {
            t.piece_layer = Some(tree.piece_layer().to_vec());
        }
        (data, t, tree)
    }

    /// A download of `t` with its working file in memory.
    pub(in super::super) fn download(t: Torrent) -> BtDownload {
        let mut d = BtDownload::new("x".into(), t.info_hash, Instant::now());
        let meta = FileMeta {
            name: t.name.clone(),
            size: t.layout.size,
            chunk_size: t.layout.piece_len as u32,
            chunks: vec![[0; 32]; t.layout.pieces() as usize],
            sha256: t.pieces_root,
        };
        d.set_torrent(t, true);
        d.part = Some(MemStorage::default().create(&meta).unwrap().part);
        d
    }

    #[test]
    fn blocks_go_out_in_order_once_then_in_the_end_game_and_pieces_verify() {
        let (data, t, _) = torrent(5 * BLOCK + 100, 2 * BLOCK as u64, true);
        let mut d = download(t);
        assert!(d.ready());
        let all = [0xff];
        let mut asked = Vec::new();
        while let Some(span) = d.next_block(&all, &[], P1) {
            if asked.len() == 6 {
                // Everything asked once: the end game asks again.
                assert_eq!(span, asked[0]);
                break;
            }
            asked.push(span);
        }
        assert_eq!(asked.len(), 6);
        assert_eq!(asked[5], (2, BLOCK as u32, 100));
        for (i, (p, begin, len)) in asked.iter().enumerate() {
            let b = d.block_of(*p, *begin, *len).unwrap();
            assert_eq!(b, i);
            let at = b * BLOCK;
            let got = d.land(b, &data[at..at + *len as usize], P1).unwrap();
            let expect = if i % 2 == 1 {
                Landed::Verified(*p)
            } else {
                Landed::Stored
            };
            assert_eq!(got, expect, "block {i}");
        }
        assert!(d.is_complete());
        // Pieces verified in order were hashed whole from memory.
        assert_eq!(d.whole_at, data.len() as u64);
        let meta = d.whole.take().unwrap().finish("f.bin", 0).unwrap();
        assert_eq!(meta.sha256[..], sha2::Sha256::digest(&data)[..]);
        assert_eq!(d.block_of(0, 1, BLOCK as u32), None, "unaligned");
        assert_eq!(d.block_of(2, BLOCK as u32, 99), None, "wrong length");
    }

    #[test]
    fn pieces_out_of_order_are_hashed_back_from_the_file_in_slices() {
        let (data, t, _) = torrent(4 * BLOCK, 2 * BLOCK as u64, true);
        let mut d = download(t);
        let piece = 2 * BLOCK;
        for b in [2, 3] {
            d.land(b, &data[b * BLOCK..(b + 1) * BLOCK], P1).unwrap();
        }
        assert_eq!(d.whole_at, 0, "piece 1 waits for piece 0");
        for b in [0, 1] {
            d.land(b, &data[b * BLOCK..(b + 1) * BLOCK], P1).unwrap();
        }
        assert_eq!(d.whole_at, piece as u64, "piece 0 from memory");
        let mut buf = vec![0; 5000];
        d.advance_whole(&mut buf, 10_000).unwrap();
        assert_eq!(
            d.whole_at,
            piece as u64 + 10_000,
            "a slice of piece 1 from the file"
        );
        d.advance_whole(&mut buf, u64::MAX).unwrap();
        let meta = d.whole.take().unwrap().finish("f.bin", 0).unwrap();
        assert_eq!(meta.sha256[..], sha2::Sha256::digest(&data)[..]);
    }

    #[test]
    fn a_bad_piece_is_fetched_again_and_a_peer_without_it_gets_nothing() {
        let (data, t, _) = torrent(4 * BLOCK, 2 * BLOCK as u64, true);
        let mut d = download(t);
        assert_eq!(
            d.next_block(&[0x40], &[], P1),
            Some((1, 0, BLOCK as u32)),
            "holds piece 1 only"
        );
        d.unask(2);
        assert_eq!(d.land(0, &data[..BLOCK], P1).unwrap(), Landed::Stored);
        let mut bad = data[BLOCK..2 * BLOCK].to_vec();
        bad[7] ^= 1;
        assert_eq!(d.land(1, &bad, P1).unwrap(), Landed::Bad(0));
        assert_eq!(d.blamed, vec![P1], "one sender: it is to blame");
        d.blamed.clear();
        assert_eq!(d.verified, 0);
        assert_eq!(
            d.next_block(&[0x80], &[], P1),
            Some((0, 0, BLOCK as u32)),
            "asked again"
        );
        assert_eq!(d.next_block(&[0x00], &[], P1), None);
    }

    /// A piece of 4 blocks, block 2 spoilt by P2, the others from P1: it
    /// fails with two senders and nobody is blamed yet.
    fn mixed_failure() -> (Vec<u8>, Tree, BtDownload) {
        let (data, t, tree) = torrent(4 * BLOCK, 4 * BLOCK as u64, true);
        let mut d = download(t);
        let mut spoilt = data[2 * BLOCK..3 * BLOCK].to_vec();
        spoilt[100] ^= 1;
        d.land(0, &data[..BLOCK], P1).unwrap();
        d.land(1, &data[BLOCK..2 * BLOCK], P1).unwrap();
        d.land(2, &spoilt, P2).unwrap();
        assert_eq!(d.land(3, &data[3 * BLOCK..], P1).unwrap(), Landed::Bad(0));
        assert!(d.blamed.is_empty(), "two senders: nobody is blamed yet");
        (data, tree, d)
    }

    /// With the blocks' proven hashes, only the bad block is fetched again,
    /// its sender blamed, and a wrong copy of it refused on arrival.
    #[test]
    fn a_mixed_bad_piece_refetches_only_the_blocks_its_hashes_refuse() {
        let (data, tree, mut d) = mixed_failure();
        assert_eq!(
            d.next_block(&[0x80], &[], P1),
            None,
            "held while its hashes are asked"
        );
        let req = d.leaves_wanted(ConnId(1), &[0x80]).expect("a hash request");
        assert_eq!((req.base, req.index, req.count), (0, 0, 4));
        assert_eq!(d.leaves_wanted(ConnId(2), &[0x80]), None, "asked once");
        let answer = tree.hashes(&req).expect("the seeder's tree answers");
        let proven = verify_hashes(&req, &tree.layout(), &tree.root(), &answer)
            .unwrap()
            .to_vec();
        d.leaves_came(&req, &proven);
        assert_eq!(d.blamed, vec![P2]);
        assert_eq!(
            d.next_block(&[0x80], &[], P3),
            Some((0, 2 * BLOCK as u32, BLOCK as u32))
        );
        assert_eq!(
            d.next_block(&[0x80], &[], P3),
            Some((0, 2 * BLOCK as u32, BLOCK as u32)),
            "end game"
        );
        let mut wrong = data[2 * BLOCK..3 * BLOCK].to_vec();
        wrong[0] ^= 1;
        assert_eq!(d.land(2, &wrong, P3).unwrap(), Landed::Stored);
        assert_eq!(d.blamed, vec![P2, P3], "refused on arrival");
        assert_eq!(d.verified, 0);
        let block = &data[2 * BLOCK..3 * BLOCK];
        assert_eq!(d.land(2, block, P1).unwrap(), Landed::Verified(0));
    }

    /// Where the hashes are refused, the piece is fetched again from one
    /// peer alone, and once it verifies the sender of the block that
    /// differs is blamed, not the honest one.
    #[test]
    fn a_mixed_bad_piece_without_hashes_is_fetched_from_one_peer() {
        let (data, _, mut d) = mixed_failure();
        let req = d.leaves_wanted(ConnId(1), &[0x80]).unwrap();
        d.leaves_refused(&req);
        let block = |b: usize| &data[b * BLOCK..(b + 1) * BLOCK];
        // The retry goes to the first peer that asks, and to it alone.
        assert_eq!(d.next_block(&[0x80], &[], P3), Some((0, 0, BLOCK as u32)));
        assert_eq!(d.next_block(&[0x80], &[], P1), None, "P3 fetches it alone");
        // P3 leaves: the piece is free for another single peer.
        d.unask(0);
        d.left(P3, ConnId(3));
        let mut asked = Vec::new();
        while let Some(span) = d.next_block(&[0x80], &asked, P1) {
            if asked.contains(&(span.0, span.1)) {
                break;
            }
            asked.push((span.0, span.1));
        }
        assert_eq!(asked.len(), 4, "P1 gets every block of it");
        for b in 0..3 {
            d.land(b, block(b), P1).unwrap();
        }
        assert_eq!(d.land(3, block(3), P1).unwrap(), Landed::Verified(0));
        assert_eq!(d.blamed, vec![P2]);
        assert_eq!(d.verified, 1);
    }

    #[test]
    fn the_layer_comes_in_chunks_and_must_agree_with_the_root() {
        let (_, t, tree) = torrent(8 * BLOCK, BLOCK as u64, false);
        let mut d = download(t);
        assert!(!d.ready(), "no layer yet");
        let layer = tree.piece_layer();
        assert!(!d.add_layer(0, &layer[..4]));
        assert!(d.add_layer(4, &layer[4..]));
        assert!(d.ready());
        let (_, t, _) = torrent(8 * BLOCK, BLOCK as u64, false);
        let mut d = download(t);
        let mut wrong = layer.to_vec();
        wrong[1][0] ^= 1;
        assert!(!d.add_layer(0, &wrong));
        assert!(d.layer.iter().all(Option::is_none), "a wrong layer is forgotten");
    }
}
