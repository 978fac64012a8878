//! An outbound BitTorrent connection of a v2 download (the engine's side
//! of the downloads is [`super::downloads`]).
//!
//! A connection sends its handshake (only the extension bit set), the BEP
//! 10 extension handshake and `interested` at once; then, as the download
//! needs: the info dictionary by `ut_metadata` (one connection at a time),
//! the piece layer by `hash request`s of 512 hashes with proofs up to
//! `pieces root` (one at a time per connection), and 16 KiB blocks, at most
//! [`PIPELINE`] in flight. What it does not use it ignores; it answers
//! requests for data with nothing (we keep it choked) and hash or metadata
//! requests with a reject.
//!
//! Timeouts are the native fetch's: while anything is asked (or we wait
//! to be unchoked) the connection must move [`MIN_PROGRESS`] bytes per
//! request timeout. Bad pieces strike the peer that completed them; proofs
//! that do not check and metadata that is not the torrent ban it.

use crate::bt::ext::{ExtHandshake, Metadata, METADATA_PIECE, UT_METADATA_ID};
use crate::bt::merkle::{verify_hashes, HashRequest};
use crate::bt::wire::{self, Handshake, Msg, HANDSHAKE_LEN, MAX_MESSAGE_LEN};
use crate::client::engine::bittorrent::download::{BtDownload, Landed, LAYER_CHUNK};
use crate::client::engine::transfer::bitmap;
use crate::client::engine::transfer::buf::Buf;
use crate::client::engine::transfer::picker::Has;
use crate::client::engine::*;
use log::debug;

/// Blocks kept asked of one peer (2 MiB: enough to keep a fast peer busy
/// across a round trip on a LAN or loopback).
pub const PIPELINE: usize = 128;
/// Blocks kept asked of one peer in the end game, when every block asked
/// there is a copy of one asked of another peer too: a few keep a slow
/// peer from holding up the finish; a whole pipeline of copies would
/// fetch much of the file's tail twice.
pub const END_GAME_PIPELINE: usize = 8;
/// Output: a full pipeline of requests, metadata requests and a hash
/// request fit many times over.
const OUT_CAP: usize = 16 << 10;

/// Where a BitTorrent download comes from.
#[derive(Debug, Clone)]
pub enum BtSource {
    /// A `.torrent` file's bytes.
    Torrent(Vec<u8>),
    /// A magnet link.
    Magnet(String),
}

/// What a connection's turn produced, for the engine to act on.
#[derive(Default)]
pub struct BtReport {
    pub verified: usize,
    /// Pieces completed here that failed their hash (who is to blame is
    /// the download's [`BtDownload::blamed`]).
    pub bad: Vec<u32>,
    /// The whole info dictionary, fetched: to be checked.
    pub info: Option<Vec<u8>>,
    /// The piece layer became complete.
    pub layer_done: bool,
    /// A held piece's block hashes came (or were refused): blocks may be
    /// missing again.
    pub leaves: bool,
    pub answered: bool,
}

pub struct BtFetch {
    pub download: usize,
    conn: ConnId,
    pub addr: SocketAddr,
    pub connected: bool,
    input: Buf,
    output: Buf,
    /// The peer's handshake arrived (and was for our torrent).
    shook: bool,
    ext: ExtHandshake,
    choked: bool,
    /// The peer's pieces, one bit each (bounded by the message limit).
    has: Vec<u8>,
    /// What the download's picker was told the peer has (its bitmap
    /// form), once the torrent is known: taken back when the peer goes.
    joined: Option<Has>,
    /// Blocks asked and not yet received: (piece, begin).
    queue: Vec<(u32, u32)>,
    layer_req: Option<HashRequest>,
    /// Our request for a held piece's block hashes (see
    /// [`BtDownload::leaves_wanted`]).
    leaf_req: Option<HashRequest>,
    pub deadline: Instant,
    window: u64,
    timeout: Duration,
}

