//! One BitTorrent download of any torrent (v1, v2 or hybrid; one file or
//! a folder): what is known of the torrent (a `.torrent` file, or only a
//! magnet link's hashes until the info dictionary arrives), how its pieces
//! are checked ([`Check`]), and which 16 KiB blocks of its piece space
//! are missing, asked for, or in hand. Pure bookkeeping; connections
//! ([`crate::client::engine::bittorrent::fetch`]) feed it.
//!
//! Invariants:
//! - `torrent` is set only from a `.torrent` file or from an info
//!   dictionary whose SHA-1 or SHA-256 is the magnet's v1 or v2 hash; a
//!   piece layer only from the torrent (checked against `pieces root`
//!   when parsed) or from `hashes` messages proven up to `pieces root`.
//! - No block is asked for before the pieces can be checked (v2 layers
//!   complete, or v1 hashes), so every piece is verified the moment its
//!   last block is in. A piece that fails has its blocks fetched again;
//!   only verified pieces count. Blocks wholly in padding are never asked
//!   for, and the padding inside a block is zeroed before anything sees it.
//! - Blame: every block of a piece in flight remembers its sender. A piece
//!   that fails with one sender blames it. One that fails with several is
//!   held while its block hashes are asked for (BEP 52, proven up to the
//!   root): the blocks that differ are fetched again and their senders
//!   blamed, and from then on a block of it that does not match is refused
//!   on arrival. Where the hashes cannot be had (or under a v1 check, whose
//!   blocks are fingerprinted only when their piece fails), the piece is fetched again
//!   from one peer alone (a suspect piece), and when it verifies, the
//!   senders of the earlier attempts' blocks that differ are blamed. Blame
//!   goes to [`BtDownload::blamed`], which the engine strikes: a corrupting
//!   peer is blamed for every piece it spoils, whatever the piece size.
//! - Pieces are started rarest first by the transfer core's picker
//!   ([`Scheduler`], fed every peer's bitfield and `have`s); a peer is
//!   given the missing blocks of pieces already started before a new piece
//!   is started, so pieces complete (and verify) soon and the swarm's
//!   downloaders fetch different pieces they can trade.
//! - A block is asked of at most two connections at once (the second only
//!   when no block is left unasked: the end game).

use crate::bt::layout::v1_piece_ok;
use crate::bt::merkle::{self, block_hash, Hash, HashRequest, Tree, BLOCK, MAX_HASH_COUNT};
use crate::bt::metainfo::{InfoHashes, Metainfo};
use crate::bt::pieces::Check;
use crate::bt::select;
use crate::client::engine::bittorrent::serve::Offer;
use crate::client::engine::transfer::bitmap::{self, bit, set_bit};
use crate::client::engine::transfer::peer_set::PeerSet;
use crate::client::engine::transfer::picker::{Has, Scheduler};
use crate::client::engine::transfer::storage::PartFile;
use crate::client::engine::ConnId;
use crate::meta::{FileMeta, MetaBuilder};
use crate::names;
use crate::rand::Rng;
use sha1::Sha1;
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
    /// The info hashes known (a magnet's, or the torrent's).
    pub hashes: InfoHashes,
    /// The download's identity (working file, view, resume): the v2 info
    /// hash, else the v1 hash padded with zeros.
    pub key: Hash,
    pub torrent: Option<Metainfo>,
    /// How its pieces are checked, once they can be.
    check: Option<Check>,
    /// `--only` patterns: the files wanted (none: all).
    pub only: Vec<String>,
    /// Pieces not wanted (no byte of a wanted file): never fetched,
    /// never served; and the bytes of the pieces that are.
    skipped: Vec<bool>,
    wanted_bytes: u64,
    /// The one file whose piece layer comes by hash requests (a v2 magnet
    /// of one file), with its tree shape.
    layer_file: Option<(usize, merkle::Layout)>,
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
    /// Which piece to start next (the core's picker over pieces).
    sched: Scheduler,
    /// Pieces started and not verified, each with the first of its blocks
    /// that may still be missing (where the next pick looks).
    in_progress: BTreeMap<u32, usize>,
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
    /// Which pieces are verified, and in which order they were (what
    /// peers we serve are told, as `have`s).
    done: Vec<bool>,
    verified_log: Vec<u32>,
    /// Verified pieces and bytes when the resume record was last
    /// written, and when.
    saved: u64,
    saved_bytes: u64,
    pub saved_at: Instant,
    /// The file's block hashes, kept when the finished download will be
    /// seeded (its merkle tree answers peers' hash requests); `leafed`
    /// says which pieces' hashes are in (resumed pieces get theirs when
    /// the whole-file hash reads them back). A single file under a v2
    /// check only.
    leaves: Option<Vec<Hash>>,
    leafed: Vec<bool>,
    /// The whole file's SHA-256 (and, when we share, the project's
    /// metadata), fed in order over verified pieces, so its hash is
    /// printed without a pass at the end. Single-file torrents only.
    pub whole: Option<Whole>,
    pub whole_at: u64,
    pub started: Instant,
    pub last_connected: Instant,
    pub last_progress: Instant,
    pub waiting_told: bool,
}

