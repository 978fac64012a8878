//! Serving over BitTorrent: what a connection may be served from
//! ([`Offers`]: the torrents we seed, [`BtShared`], and the downloads whose
//! piece layer we hold) and one inbound BitTorrent connection
//! ([`BtServe`]).
//!
//! A connection starts when the listener's first byte is `0x13` (the
//! project's protocol starts with `P`). After the peer's handshake names
//! one of our torrents, it gets our handshake, extension handshake (with
//! the info dictionary's size), a bitfield (full for a seeded torrent, the
//! verified pieces of a download) and `unchoke`, then answers `request`s (a
//! block past the end of the file, inside the last piece, is zeros:
//! libtorrent treats the tail as padding and asks for it), `hash request`s
//! (from a seeded torrent's tree, else a reject) and `ut_metadata`
//! requests; of a download it tells each piece verified later (`have`).
//!
//! Invariants: at most [`MAX_QUEUED`] block requests wait (a peer asking
//! more is dropped); blocks are read with positioned reads straight into a
//! fixed output buffer; files are opened without following symlinks and
//! only while they still have the torrent's size; requests are checked
//! against the torrent before anything is read, and of a download only
//! verified pieces are read (a request for another is dropped).

use crate::bt::ext::{ExtHandshake, Metadata, METADATA_PIECE, UT_METADATA_ID};
use crate::bt::merkle::{Tree, BLOCK};
use crate::bt::metainfo::Metainfo;
use crate::bt::wire::{self, Handshake, Msg, HANDSHAKE_LEN};
use crate::client::engine::bittorrent::tracker::UdpTracker;
use crate::client::engine::transfer::buf::Buf;
use crate::client::engine::*;
use crate::names;
use log::info;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Block requests one peer may have waiting (what our extension handshake
/// advertises as `reqq`).
pub const MAX_QUEUED: usize = 250;
/// Input: one message of the largest size the decoder accepts (a
/// leecher's bitfield can be large; its requests are small).
const IN_CAP: usize = 4 + wire::MAX_MESSAGE_LEN;
/// Output: 64 blocks (or a `hashes` answer of 512 hashes with proofs).
/// Each turn fills it with the blocks asked and writes it until the socket
/// would block: seeding two libtorrent leechers on loopback
/// (benches/bt_seed.py) ran at 0.80x a libtorrent seeder with 128 KiB,
/// 1.02x with 512 KiB and 1.16x with 1 MiB, CPU mostly idle throughout:
/// the socket was left waiting, not the CPU. Pages are touched only as a
/// connection uploads, so memory follows the connections that upload.
const OUT_CAP: usize = 1 << 20;
/// Most hashes answered in one message.
const MAX_ANSWER_HASHES: u32 = 512;

/// A torrent a connection may be served from.
pub struct Offer<'a> {
    pub torrent: &'a Metainfo,
    /// Per entry of its layout, the file's whole tree where we have it
    /// (files we seed): hash requests for it are answered.
    pub trees: &'a [Option<Tree>],
    /// The file (a single-file torrent) or the folder its files are in.
    pub path: &'a Path,
    /// For a download in progress: which pieces are verified, and the
    /// order in which they were (told to peers as `have`s). `None`: every
    /// piece.
    pub verified: Option<(&'a [bool], &'a [u32])>,
}

/// The torrents connections may be served from, by the 20 bytes that
/// stand for them in handshakes.
pub trait Offers {
    fn offer(&self, short: &[u8; 20]) -> Option<Offer<'_>>;
}

impl Offers for Vec<BtShared> {
    fn offer(&self, short: &[u8; 20]) -> Option<Offer<'_>> {
        self.iter().find(|t| t.torrent.is_named_by(short)).map(|t| Offer {
            torrent: &t.torrent,
            trees: &t.trees,
            path: &t.path,
            verified: None,
        })
    }
}

/// A torrent we seed: its file or folder, and the files' trees we have.
pub struct BtShared {
    pub torrent: Metainfo,
    pub trees: Vec<Option<Tree>>,
    pub path: PathBuf,
    pub trackers: Vec<UdpTracker>,
}