impl BtFetch {
    pub fn new(conn: ConnId, download: usize, addr: SocketAddr, now: Instant, timeout: Duration) -> BtFetch {
        BtFetch {
            download,
            conn,
            addr,
            connected: false,
            input: Buf::new(4 + MAX_MESSAGE_LEN),
            output: Buf::new(OUT_CAP),
            shook: false,
            ext: ExtHandshake::default(),
            choked: true,
            has: Vec::new(),
            joined: None,
            queue: Vec::new(),
            layer_req: None,
            leaf_req: None,
            deadline: now + timeout,
            window: 0,
            timeout,
        }
    }

    /// Whether the connection waits on the peer for something (so its
    /// progress deadline applies).
    pub fn waiting(&self, dl: Option<&BtDownload>) -> bool {
        let fetching_info = dl.is_some_and(|d| d.info_conn == Some(self.conn));
        !self.shook
            || !self.queue.is_empty()
            || self.layer_req.is_some()
            || fetching_info
            || (self.choked && dl.is_some_and(BtDownload::ready))
    }

    fn send(&mut self, msg: &Msg<'_>) {
        let mut frame = Vec::with_capacity(64);
        wire::encode(msg, &mut frame);
        // Our messages are small and the caller sends only a bounded
        // number between writes; a full buffer drops nothing that matters
        // more than the connection (it is then closed as stalled).
        if !self.output.push(&frame) {
            debug!("output to {} full: dropping a message", self.addr);
        }
    }

    pub fn on_connected(&mut self, dl: &BtDownload, peer_id: [u8; 20], now: Instant) {
        self.connected = true;
        self.deadline = now + self.timeout;
        let mut out = Vec::with_capacity(HANDSHAKE_LEN + 128);
        Handshake::new(dl.wire_hash(), peer_id).encode(&mut out);
        let mut ext = Vec::new();
        ExtHandshake::encode(None, &mut ext);
        wire::encode(&Msg::Extended { id: 0, payload: &ext }, &mut out);
        wire::encode(&Msg::Interested, &mut out);
        self.output.push(&out);
    }

    /// Asks for whatever the download needs next from this peer.
    pub fn refill(&mut self, dl: &mut BtDownload, now: Instant) {
        if !self.connected || !self.shook || dl.is_finished() {
            return;
        }
        let was_waiting = self.waiting(Some(dl));
        if dl.torrent.is_none() {
            self.ask_info(dl);
            self.restart_deadline(was_waiting, dl, now);
            return;
        }
        // A v2 magnet's piece layer comes from peers.
        if dl.layer_target().is_some() {
            if self.layer_req.is_none() {
                self.ask_layer(dl);
            }
            self.restart_deadline(was_waiting, dl, now);
            return;
        }
        if self.leaf_req.is_none() {
            if let Some(req) = dl.leaves_wanted(self.conn, &self.has) {
                debug!("{}: asking for {req:?}", self.addr);
                self.leaf_req = Some(req);
                self.send(&Msg::HashRequest(req));
            }
        }
        if !self.choked && dl.part.is_some() {
            loop {
                let limit = if dl.in_end_game() {
                    END_GAME_PIPELINE
                } else {
                    PIPELINE
                };
                if self.queue.len() >= limit {
                    break;
                }
                if self.joined.is_none() {
                    let has = Has::Bits(super::download::picker_bits(&self.has, dl.pieces() as usize));
                    dl.peer_joined(&has);
                    self.joined = Some(has);
                }
                let Some(picker_has) = self.joined.as_ref() else {
                    break;
                };
                let Some((piece, begin, length)) =
                    dl.next_block(&self.has, picker_has, &self.queue, self.addr)
                else {
                    break;
                };
                self.queue.push((piece, begin));
                self.send(&Msg::Request {
                    index: piece,
                    begin,
                    length,
                });
            }
        }
        self.restart_deadline(was_waiting, dl, now);
    }