/// The identity of a download known by `hashes`: the v2 hash, else the
/// v1 hash padded with zeros.
pub fn key_of(hashes: &InfoHashes) -> Hash {
    hashes.v2.unwrap_or_else(|| {
        let mut k = [0; 32];
        if let Some(v1) = hashes.v1 {
            k[..20].copy_from_slice(&v1);
        }
        k
    })
}

impl BtDownload {
    pub fn new(label: String, hashes: InfoHashes, rng: Rng, now: Instant) -> BtDownload {
        BtDownload {
            label,
            key: key_of(&hashes),
            hashes,
            torrent: None,
            check: None,
            only: Vec::new(),
            skipped: Vec::new(),
            wanted_bytes: 0,
            layer_file: None,
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
            sched: Scheduler::new(0).with_rng(rng),
            in_progress: BTreeMap::new(),
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
            verified_log: Vec::new(),
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

    /// The 20 bytes our handshakes name the torrent by.
    pub fn wire_hash(&self) -> [u8; 20] {
        match &self.torrent {
            Some(t) => t.wire_hash(),
            None => self
                .hashes
                .v1
                .or_else(|| self.hashes.v2_short())
                .unwrap_or_default(),
        }
    }

    /// Whether `short` names this download's torrent (either hash).
    pub fn is_named_by(&self, short: &[u8; 20]) -> bool {
        self.hashes.v1.as_ref() == Some(short) || self.hashes.v2_short().as_ref() == Some(short)
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self.phase, BtPhase::Running)
    }

    pub fn fail(&mut self, why: String) {
        if !self.is_finished() {
            self.phase = BtPhase::Failed(why);
        }
    }

    /// Whether `info` (an info dictionary from a peer) is the torrent the
    /// magnet named: its SHA-1 or SHA-256 is one of the known hashes.
    pub fn is_our_info(&self, info: &[u8]) -> bool {
        let v1: [u8; 20] = Sha1::digest(info).into();
        let v2: Hash = Sha256::digest(info).into();
        self.hashes.v1 == Some(v1) || self.hashes.v2 == Some(v2)
    }

    /// The torrent is known: size the block table and the layer. `native`:
    /// also compute the project's metadata (chunk hashes), for sharing.
    pub fn set_torrent(&mut self, t: Metainfo, native: bool) {
        let blocks = t.blocks() as usize;
        let pieces = t.pieces() as usize;
        let per_piece = t.blocks_per_piece() as usize;
        // Blocks of padding are zeros: in hand from the start.
        self.blocks = (0..blocks as u64)
            .map(|b| {
                if t.pad_block(b) {
                    Block::Have
                } else {
                    Block::Missing
                }
            })
            .collect();
        let rng = std::mem::replace(&mut self.sched, Scheduler::new(0)).into_rng();
        self.sched = Scheduler::new(pieces).with_rng(rng);
        self.in_progress.clear();
        self.piece_left = (0..pieces)
            .map(|p| {
                let end = ((p + 1) * per_piece).min(blocks);
                self.blocks[p * per_piece..end]
                    .iter()
                    .filter(|b| **b == Block::Missing)
                    .count() as u32
            })
            .collect();
        self.done = vec![false; pieces];
        let wanted = select::wanted_pieces(&t, &select::wanted_files(&t, &self.only));
        self.skipped = wanted.iter().map(|w| !w).collect();
        self.wanted_bytes = 0;
        for p in 0..pieces {
            if self.skipped[p] {
                let end = ((p + 1) * per_piece).min(blocks);
                self.blocks[p * per_piece..end].fill(Block::Have);
                self.piece_left[p] = 0;
                self.sched.complete(p as u32);
            } else {
                self.wanted_bytes += t.piece_size(p as u64);
            }
        }
        self.check = t.check();
        self.layer_file = t.fetchable_layer();
        let single = !t.multi_file;
        let keep_leaves = native && single && t.hashes.v2.is_some();
        self.leafed = vec![false; pieces];
        self.leaves = keep_leaves.then(|| vec![[0; 32]; blocks]);
        self.whole = single.then(|| {
            if native {
                MetaBuilder::new(NATIVE_CHUNK).map_or(Whole::Sha(Sha256::new()), Whole::Native)
            } else {
                Whole::Sha(Sha256::new())
            }
        });
        self.whole_at = 0;
        if self.check != Some(Check::V2) {
            if let Some((_, tree)) = self.layer_file.filter(|_| self.check.is_none()) {
                let n = tree.pieces() as usize;
                self.layer = vec![None; n];
                self.layer_asked = vec![None; n.div_ceil(LAYER_CHUNK as usize)];
            }
        }
        self.hashes = t.hashes;
        self.info_buf = Vec::new();
        self.info_got = Vec::new();
        self.torrent = Some(t);
    }

    /// Why the torrent cannot be downloaded, if it cannot: no way to
    /// check its pieces, now or by fetching a layer.
    pub fn uncheckable(&self) -> Option<&'static str> {
        let t = self.torrent.as_ref()?;
        (self.check.is_none() && self.layer_file.is_none() && t.check().is_none())
            .then_some("its piece hashes cannot be had: a v2-only torrent of several files needs its .torrent file (a magnet link is not enough)")
    }