/// The files a connection reads blocks from: one file, or a folder's
/// files by their place in the piece space (the one read last kept
/// open). Files are opened without following a symlink and used only
/// while they have the torrent's length for them; padding reads as zeros.
enum Files {
    One(File),
    Folder(Option<(usize, File)>),
}

impl Files {
    fn open(t: &Metainfo, path: &Path) -> Result<Files, ConnEnd> {
        if t.multi_file {
            return Ok(Files::Folder(None));
        }
        Ok(Files::One(open_checked(path, t.content_len())?))
    }

    /// Fills `buf` from piece-space offset `at`; returns the file bytes
    /// read (padding and the space past the end are zeros, not counted).
    fn read(&mut self, t: &Metainfo, path: &Path, at: u64, buf: &mut [u8]) -> Result<u64, ConnEnd> {
        buf.fill(0);
        let end = at + buf.len() as u64;
        let mut real = 0;
        let first = t.layout.files.partition_point(|f| f.offset + f.len <= at);
        for (i, f) in t.layout.files.iter().enumerate().skip(first) {
            if f.offset >= end {
                break;
            }
            if f.pad || f.len == 0 {
                continue;
            }
            let from = at.max(f.offset);
            let to = end.min(f.offset + f.len);
            let dst = &mut buf[(from - at) as usize..(to - at) as usize];
            let file = match self {
                Files::One(file) => &*file,
                Files::Folder(open) => {
                    if open.as_ref().is_none_or(|(k, _)| *k != i) {
                        *open = Some((i, open_checked(&path.join(f.rel_path_in_torrent()), f.len)?));
                    }
                    &open.as_ref().ok_or(ConnEnd::FileChanged)?.1
                }
            };
            file.read_exact_at(dst, from - f.offset)
                .map_err(|_| ConnEnd::FileChanged)?;
            real += to - from;
        }
        Ok(real)
    }
}

/// A file opened for reading, not through a symlink, of length `len`.
fn open_checked(path: &Path, len: u64) -> Result<File, ConnEnd> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.len() == len))
        .ok_or(ConnEnd::FileChanged)
}

/// One inbound BitTorrent connection.
pub struct BtServe {
    input: Buf,
    output: Buf,
    /// The torrent, once the handshake named it (its 20-byte hash).
    torrent: Option<[u8; 20]>,
    /// `have`s told: how much of a download's verified-piece log.
    told: usize,
    files: Option<Files>,
    /// The peer's id for `ut_metadata` messages.
    ut_metadata: Option<u8>,
    queue: VecDeque<(u32, u32, u32)>,
    pub uploaded: u64,
    window: u64,
    asked: bool,
}

impl BtServe {
    /// A connection whose first byte (`0x13`) was already read.
    pub fn new(first: u8) -> BtServe {
        let mut input = Buf::new(IN_CAP);
        input.push(&[first]);
        BtServe {
            input,
            output: Buf::new(OUT_CAP),
            torrent: None,
            told: 0,
            files: None,
            ut_metadata: None,
            queue: VecDeque::new(),
            uploaded: 0,
            window: 0,
            asked: false,
        }
    }

    /// Whether it made progress since asked last (a request in, or
    /// [`MIN_PROGRESS`] bytes out).
    pub fn take_progress(&mut self) -> bool {
        let moved = self.window >= MIN_PROGRESS || self.asked;
        if moved {
            self.window = 0;
            self.asked = false;
        }
        moved
    }

    /// Whether it serves the torrent whose handshake hash is `short`.
    /// The 20 bytes the peer named the torrent by (once it did).
    pub fn torrent_hash(&self) -> Option<&[u8; 20]> {
        self.torrent.as_ref()
    }

    pub fn drive(&mut self, s: &mut dyn Stream, shared: &dyn Offers, budget: usize) -> Result<Flow, ConnEnd> {
        // Bytes moved either way this turn: a peer that floods us with
        // small messages gets its turn ended like one that downloads fast.
        let mut moved = 0;
        loop {
            self.fill(shared)?;
            let before = self.output.len();
            self.output.flush_to(s)?;
            let wrote = before - self.output.len();
            self.window += wrote as u64;
            let read = if self.queue.len() < MAX_QUEUED {
                match self.input.fill_from(s)? {
                    Some(0) => return Err(ConnEnd::Eof { in_flight: 0 }),
                    Some(n) => n,
                    None => 0,
                }
            } else {
                0
            };
            self.process(shared)?;
            moved += wrote + read;
            if moved >= budget {
                return Ok(Flow::Again);
            }
            if read == 0 && (wrote == 0 || self.queue.is_empty() && self.output.is_empty()) {
                return Ok(Flow::Idle);
            }
        }
    }