    fn restart_deadline(&mut self, was_waiting: bool, dl: &BtDownload, now: Instant) {
        if !was_waiting && self.waiting(Some(dl)) {
            self.deadline = now + self.timeout;
        }
    }

    /// Asks this peer for the whole info dictionary when nobody else is
    /// fetching it and the peer says it has it.
    fn ask_info(&mut self, dl: &mut BtDownload) {
        let (Some(_), Some(size)) = (self.ext.ut_metadata, self.ext.metadata_size) else {
            return;
        };
        if dl.info_conn.is_some() {
            return;
        }
        dl.info_conn = Some(self.conn);
        dl.info_buf = vec![0; size];
        dl.info_got = vec![false; size.div_ceil(METADATA_PIECE)];
        for piece in 0..dl.info_got.len() as u32 {
            self.send_ext_metadata(&Metadata::Request(piece));
        }
    }

    fn send_ext_metadata(&mut self, m: &Metadata<'_>) {
        let Some(id) = self.ext.ut_metadata else {
            return;
        };
        let mut payload = Vec::new();
        m.encode(&mut payload);
        self.send(&Msg::Extended {
            id,
            payload: &payload,
        });
    }

    /// Asks for the first chunk of the piece layer nobody is asked for.
    fn ask_layer(&mut self, dl: &mut BtDownload) {
        let Some((pieces_root, layout)) = dl.layer_target() else {
            return;
        };
        let width = layout.pieces().next_power_of_two() as u32;
        let count = width.min(LAYER_CHUNK);
        let per = LAYER_CHUNK as usize;
        let missing = |c: usize| dl.layer.iter().skip(c * per).take(per).any(Option::is_none);
        let Some(chunk) = (0..dl.layer_asked.len()).find(|&c| dl.layer_asked[c].is_none() && missing(c))
        else {
            return;
        };
        let base = layout.piece_height();
        // Only files of more than one piece have a layer to ask for, so
        // the root is above it.
        let Some(proof_layers) = layout.height().checked_sub(base + 1) else {
            return;
        };
        let req = HashRequest {
            pieces_root,
            base,
            index: chunk as u32 * LAYER_CHUNK,
            count,
            proof_layers,
        };
        debug!("{}: asking for {req:?}", self.addr);
        dl.layer_asked[chunk] = Some(self.conn);
        self.layer_req = Some(req);
        self.send(&Msg::HashRequest(req));
    }

    /// Counts `n` bytes received (see the native fetch's `progress`).
    fn progress(&mut self, n: usize, now: Instant) {
        self.window += n as u64;
        if self.window >= MIN_PROGRESS {
            self.window = 0;
            self.deadline = now + self.timeout;
        }
    }

    /// Writes and reads until the socket would block or `budget` bytes
    /// were read.
    pub fn drive(
        &mut self,
        s: &mut dyn Stream,
        dl: &mut BtDownload,
        now: Instant,
        budget: usize,
        report: &mut BtReport,
    ) -> Result<Flow, ConnEnd> {
        let mut got = 0;
        loop {
            self.output.flush_to(s)?;
            let Some(n) = self.input.fill_from(s)? else {
                // Everything read: answer what came, write what that asked.
                self.process(dl, now, report)?;
                let more = !self.output.is_empty();
                return Ok(if more { Flow::Again } else { Flow::Idle });
            };
            if n == 0 {
                return Err(ConnEnd::Eof {
                    in_flight: self.queue.len(),
                });
            }
            got += n;
            self.progress(n, now);
            self.process(dl, now, report)?;
            if dl.is_finished() || report.info.is_some() || report.layer_done {
                // The engine acts on these before anything else is read.
                return if dl.is_finished() {
                    Err(ConnEnd::Finished)
                } else {
                    Ok(Flow::Again)
                };
            }
            if got >= budget {
                return Ok(Flow::Again);
            }
        }
    }