    /// Whether blocks may be asked for: the torrent and what checks its
    /// pieces are known and the working file is open.
    pub fn ready(&self) -> bool {
        self.part.is_some() && self.check.is_some()
    }

    /// The layer being fetched (its file's pieces root and tree shape).
    pub fn layer_target(&self) -> Option<(Hash, merkle::Layout)> {
        let t = self.torrent.as_ref()?;
        let (file, tree) = self.layer_file.filter(|_| self.check.is_none())?;
        Some((t.layout.files[file].pieces_root?, tree))
    }

    /// The tree shape of the file whose pieces root is `root`.
    pub fn tree_of_root(&self, root: &Hash) -> Option<merkle::Layout> {
        let t = self.torrent.as_ref()?;
        let f = t
            .layout
            .files
            .iter()
            .find(|f| f.pieces_root.as_ref() == Some(root))?;
        Some(t.file_tree(f.len))
    }

    pub fn pieces(&self) -> u64 {
        self.torrent.as_ref().map_or(0, Metainfo::pieces)
    }

    /// Bytes of the torrent's files (all of them: what is kept on disk).
    pub fn size(&self) -> u64 {
        self.torrent.as_ref().map_or(0, Metainfo::content_len)
    }

    /// Bytes of the pieces wanted (what progress counts towards).
    pub fn wanted_bytes(&self) -> u64 {
        self.wanted_bytes
    }

    pub fn is_complete(&self) -> bool {
        let skipped = self.skipped.iter().filter(|s| **s).count() as u64;
        self.torrent.is_some() && self.verified + skipped == self.pieces()
    }