    /// Reads requested blocks into the output while there is room.
    fn fill(&mut self, shared: &dyn Offers) -> Result<(), ConnEnd> {
        let Some(t) = self.torrent.as_ref().and_then(|k| shared.offer(k)) else {
            return Ok(());
        };
        if let Some((_, log)) = t.verified {
            // Pieces verified since we last told the peer.
            for &piece in log.iter().skip(self.told) {
                if self.output.room() < 9 {
                    break;
                }
                let mut have = Vec::with_capacity(9);
                wire::encode(&Msg::Have(piece), &mut have);
                self.output.compact();
                self.output.push(&have);
                self.told += 1;
            }
        }
        while let Some(&(index, begin, length)) = self.queue.front() {
            let len = length as usize;
            if self.output.room() < 13 + len {
                break;
            }
            // Unsent bytes move to the front only when the end has no room
            // for the block: not once a block (up to 1 MiB moved each time).
            if self.output.spare().len() < 13 + len {
                self.output.compact();
            }
            self.queue.pop_front();
            let mut head = Vec::with_capacity(13);
            wire::put_piece_header(&mut head, index, begin, len);
            self.output.push(&head);
            let at = u64::from(index) * t.torrent.piece_len() + u64::from(begin);
            // Requests are checked when they come; a download's pieces stay
            // verified, so the bytes read are verified bytes.
            let buf = &mut self.output.spare()[..len];
            let files = self.files.as_mut().ok_or(ConnEnd::FileChanged)?;
            let real = files.read(t.torrent, t.path, at, buf)?;
            self.output.commit(len);
            self.uploaded += real;
        }
        Ok(())
    }

    fn process(&mut self, shared: &dyn Offers) -> Result<(), ConnEnd> {
        if self.torrent.is_none() {
            let Some(h) = Handshake::decode(self.input.filled()).map_err(ConnEnd::Protocol)? else {
                return Ok(());
            };
            self.input.consume(HANDSHAKE_LEN);
            let Some(t) = shared.offer(&h.info_hash) else {
                return Err(ConnEnd::Unexpected("asked for a torrent we do not seed"));
            };
            self.files = Some(Files::open(t.torrent, t.path)?);
            self.torrent = Some(h.info_hash);
            self.asked = true;
            let mut out = Vec::new();
            Handshake::new(h.info_hash, *b"-PY0100-seedseedseed").encode(&mut out);
            let mut ext = Vec::new();
            ExtHandshake::encode(Some(t.torrent.info.len()), &mut ext);
            wire::encode(&Msg::Extended { id: 0, payload: &ext }, &mut out);
            let pieces = t.torrent.pieces() as usize;
            let mut bits = vec![0u8; pieces.div_ceil(8)];
            for p in (0..pieces).filter(|&p| t.verified.is_none_or(|(done, _)| done[p])) {
                bits[p / 8] |= 0x80 >> (p % 8);
            }
            self.told = t.verified.map_or(0, |(_, log)| log.len());
            wire::encode(&Msg::Bitfield(&bits), &mut out);
            wire::encode(&Msg::Unchoke, &mut out);
            if !self.output.push(&out) {
                return Err(ConnEnd::Unexpected("bitfield too large"));
            }
        }
        let Some(t) = self.torrent.as_ref().and_then(|k| shared.offer(k)) else {
            return Err(ConnEnd::Unexpected("asked for a torrent we no longer offer"));
        };
        loop {
            let (msg, used) = match wire::decode(self.input.filled()) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ConnEnd::Protocol(e)),
            };
            let reply = answer(&msg, &t, &mut self.queue, &mut self.ut_metadata)?;
            self.input.consume(used);
            self.asked = true;
            if let Some(reply) = reply {
                if !self.output.push(&reply) {
                    return Err(ConnEnd::Unexpected("the peer does not read our answers"));
                }
            }
        }
    }
}