    fn process(&mut self, dl: &mut BtDownload, now: Instant, report: &mut BtReport) -> Result<(), ConnEnd> {
        if !self.shook {
            let Some(h) = Handshake::decode(self.input.filled()).map_err(ConnEnd::Protocol)? else {
                return Ok(());
            };
            if !dl.is_named_by(&h.info_hash) {
                return Err(ConnEnd::BadPeer("answered for another torrent"));
            }
            self.input.consume(HANDSHAKE_LEN);
            self.shook = true;
        }
        // Messages borrow the input while they are handled: it is lent out
        // of `self` for that (an empty buffer allocates nothing).
        let mut input = std::mem::replace(&mut self.input, Buf::new(0));
        let outcome = self.handle_all(&mut input, dl, report);
        self.input = input;
        outcome?;
        self.refill(dl, now);
        Ok(())
    }

    fn handle_all(
        &mut self,
        input: &mut Buf,
        dl: &mut BtDownload,
        report: &mut BtReport,
    ) -> Result<(), ConnEnd> {
        while !dl.is_finished() {
            let (msg, used) = match wire::decode(input.filled()) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(ConnEnd::Protocol(e)),
            };
            let outcome = self.handle(msg, dl, report);
            input.consume(used);
            outcome?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: Msg<'_>, dl: &mut BtDownload, report: &mut BtReport) -> Result<(), ConnEnd> {
        let pieces = dl.pieces() as usize;
        if !matches!(msg, Msg::Piece { .. }) {
            log::trace!("{}: {msg:?}", self.addr);
        }
        match msg {
            Msg::Choke => {
                self.choked = true;
                // A choke discards our requests (BEP 3, no fast extension).
                for (piece, begin) in self.queue.drain(..) {
                    if let Some(b) = dl.block_of_any(piece, begin) {
                        dl.unask(b);
                    }
                }
            }
            Msg::Unchoke => self.choked = false,
            Msg::Have(i) => {
                let byte = i as usize / 8;
                let limit = if pieces > 0 {
                    pieces.div_ceil(8)
                } else {
                    MAX_MESSAGE_LEN
                };
                if byte >= limit {
                    return Err(ConnEnd::Unexpected("has a piece past the end"));
                }
                if self.has.len() <= byte {
                    self.has.resize(byte + 1, 0);
                }
                self.has[byte] |= 0x80 >> (i % 8);
                if let Some(Has::Bits(bits)) = self.joined.as_mut() {
                    if !bitmap::bit(bits, i as usize) {
                        bitmap::set_bit(bits, i as usize);
                        dl.peer_gained(i);
                    }
                }
            }
            Msg::Bitfield(bits) => {
                if pieces > 0 && bits.len() != pieces.div_ceil(8) {
                    return Err(ConnEnd::Unexpected("bitfield of the wrong length"));
                }
                self.has = bits.to_vec();
                // Counted again, from this bitfield, at the next pick.
                if let Some(old) = self.joined.take() {
                    dl.peer_left(&old);
                }
            }
            Msg::Piece { index, begin, data } => {
                let Some(pos) = self.queue.iter().position(|q| *q == (index, begin)) else {
                    // Asked before a choke, or a block we no longer want.
                    return Ok(());
                };
                self.queue.swap_remove(pos);
                let Some(b) = dl.block_of(index, begin, data.len() as u32) else {
                    return Err(ConnEnd::Unexpected("a block of the wrong length"));
                };
                report.answered = true;
                match dl.land(b, data, self.addr) {
                    Ok(Landed::Stored) => {}
                    Ok(Landed::Verified(_)) => report.verified += 1,
                    Ok(Landed::Bad(piece)) => report.bad.push(piece),
                    Err(e) => {
                        dl.fail(format!("cannot write to the .part file: {e}"));
                        return Err(ConnEnd::Finished);
                    }
                }
            }
            Msg::Extended { id: 0, payload } => {
                self.ext = ExtHandshake::decode(payload).unwrap_or_default();
            }
            Msg::Extended {
                id: UT_METADATA_ID,
                payload,
            } => match Metadata::decode(payload) {
                Some(Metadata::Data {
                    piece,
                    total_size,
                    data,
                }) => {
                    // Not ours to fetch, or complete already (the engine
                    // checks it before anyone asks again).
                    if dl.info_conn != Some(self.conn) || dl.info_buf.is_empty() {
                        return Ok(());
                    }
                    let at = piece as usize * METADATA_PIECE;
                    let want = dl.info_buf.len().saturating_sub(at).min(METADATA_PIECE);
                    if total_size != dl.info_buf.len() || data.len() != want || want == 0 {
                        return Err(ConnEnd::Unexpected("a metadata piece that does not fit"));
                    }
                    dl.info_buf[at..at + want].copy_from_slice(data);
                    dl.info_got[piece as usize] = true;
                    report.answered = true;
                    if dl.info_got.iter().all(|g| *g) {
                        report.info = Some(std::mem::take(&mut dl.info_buf));
                    }
                }
                Some(Metadata::Reject(_)) if dl.info_conn == Some(self.conn) => {
                    dl.info_conn = None;
                    return Err(ConnEnd::Unexpected("refused the metadata"));
                }
                Some(Metadata::Request(piece)) => self.send_ext_metadata(&Metadata::Reject(piece)),
                _ => {}
            },
            Msg::HashRequest(req) => self.send(&Msg::HashReject(req)),
            Msg::Hashes { req, hashes } if self.leaf_req == Some(req) => {
                self.leaf_req = None;
                let Some(tree) = dl.tree_of_root(&req.pieces_root) else {
                    return Ok(());
                };
                let hashes = wire::split_hashes(hashes);
                let Some(proven) = verify_hashes(&req, &tree, &req.pieces_root, &hashes) else {
                    return Err(ConnEnd::BadPeer("sent block hashes that do not prove out"));
                };
                report.answered = true;
                report.leaves = true;
                let proven = proven.to_vec();
                dl.leaves_came(&req, &proven);
            }
            Msg::HashReject(req) if self.leaf_req == Some(req) => {
                debug!("{} refused {req:?}", self.addr);
                self.leaf_req = None;
                report.leaves = true;
                dl.leaves_refused(&req);
            }
            Msg::Hashes { req, hashes } => {
                if self.layer_req != Some(req) {
                    return Ok(());
                }
                self.layer_req = None;
                let Some((root, tree)) = dl.layer_target() else {
                    return Ok(());
                };
                let hashes = wire::split_hashes(hashes);
                let Some(proven) = verify_hashes(&req, &tree, &root, &hashes) else {
                    return Err(ConnEnd::BadPeer("sent piece hashes that do not prove out"));
                };
                report.answered = true;
                let proven = proven.to_vec();
                if dl.add_layer(req.index, &proven) {
                    report.layer_done = true;
                }
            }
            Msg::HashReject(req) => {
                if self.layer_req == Some(req) {
                    debug!("{} refused {req:?}", self.addr);
                    // Without the layer the peer is of no use yet: let
                    // others have the slot (its request goes back when
                    // the connection closes).
                    return Err(ConnEnd::Unexpected("refused the piece layer"));
                }
            }
            // We keep the peer choked and use no other extension.
            Msg::KeepAlive
            | Msg::Interested
            | Msg::NotInterested
            | Msg::Request { .. }
            | Msg::Cancel { .. }
            | Msg::Extended { .. }
            | Msg::Other(_) => {}
        }
        Ok(())
    }