    /// The next block to ask peer `who`, holding `has` (a bitfield), for,
    /// not one of `busy` (asked of it already): the lowest missing one,
    /// else, once no block is missing (the end game), the lowest asked of
    /// only one other connection.
    /// A suspect piece's blocks go to one peer only. Returns (piece, offset
    /// in the piece, length).
    pub fn next_block(
        &mut self,
        has: &[u8],
        picker_has: &Has,
        busy: &[(u32, u32)],
        who: SocketAddr,
    ) -> Option<(u32, u32, u32)> {
        let t = self.torrent.as_ref()?;
        let per_piece = t.blocks_per_piece() as usize;
        let n = self.blocks.len();
        let holds = |p: usize| has.get(p / 8).is_some_and(|byte| byte & (0x80 >> (p % 8)) != 0);
        let suspects = &self.suspects;
        let mine = |p: usize| suspects.get(&p).is_none_or(|s| s.owner.is_none_or(|o| o == who));
        // The missing blocks of pieces started already, first.
        let mut pick = None;
        for (&p, from) in self.in_progress.iter_mut() {
            let p = p as usize;
            if !holds(p) || !mine(p) {
                continue;
            }
            let end = ((p + 1) * per_piece).min(n);
            while *from < end && self.blocks[*from] != Block::Missing {
                *from += 1;
            }
            if *from < end {
                pick = Some(*from);
                break;
            }
        }
        // Else a new piece, the rarest this peer has (its blocks are all
        // missing, but for a piece whose blocks are held for their hashes).
        if pick.is_none() {
            // (A piece in progress already is never new: its blocks go by
            // the rule above.)
            let new = self.sched.next_new(picker_has);
            if let Some(p) = new.filter(|p| !self.in_progress.contains_key(p)) {
                let (first, end) = (p as usize * per_piece, ((p as usize + 1) * per_piece).min(n));
                let b = (first..end)
                    .find(|&b| self.blocks[b] == Block::Missing)
                    .unwrap_or(end);
                self.in_progress.insert(p, b);
                pick = (b < end).then_some(b);
            }
        }
        let b = match pick {
            Some(b) => {
                self.blocks[b] = Block::Asked(1);
                b
            }
            None => {
                // Other blocks are missing, which other peers have: asking
                // this one for copies of blocks in flight would only waste
                // its upload.
                while self.missing_from < n && self.blocks[self.missing_from] != Block::Missing {
                    self.missing_from += 1;
                }
                if self.missing_from < n {
                    return None;
                }
                // The end game: nothing is left unasked.
                while self.cursor < n && self.blocks[self.cursor] == Block::Have {
                    self.cursor += 1;
                }
                let b = (self.cursor..n).find(|&b| {
                    let span = self.block_span(b);
                    let p = b / per_piece;
                    self.blocks[b] == Block::Asked(1)
                        && holds(p)
                        && mine(p)
                        && !busy.contains(&(span.0, span.1))
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

    /// Whether every block is asked for or in hand: what is still asked of
    /// peers may be asked again of others.
    pub fn in_end_game(&mut self) -> bool {
        let n = self.blocks.len();
        while self.missing_from < n && self.blocks[self.missing_from] != Block::Missing {
            self.missing_from += 1;
        }
        self.missing_from >= n
    }

    /// A connected peer's pieces became known (for the picker's rarity).
    pub fn peer_joined(&mut self, has: &Has) {
        self.sched.peer_joined(has);
    }

    /// A connected peer announced piece `index`.
    pub fn peer_gained(&mut self, index: u32) {
        self.sched.peer_gained(index);
    }

    /// A connected peer is gone, with the pieces it had.
    pub fn peer_left(&mut self, has: &Has) {
        self.sched.peer_left(has);
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
        let Some(t) = self.torrent.as_ref() else {
            return (0, 0, 0);
        };
        let per_piece = t.blocks_per_piece() as usize;
        let (_, len) = t.block_range(b as u64);
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
        let per_piece = t.blocks_per_piece();
        if !(begin as usize).is_multiple_of(BLOCK) || u64::from(begin) >= t.piece_len() {
            return None;
        }
        let b = (u64::from(piece) * per_piece + u64::from(begin) / BLOCK as u64) as usize;
        (b < self.blocks.len() && self.block_span(b).2 == len).then_some(b)
    }

    /// The block index of (piece, begin) whatever its length (for
    /// requests of ours, which are always whole blocks).
    pub fn block_of_any(&self, piece: u32, begin: u32) -> Option<usize> {
        let t = self.torrent.as_ref()?;
        let b = u64::from(piece) * t.blocks_per_piece() + u64::from(begin) / BLOCK as u64;
        let (_, len) = t.block_range(b);
        self.block_of(piece, begin, len as u32)
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
            self.rewind(b);
        }
    }

    /// Block `b` may be missing again: its piece's pick looks from it.
    fn rewind(&mut self, b: usize) {
        let Some(t) = self.torrent.as_ref() else {
            return;
        };
        let piece = (b as u64 / t.blocks_per_piece()) as u32;
        if let Some(from) = self.in_progress.get_mut(&piece) {
            *from = (*from).min(b);
        }
    }

    /// Block `b` arrived with `data` from peer `from`: hashed, written,
    /// and its piece verified once complete.
    pub fn land(&mut self, b: usize, data: &[u8], from: SocketAddr) -> std::io::Result<Landed> {
        if self.blocks[b] == Block::Have {
            return Ok(Landed::Stored);
        }
        let (Some(t), Some(part), Some(check)) = (self.torrent.as_ref(), self.part.as_mut(), self.check)
        else {
            return Ok(Landed::Stored);
        };
        let per_piece = t.blocks_per_piece() as usize;
        let piece = b / per_piece;
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        let piece_at = piece as u64 * t.piece_len();
        let piece_size = t.piece_size(piece as u64);
        // The padding inside a block is zeros, whatever the peer sent.
        let zeroed;
        let data = if t.touches_padding(b as u64) {
            let mut own = data.to_vec();
            t.zero_padding(b as u64, &mut own);
            zeroed = own;
            &zeroed[..]
        } else {
            data
        };
        let v2 = (check == Check::V2).then(|| t.v2_piece(piece as u64)).flatten();
        let p = self.partial.entry(piece).or_insert_with(|| Partial {
            leaves: vec![[0; 32]; end - first],
            from: vec![None; end - first],
            data: (t.piece_len() <= ASSEMBLE_MAX).then(|| vec![0; piece_size as usize]),
            known: None,
        });
        // A v2 leaf is the hash of the file's bytes in the block (not its
        // padding); a v1 piece's blocks are fingerprinted only if it fails.
        let leaf = v2.map(|v| {
            let off = ((b - first) * BLOCK) as u64;
            block_hash(&data[..v.len.saturating_sub(off).min(data.len() as u64) as usize])
        });
        if let (Some(known), Some(leaf)) = (p.known.as_ref(), leaf) {
            if known[b - first] != leaf {
                // Not the block its proven hash names: refused, asked again.
                self.blamed.push(from);
                self.blocks[b] = Block::Missing;
                self.missing_from = self.missing_from.min(b);
                if let Some(at) = self.in_progress.get_mut(&(piece as u32)) {
                    *at = (*at).min(b);
                }
                return Ok(Landed::Stored);
            }
        }
        match &mut p.data {
            // `block_of` checked the length: the block fits its piece.
            Some(buf) => {
                let at = (b - first) * BLOCK;
                buf[at..at + data.len()].copy_from_slice(data);
            }
            None => part.write_at(data, b as u64 * BLOCK as u64)?,
        }
        if let Some(leaf) = leaf {
            p.leaves[b - first] = leaf;
        }
        p.from[b - first] = Some(from);
        self.blocks[b] = Block::Have;
        self.piece_left[piece] -= 1;
        if self.piece_left[piece] > 0 {
            return Ok(Landed::Stored);
        }
        let Some(mut p) = self.partial.remove(&piece) else {
            return Ok(Landed::Stored);
        };
        let good = match (check, v2) {
            (Check::V2, Some(v)) => {
                let n = v.len.div_ceil(BLOCK as u64) as usize;
                t.v2_expected(&v) == Some(v.tree.piece_hash(&p.leaves[..n]))
            }
            (Check::V2, None) => false,
            (Check::V1, _) => match (t.v1_expected(piece as u64), &p.data) {
                (None, _) => false,
                (Some(expected), Some(buf)) => v1_piece_ok(buf, expected),
                (Some(expected), None) => v1_read_back(part.as_ref(), piece_at, piece_size, expected)?,
            },
        };
        let fingerprint = check == Check::V1 && (!good || self.suspects.contains_key(&piece));
        if fingerprint {
            // Which blocks differ between attempts is what blames a sender.
            p.leaves = fingerprints(part.as_ref(), &p.data, piece_at, piece_size)?;
        }
        if good {
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
            self.verified_log.push(piece as u32);
            self.sched.complete(piece as u32);
            self.in_progress.remove(&(piece as u32));
            if let Some(s) = self.suspects.remove(&piece) {
                // The good piece is known: whoever sent a block that
                // differs from it in an earlier attempt sent a bad block.
                let mut guilty = Vec::new();
                for (leaves, from) in &s.attempts {
                    let bad = leaves.iter().zip(&p.leaves).zip(from);
                    guilty.extend(bad.filter(|((a, b), _)| a != b).filter_map(|(_, who)| *who));
                }
                self.blame_once(guilty);
            }
            return Ok(Landed::Verified(piece as u32));
        }
        let mut senders: Vec<SocketAddr> = p.from.iter().flatten().copied().collect();
        senders.sort();
        senders.dedup();
        if let [only] = senders[..] {
            // One peer sent it all: it is to blame. A suspect piece stays
            // suspect, for the next peer to fetch alone; its peer failed
            // a piece that had failed before, alone: proof enough to ban
            // it at once (two strikes), as libtorrent bans a piece's sole
            // contributor.
            self.blamed.push(only);
            if let Some(s) = self.suspects.get_mut(&piece) {
                s.owner = None;
                self.blamed.push(only);
            }
        } else if v2.is_some()
            && (2..=MAX_HASH_COUNT as usize).contains(&(end - first))
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
            return Ok(Landed::Bad(piece as u32));
        }
        self.reset_piece(piece);
        Ok(Landed::Bad(piece as u32))
    }

    /// Piece `piece`, whose attempt `p` failed with blocks from several
    /// peers, is finished by one peer alone: the connected peer that sent
    /// most of it keeps its blocks and fetches the others again (so only
    /// the others' share is fetched twice). Then either the piece verifies
    /// and the earlier senders of blocks that differ are to blame, or it
    /// fails with that one peer as its sole sender. The attempt is kept,
    /// within bounds, for that comparison.
    fn suspect(&mut self, piece: usize, mut p: Partial) {
        let mut counts: Vec<(SocketAddr, usize)> = Vec::new();
        for who in p.from.iter().flatten() {
            match counts.iter_mut().find(|(a, _)| a == who) {
                Some((_, n)) => *n += 1,
                None => counts.push((*who, 1)),
            }
        }
        counts.sort_by_key(|&(a, n)| (std::cmp::Reverse(n), a));
        let connected = |a: &SocketAddr| self.peers.get(*a).is_some_and(|r| r.conn.is_some() && !r.banned);
        let owner = counts.iter().map(|(a, _)| *a).find(|a| connected(a));
        let keep = self.suspects.len() < MAX_SUSPECTS_KEPT || self.suspects.contains_key(&piece);
        let s = self.suspects.entry(piece).or_default();
        s.owner = owner;
        if keep {
            if s.attempts.len() == MAX_ATTEMPTS {
                s.attempts.remove(0);
            }
            s.attempts.push((p.leaves.clone(), p.from.clone()));
        }
        let Some(owner) = owner else {
            return self.reset_piece(piece);
        };
        let per_piece = self.torrent.as_ref().map_or(1, |t| t.blocks_per_piece() as usize);
        let first = piece * per_piece;
        let mut left = 0;
        for (i, from) in p.from.iter_mut().enumerate() {
            if from.is_some() && *from != Some(owner) {
                *from = None;
                self.blocks[first + i] = Block::Missing;
                left += 1;
            }
        }
        p.known = None;
        self.piece_left[piece] = left;
        self.cursor = self.cursor.min(first);
        self.missing_from = self.missing_from.min(first);
        self.in_progress.insert(piece as u32, first);
        self.partial.insert(piece, p);
    }

    /// One strike per sender of bad blocks of one piece (however many of
    /// its blocks were bad): a peer is struck once for each piece it spoils.
    fn blame_once(&mut self, mut senders: Vec<SocketAddr>) {
        senders.sort();
        senders.dedup();
        self.blamed.extend(senders);
    }

    /// Every block of `piece` is missing again.
    fn reset_piece(&mut self, piece: usize) {
        let Some(t) = self.torrent.as_ref() else {
            return;
        };
        let per_piece = t.blocks_per_piece() as usize;
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        let mut left = 0;
        for b in first..end {
            if !t.pad_block(b as u64) {
                self.blocks[b] = Block::Missing;
                left += 1;
            }
        }
        self.piece_left[piece] = left;
        self.cursor = self.cursor.min(first);
        self.missing_from = self.missing_from.min(first);
        self.in_progress.insert(piece as u32, first);
    }

    /// A hash request for the blocks of a held piece that peer `conn`,
    /// holding `has`, can answer, if one is not asked yet.
    pub fn leaves_wanted(&mut self, conn: ConnId, has: &[u8]) -> Option<HashRequest> {
        let t = self.torrent.as_ref()?;
        let holds = |p: usize| has.get(p / 8).is_some_and(|byte| byte & (0x80 >> (p % 8)) != 0);
        let (&piece, held) = self
            .held
            .iter_mut()
            .find(|(p, h)| h.asked.is_none() && holds(**p))?;
        held.asked = Some(conn);
        t.leaf_request(&t.v2_piece(piece as u64)?)
    }

    /// The piece a hash request for block hashes was about.
    fn piece_of_request(&self, req: &HashRequest) -> Option<usize> {
        let t = self.torrent.as_ref()?;
        let f = t
            .layout
            .files
            .iter()
            .find(|f| f.pieces_root == Some(req.pieces_root))?;
        let first = f.offset / t.piece_len();
        Some((first + u64::from(req.index) / t.blocks_per_piece()) as usize)
    }

    /// The blocks' hashes of a held piece, proven: the blocks that differ
    /// are fetched again, their senders blamed.
    pub fn leaves_came(&mut self, req: &HashRequest, proven: &[Hash]) {
        let (Some(t), Some(piece)) = (self.torrent.as_ref(), self.piece_of_request(req)) else {
            return;
        };
        let Some(mut held) = self.held.remove(&piece) else {
            return;
        };
        let per_piece = t.blocks_per_piece() as usize;
        let first = piece * per_piece;
        let end = (first + per_piece).min(self.blocks.len());
        // Only the blocks with file bytes have leaves (padding has none).
        let leaves = t
            .v2_piece(piece as u64)
            .map_or(0, |v| v.len.div_ceil(BLOCK as u64) as usize);
        let mut known = proven[..leaves.min(proven.len())].to_vec();
        known.resize(end - first, [0; 32]);
        let p = &mut held.partial;
        let bad: Vec<usize> = (0..leaves).filter(|&i| p.leaves[i] != known[i]).collect();
        self.blame_once(bad.iter().filter_map(|&i| p.from[i]).collect());
        for i in bad {
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
        self.in_progress.insert(piece as u32, first);
    }

    /// The hash request `req` for a held piece was refused: the piece is
    /// fetched again from one peer alone.
    pub fn leaves_refused(&mut self, req: &HashRequest) {
        let Some(piece) = self.piece_of_request(req) else {
            return;
        };
        if let Some(held) = self.held.remove(&piece) {
            self.suspect(piece, held.partial);
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
        let size = t.total_len();
        while left > 0 && self.whole_at < size {
            let piece = self.whole_at / t.piece_len();
            if !self.done.get(piece as usize).copied().unwrap_or(false) {
                break;
            }
            let piece_end = ((piece + 1) * t.piece_len()).min(size);
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

    /// What peers may be served from this download: its verified pieces,
    /// once the piece layer is known and the working file is on disk.
    pub fn offer(&self) -> Option<Offer<'_>> {
        let torrent = self.torrent.as_ref().filter(|_| self.ready())?;
        Some(Offer {
            torrent,
            trees: &[],
            path: self.part.as_ref()?.path()?,
            verified: Some((&self.done, &self.verified_log)),
        })
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
        let size = self.wanted_bytes;
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
        let per_piece = t.blocks_per_piece() as usize;
        let pieces: Vec<usize> = (0..self.done.len())
            .filter(|&p| bit(verified, p) && !self.done[p] && !self.skipped[p])
            .collect();
        for piece in pieces {
            let first = piece * per_piece;
            let end = (first + per_piece).min(self.blocks.len());
            self.blocks[first..end].fill(Block::Have);
            self.piece_left[piece] = 0;
            self.done[piece] = true;
            self.verified_log.push(piece as u32);
            self.sched.complete(piece as u32);
            self.verified += 1;
            self.verified_bytes += t.piece_size(piece as u64);
        }
        self.saved = self.verified;
        self.saved_bytes = self.verified_bytes;
        self.resumed_bytes = self.verified_bytes;
        self.verified
    }

    /// The torrent as the resume record keeps it: the info dictionary and
    /// the piece layers known, as a `.torrent` file's bytes (which
    /// [`Metainfo::from_file_bytes`] reads back and checks).
    pub fn record_torrent(&self) -> Vec<u8> {
        let Some(t) = self.torrent.as_ref() else {
            return Vec::new();
        };
        let layers: Vec<(Hash, Vec<u8>)> = t
            .layout
            .files
            .iter()
            .zip(&t.piece_layers)
            .filter_map(|(f, l)| Some((f.pieces_root?, l.as_ref()?.concat())))
            .collect();
        crate::bt::create::encode_file(&t.info, &[], &layers)
    }

    /// The finished file's merkle tree, when its block hashes were kept.
    pub fn tree(&mut self) -> Option<Tree> {
        let t = self.torrent.as_ref()?;
        let layout = t.file_tree(t.total_len());
        if self.leafed.iter().any(|l| !l) {
            return None;
        }
        Some(Tree::new(layout, self.leaves.take()?))
    }

    /// Stores proven layer hashes from `index` on; true once the whole
    /// layer is in (it is then the torrent's).
    pub fn add_layer(&mut self, index: u32, hashes: &[Hash]) -> bool {
        let Some((root, tree)) = self.layer_target() else {
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
        if tree.root_from_piece_layer(&layer) != root {
            self.layer.iter_mut().for_each(|h| *h = None);
            return false;
        }
        let (Some(t), Some((file, _))) = (self.torrent.as_mut(), self.layer_file) else {
            return false;
        };
        t.piece_layers[file] = Some(layer);
        self.check = t.check();
        self.layer = Vec::new();
        self.layer_asked = Vec::new();
        true
    }
}

/// Whether a v1 piece written to `part` (not held in memory) hashes to
/// `expected`, read back in slices.
fn v1_read_back(part: &dyn PartFile, at: u64, size: u64, expected: &[u8; 20]) -> std::io::Result<bool> {
    let mut h = Sha1::new();
    let mut buf = vec![0u8; (64 << 10).min(size as usize)];
    let mut done = 0;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        part.read_at(&mut buf[..n], at + done)?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(h.finalize()[..] == expected[..])
}

/// The block hashes of a piece (in memory, or read back from `part`):
/// what tells the blocks of two attempts apart.
fn fingerprints(
    part: &dyn PartFile,
    data: &Option<Vec<u8>>,
    at: u64,
    size: u64,
) -> std::io::Result<Vec<Hash>> {
    if let Some(buf) = data {
        return Ok(buf.chunks(BLOCK).map(block_hash).collect());
    }
    let mut out = Vec::new();
    let mut block = vec![0u8; BLOCK];
    let mut done = 0;
    while done < size {
        let n = (size - done).min(BLOCK as u64) as usize;
        part.read_at(&mut block[..n], at + done)?;
        out.push(block_hash(&block[..n]));
        done += n as u64;
    }
    Ok(out)
}

/// A bitfield as BitTorrent sends it (the first piece in the high bit)
/// in the transfer core's bitmap form (the first in the low bit), for
/// `pieces` pieces.
pub fn picker_bits(has: &[u8], pieces: usize) -> Vec<u8> {
    let mut bits = vec![0; pieces.div_ceil(8)];
    for p in (0..pieces).filter(|&p| has.get(p / 8).is_some_and(|b| b & (0x80 >> (p % 8)) != 0)) {
        bitmap::set_bit(&mut bits, p);
    }
    bits
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::bt::merkle::{verify_hashes, Layout};

    const P1: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)), 1);
    const P2: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)), 1);
    const P3: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)), 1);
    use crate::bt::torrent::info_bytes;
    use crate::client::engine::transfer::storage::mem::MemStorage;
    use crate::client::engine::transfer::storage::Storage;

    /// A file of `size` bytes, its torrent (with its piece layer or not)
    /// and tree.
    pub(in super::super) fn torrent(
        size: usize,
        piece_len: u64,
        with_layer: bool,
    ) -> (Vec<u8>, Metainfo, Tree) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 255) as u8).collect();
        let layout = Layout {
            size: size as u64,
            piece_len,
        };
        let tree = Tree::new(layout, data.chunks(BLOCK).map(block_hash).collect());
        let mut t = Metainfo::from_info_bytes(&info_bytes("f.bin", layout, &tree.root())).unwrap();
        if with_layer && layout.has_piece_layer() {
            t.piece_layers[0] = Some(tree.piece_layer().to_vec());
        }
        (data, t, tree)
    }

    /// The next block for a peer holding the wire bitfield `has`.
    pub(in crate::client::engine) fn pick(
        d: &mut BtDownload,
        has: &[u8],
        busy: &[(u32, u32)],
        who: SocketAddr,
    ) -> Option<(u32, u32, u32)> {
        let picker = Has::Bits(picker_bits(has, d.pieces() as usize));
        d.next_block(has, &picker, busy, who)
    }

    /// A download of `t` with its working file in memory.
    pub(in super::super) fn download(t: Metainfo) -> BtDownload {
        let mut d = BtDownload::new("x".into(), t.hashes, Rng::seeded(1), Instant::now());
        let meta = FileMeta {
            name: t.name.clone(),
            size: t.total_len(),
            chunk_size: t.piece_len() as u32,
            chunks: vec![[0; 32]; t.pieces() as usize],
            sha256: key_of(&t.hashes),
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
        while let Some(span) = pick(&mut d, &all, &[], P1) {
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

    /// Pieces are started rarest first (the transfer core's picker): a
    /// piece two peers hold comes after those only one holds.
    #[test]
    fn pieces_start_rarest_first() {
        let (_, t, _) = torrent(4 * BLOCK, BLOCK as u64, true);
        let mut d = download(t);
        let all = Has::Bits(picker_bits(&[0xf0], 4));
        let only_2 = Has::Bits(picker_bits(&[0x20], 4));
        d.peer_joined(&all);
        d.peer_joined(&only_2);
        let mut firsts: Vec<u32> = (0..3)
            .map(|_| d.next_block(&[0xf0], &all, &[], P1).unwrap().0)
            .collect();
        firsts.sort();
        assert_eq!(firsts, vec![0, 1, 3], "the rarest three first");
        assert_eq!(d.next_block(&[0xf0], &all, &[], P1).unwrap().0, 2);
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
            pick(&mut d, &[0x40], &[], P1),
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
            pick(&mut d, &[0x80], &[], P1),
            Some((0, 0, BLOCK as u32)),
            "asked again"
        );
        assert_eq!(pick(&mut d, &[0x00], &[], P1), None);
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
            pick(&mut d, &[0x80], &[], P1),
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
            pick(&mut d, &[0x80], &[], P3),
            Some((0, 2 * BLOCK as u32, BLOCK as u32))
        );
        assert_eq!(
            pick(&mut d, &[0x80], &[], P3),
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
        assert_eq!(pick(&mut d, &[0x80], &[], P3), Some((0, 0, BLOCK as u32)));
        assert_eq!(pick(&mut d, &[0x80], &[], P1), None, "P3 fetches it alone");
        // P3 leaves: the piece is free for another single peer.
        d.unask(0);
        d.left(P3, ConnId(3));
        let mut asked = Vec::new();
        while let Some(span) = pick(&mut d, &[0x80], &asked, P1) {
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