/// What one message from a leecher asks of us: a reply to send, or a
/// block request queued.
fn answer(
    msg: &Msg<'_>,
    t: &Offer<'_>,
    queue: &mut VecDeque<(u32, u32, u32)>,
    ut_metadata: &mut Option<u8>,
) -> Result<Option<Vec<u8>>, ConnEnd> {
    let mut out = Vec::new();
    match *msg {
        Msg::Request { index, begin, length } => {
            let fits = u64::from(index) < t.torrent.pieces()
                && length > 0
                && length as usize <= BLOCK
                && u64::from(begin) + u64::from(length) <= t.torrent.piece_len();
            if !fits {
                return Err(ConnEnd::Unexpected("a request outside the torrent"));
            }
            if queue.len() >= MAX_QUEUED {
                return Err(ConnEnd::Unexpected("too many requests at once"));
            }
            // Of a download, only verified pieces: we never said we have
            // the others (a peer that asks anyway gets nothing).
            if t.verified.is_some_and(|(done, _)| !done[index as usize]) {
                return Ok(None);
            }
            queue.push_back((index, begin, length));
            return Ok(None);
        }
        Msg::Cancel { index, begin, length } => queue.retain(|q| *q != (index, begin, length)),
        Msg::HashRequest(req) => {
            let tree = t
                .trees
                .iter()
                .flatten()
                .find(|tree| tree.root() == req.pieces_root);
            let hashes = tree
                .filter(|_| req.count <= MAX_ANSWER_HASHES)
                .and_then(|tree| tree.hashes(&req));
            match hashes {
                Some(h) => wire::encode(
                    &Msg::Hashes {
                        req,
                        hashes: &h.concat(),
                    },
                    &mut out,
                ),
                None => wire::encode(&Msg::HashReject(req), &mut out),
            }
        }
        Msg::Extended { id: 0, payload } => {
            *ut_metadata = ExtHandshake::decode(payload).and_then(|h| h.ut_metadata);
            return Ok(None);
        }
        Msg::Extended {
            id: UT_METADATA_ID,
            payload,
        } => {
            let (Some(Metadata::Request(piece)), Some(id)) = (Metadata::decode(payload), *ut_metadata) else {
                return Ok(None);
            };
            let info = &t.torrent.info;
            let at = piece as usize * METADATA_PIECE;
            let m = if at < info.len() {
                Metadata::Data {
                    piece,
                    total_size: info.len(),
                    data: &info[at..(at + METADATA_PIECE).min(info.len())],
                }
            } else {
                Metadata::Reject(piece)
            };
            let mut payload = Vec::new();
            m.encode(&mut payload);
            wire::encode(
                &Msg::Extended {
                    id,
                    payload: &payload,
                },
                &mut out,
            );
        }
        _ => return Ok(None),
    }
    Ok((!out.is_empty()).then_some(out))
}

impl Engine {
    /// Seeds `path` (the file, or the folder of a multi-file torrent) as
    /// `torrent` from now on (announced to its trackers); `trees` are the
    /// files' trees where known, per entry of its layout.
    pub(in crate::client::engine) fn bt_share(
        &mut self,
        torrent: Metainfo,
        trees: Vec<Option<Tree>>,
        path: PathBuf,
        now: Instant,
    ) {
        let trackers = Self::bt_trackers(&torrent.tracker_urls(), now);
        self.bt_seed(torrent, trees, path, trackers);
    }

    /// Seeds `torrent` from `path`, announcing to `trackers`.
    pub(in crate::client::engine) fn bt_seed(
        &mut self,
        torrent: Metainfo,
        trees: Vec<Option<Tree>>,
        path: PathBuf,
        trackers: Vec<UdpTracker>,
    ) {
        if self.bt_shared.iter().any(|s| s.torrent.hashes == torrent.hashes) {
            return;
        }
        info!(
            "seeding {} over BitTorrent (info hash {})",
            names::escape(&torrent.name),
            crate::meta::hex(&torrent.wire_hash())
        );
        self.bt_shared.push(BtShared {
            torrent,
            trees,
            path,
            trackers,
        });
    }