    /// The connection ends: what it was asked goes back to the download.
    pub fn abandon(&mut self, dl: &mut BtDownload) {
        for (piece, begin) in self.queue.drain(..) {
            if let Some(b) = dl.block_of_any(piece, begin) {
                dl.unask(b);
            }
        }
        dl.left(self.addr, self.conn);
        if let Some(has) = self.joined.take() {
            dl.peer_left(&has);
        }
        if let Some(req) = self.layer_req.take() {
            if let Some(a) = dl.layer_asked.get_mut((req.index / LAYER_CHUNK) as usize) {
                *a = None;
            }
        }
        if dl.info_conn == Some(self.conn) {
            dl.info_conn = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::merkle::BLOCK;
    use crate::client::engine::bittorrent::download::tests::{download, torrent};
    use crate::testutil::Pipe;

    /// Our messages in `out` after the handshake.
    fn sent(out: &[u8]) -> Vec<Msg<'_>> {
        let mut msgs = Vec::new();
        let mut at = HANDSHAKE_LEN;
        while let Ok(Some((m, used))) = wire::decode(&out[at..]) {
            msgs.push(m);
            at += used;
        }
        msgs
    }

    /// A connection for `d` whose peer sent its handshake and `then`,
    /// after two turns (the second writes what the first queued).
    fn connected(d: &mut BtDownload, then: &[Msg<'_>], now: Instant) -> (BtFetch, Pipe) {
        let addr = "10.0.0.1:6881".parse().unwrap();
        let mut f = BtFetch::new(ConnId(1), 0, addr, now, Duration::from_secs(10));
        f.on_connected(d, [1; 20], now);
        let mut pipe = Pipe::default();
        Handshake::new(d.wire_hash(), [2; 20]).encode(&mut pipe.input);
        for m in then {
            wire::encode(m, &mut pipe.input);
        }
        for _ in 0..2 {
            f.drive(&mut pipe, d, now, 1 << 20, &mut BtReport::default())
                .unwrap();
        }
        (f, pipe)
    }

    #[test]
    fn a_choke_gives_the_blocks_back_and_a_hash_reject_ends_the_connection() {
        let now = Instant::now();
        let mut report = BtReport::default();
        let (_, t, _) = torrent(8 * BLOCK, BLOCK as u64, true);
        let mut d = download(t);
        let (mut f, mut pipe) = connected(&mut d, &[Msg::Bitfield(&[0xff]), Msg::Unchoke], now);
        let msgs = sent(&pipe.output);
        assert!(
            matches!(msgs[0], Msg::Extended { id: 0, .. }) && msgs[1] == Msg::Interested,
            "{msgs:?}"
        );
        let asked = msgs.iter().filter(|m| matches!(m, Msg::Request { .. })).count();
        assert_eq!(asked, 8, "every block, once");
        assert_eq!(
            super::super::download::tests::pick(&mut d, &[0xff], &[], SocketAddr::from(([10, 0, 0, 9], 1))),
            Some((0, 0, BLOCK as u32)),
            "the end game"
        );
        d.unask(0);
        wire::encode(&Msg::Choke, &mut pipe.input);
        f.drive(&mut pipe, &mut d, now, 1 << 20, &mut report).unwrap();
        assert_eq!(
            super::super::download::tests::pick(&mut d, &[0xff], &[], SocketAddr::from(([10, 0, 0, 9], 1))),
            Some((0, 0, BLOCK as u32)),
            "given back on the choke"
        );
        assert!(
            f.waiting(Some(&d)),
            "choked while there is work: the deadline runs"
        );

        // Without the layer, a reject of our hash request ends the connection.
        let (_, t, _) = torrent(8 * BLOCK, BLOCK as u64, false);
        let mut d = download(t);
        let (mut f, mut pipe) = connected(&mut d, &[], now);
        let Some(&Msg::HashRequest(req)) = sent(&pipe.output)
            .iter()
            .find(|m| matches!(m, Msg::HashRequest(_)))
        else {
            panic!("no hash request");
        };
        wire::encode(&Msg::HashReject(req), &mut pipe.input);
        let end = f.drive(&mut pipe, &mut d, now, 1 << 20, &mut report).unwrap_err();
        assert!(end.to_string().contains("refused the piece layer"), "{end}");
        f.abandon(&mut d);
        assert!(d.layer_asked.iter().all(Option::is_none), "the request goes back");
    }
}