    /// An inbound connection's first byte: BitTorrent's handshake starts
    /// with 0x13, the project's frames with `P`.
    pub(in crate::client::engine) fn sniff(&mut self, id: ConnId, stream: &mut dyn Stream, now: Instant) {
        let mut first = [0u8; 1];
        let kind = match stream.read(&mut first) {
            Ok(0) => return self.close(id, ConnEnd::Eof { in_flight: 0 }, now),
            Ok(_) if first[0] == wire::PROTOCOL[0] => Kind::BtServe(BtServe::new(first[0])),
            Ok(_) => Kind::Serve(Serve::with_first_byte(first[0])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return self.act(Action::Drive(id)),
            Err(e) => return self.close(id, ConnEnd::Io(e), now),
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.kind = kind;
            c.last_active = now;
        }
        self.act(Action::Drive(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::merkle::{verify_hashes, HashRequest, Layout};
    use crate::bt::torrent::Torrent;
    use crate::testutil::{data, Pipe, TempDir};

    #[test]
    fn blocks_past_the_end_are_zeros_and_hash_requests_are_answered_with_proofs() {
        let dir = TempDir::new("bt-serve");
        // 300 KiB in 64 KiB pieces: the last piece is 44 KiB of file and
        // 20 KiB of padding, asked for as whole blocks.
        let bytes = data(300 << 10, 3);
        let path = dir.path().join("f.bin");
        std::fs::write(&path, &bytes).unwrap();
        let layout = Layout {
            size: bytes.len() as u64,
            piece_len: 64 << 10,
        };
        let tree = Tree::from_reader(layout, &bytes[..]).unwrap();
        let (_, file) = Torrent::for_tree("f.bin", &tree, &[]).unwrap();
        let torrent = Metainfo::from_file_bytes(&file).unwrap();
        let root = tree.root();
        let shared = vec![BtShared {
            torrent,
            trees: vec![Some(tree)],
            path,
            trackers: Vec::new(),
        }];
        let mut input = Vec::new();
        Handshake::new(shared[0].torrent.wire_hash(), [9; 20]).encode(&mut input);
        let (last, tail) = (4, 2 * BLOCK as u32);
        wire::encode(
            &Msg::Request {
                index: last,
                begin: tail,
                length: BLOCK as u32,
            },
            &mut input,
        );
        let req = HashRequest {
            pieces_root: root,
            base: 2,
            index: 0,
            count: 8,
            proof_layers: layout.height() - 3,
        };
        wire::encode(&Msg::HashRequest(req), &mut input);
        let mut pipe = Pipe {
            input: input[1..].to_vec(),
            output: Vec::new(),
        };
        let mut s = BtServe::new(input[0]);
        for _ in 0..4 {
            s.drive(&mut pipe, &shared, 1 << 20).unwrap();
        }
        let out = &pipe.output[HANDSHAKE_LEN..];
        let mut msgs = Vec::new();
        let mut at = 0;
        while let Ok(Some((m, used))) = wire::decode(&out[at..]) {
            msgs.push(m);
            at += used;
        }
        let Some(Msg::Piece {
            index,
            begin,
            data: block,
        }) = msgs.iter().find(|m| matches!(m, Msg::Piece { .. }))
        else {
            panic!("no block in {msgs:?}");
        };
        assert_eq!((*index, *begin, block.len()), (last, tail, BLOCK));
        let real = bytes.len() - (4 * (64 << 10) + 2 * BLOCK);
        assert_eq!(&block[..real], &bytes[bytes.len() - real..]);
        assert!(block[real..].iter().all(|&b| b == 0), "the padding is zeros");
        let Some(Msg::Hashes { req: got, hashes }) = msgs.iter().find(|m| matches!(m, Msg::Hashes { .. }))
        else {
            panic!("no hashes in {msgs:?}");
        };
        assert_eq!(*got, req);
        let hashes = wire::split_hashes(hashes);
        let proven = verify_hashes(&req, &layout, &root, &hashes).expect("the proof checks");
        assert_eq!(
            proven[..5],
            shared[0].trees[0].as_ref().unwrap().piece_layer()[..]
        );
        // A request outside the torrent ends the connection.
        let mut bad = Vec::new();
        wire::encode(
            &Msg::Request {
                index: 5,
                begin: 0,
                length: BLOCK as u32,
            },
            &mut bad,
        );
        pipe.input = bad;
        assert!(s.drive(&mut pipe, &shared, 1 << 20).is_err());
    }
}
