//! An outbound BitTorrent connection of a v2 download, and the engine's
//! side of BitTorrent downloads: starting them, connecting, feeding
//! connections, finishing.
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

use super::bt_download::{BtDownload, BtPhase, Landed, LAYER_CHUNK};
use super::buf::Buf;
use super::*;
use crate::bt::ext::{ExtHandshake, Metadata, METADATA_PIECE, UT_METADATA_ID};
use crate::bt::merkle::{verify_hashes, HashRequest};
use crate::bt::torrent::{Torrent, MAX_INFO_LEN};
use crate::bt::wire::{self, Handshake, Msg, HANDSHAKE_LEN, MAX_MESSAGE_LEN};
use crate::meta::hex;
use crate::names;
use log::{debug, info};
use sha2::{Digest, Sha256};

/// Blocks kept asked of one peer (2 MiB: enough to keep a fast peer busy
/// across a round trip on a LAN or loopback).
pub const PIPELINE: usize = 128;
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
    /// Pieces that failed their hash, and whether this peer alone sent
    /// them (then it is struck).
    pub bad: Vec<(u32, bool)>,
    /// The whole info dictionary, fetched: to be checked.
    pub info: Option<Vec<u8>>,
    /// The piece layer became complete.
    pub layer_done: bool,
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
    /// Blocks asked and not yet received: (piece, begin).
    queue: Vec<(u32, u32)>,
    layer_req: Option<HashRequest>,
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
            queue: Vec::new(),
            layer_req: None,
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
        Handshake::new(crate::bt::torrent::short_hash(&dl.info_hash), peer_id).encode(&mut out);
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
        let Some(t) = dl.torrent.as_ref() else {
            self.ask_info(dl);
            self.restart_deadline(was_waiting, dl, now);
            return;
        };
        // A file of one piece has no layer: its root is the piece's hash.
        if t.piece_hash(0).is_none() {
            if self.layer_req.is_none() {
                self.ask_layer(dl);
            }
            self.restart_deadline(was_waiting, dl, now);
            return;
        }
        if !self.choked && dl.part.is_some() {
            while self.queue.len() < PIPELINE {
                let Some((piece, begin, length)) = dl.next_block(&self.has, &self.queue) else {
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
        let Some(t) = dl.torrent.as_ref() else {
            return;
        };
        let layout = t.layout;
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
            pieces_root: t.pieces_root,
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
            if h.info_hash != crate::bt::torrent::short_hash(&dl.info_hash) {
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
            }
            Msg::Bitfield(bits) => {
                if pieces > 0 && bits.len() != pieces.div_ceil(8) {
                    return Err(ConnEnd::Unexpected("bitfield of the wrong length"));
                }
                self.has = bits.to_vec();
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
                match dl.land(b, data, self.conn) {
                    Ok(Landed::Stored) => {}
                    Ok(Landed::Verified(_)) => report.verified += 1,
                    Ok(Landed::Bad(piece, culprit)) => report.bad.push((piece, culprit == Some(self.conn))),
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
            Msg::Hashes { req, hashes } => {
                if self.layer_req != Some(req) {
                    return Ok(());
                }
                self.layer_req = None;
                let Some(t) = dl.torrent.as_ref() else {
                    return Ok(());
                };
                let hashes = wire::split_hashes(hashes);
                let Some(proven) = verify_hashes(&req, &t.layout, &t.pieces_root, &hashes) else {
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

impl Engine {
    /// Starts a BitTorrent download from a `.torrent` file or a magnet
    /// link, with `peers` to try besides those its trackers give.
    pub(super) fn start_bt(&mut self, source: BtSource, peers: Vec<SocketAddr>, now: Instant) {
        let (label, torrent, hash, mut extra, trackers) = match source {
            BtSource::Torrent(bytes) => match Torrent::from_file_bytes(&bytes) {
                Ok(t) => {
                    let trackers = t.trackers.clone();
                    (
                        names::escape(&t.name),
                        Some(t.clone()),
                        t.info_hash,
                        Vec::new(),
                        trackers,
                    )
                }
                Err(e) => {
                    return self.notify(Event::DownloadFailed {
                        label: "the torrent".into(),
                        why: e.to_string(),
                    })
                }
            },
            BtSource::Magnet(link) => match crate::bt::magnet::Magnet::parse(&link) {
                Ok(m) => {
                    let label = m
                        .name
                        .as_deref()
                        .map_or_else(|| hex(&m.info_hash[..8]), names::escape);
                    let pe = m.peers.iter().filter_map(|p| p.parse().ok()).collect();
                    (label, None, m.info_hash, pe, m.trackers)
                }
                Err(e) => {
                    return self.notify(Event::DownloadFailed {
                        label: "the magnet link".into(),
                        why: e.to_string(),
                    })
                }
            },
        };
        if self.bt.iter().any(|(_, d)| d.info_hash == hash) {
            return;
        }
        if self.downloads.len() + self.bt.len() >= MAX_DOWNLOADS {
            return self.notify(Event::DownloadFailed {
                label,
                why: format!("at most {MAX_DOWNLOADS} downloads at once"),
            });
        }
        info!(
            "BitTorrent download started: {label} (v2 info hash {})",
            hex(&hash)
        );
        let mut d = BtDownload::new(label, hash, now);
        extra.extend(peers);
        d.peers.add(&extra, now);
        d.trackers = Self::bt_trackers(&trackers, now);
        let dk = self.bt.insert(d);
        if let Some(t) = torrent {
            self.bt_set_torrent(dk, t);
        }
        self.bt_connect(now);
    }

    /// The torrent of download `dk` is known: open its working file.
    fn bt_set_torrent(&mut self, dk: usize, t: Torrent) {
        let d = &mut self.bt[dk];
        let meta = FileMeta {
            name: t.name.clone(),
            size: t.layout.size,
            chunk_size: t.layout.piece_len as u32,
            chunks: vec![t.pieces_root; t.layout.pieces() as usize],
            sha256: t.info_hash,
        };
        let size = t.layout.size;
        // The project's chunk hashes only when we share: otherwise no
        // frontend can share the download (headless shares only with
        // --seed; the interactive client always seeds).
        d.set_torrent(t, self.cfg.seed);
        match self.storage.create(&meta) {
            Ok(created) => {
                let mut part = created.part;
                if let Err(e) = part.reserve(size) {
                    part.discard();
                    d.fail(format!("cannot reserve {size} bytes: {e}"));
                    return;
                }
                d.part = Some(part);
                d.meta = Some(meta);
            }
            Err(e) => d.fail(e.to_string()),
        }
    }

    /// Opens connections to the peers BitTorrent downloads know of.
    pub(super) fn bt_connect(&mut self, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        let plan: Vec<(usize, SocketAddr)> = self
            .bt
            .iter()
            .filter(|(_, d)| !d.is_finished())
            .flat_map(|(dk, d)| {
                let room = MAX_CONNS_PER_DOWNLOAD.saturating_sub(d.peers.connected());
                d.peers
                    .connectable(now)
                    .into_iter()
                    .take(room)
                    .map(move |addr| (dk, addr))
            })
            .collect();
        let timeout = self.cfg.request_timeout;
        for (dk, addr) in plan {
            let id = self.open_conn(addr, now, |id| {
                Kind::BtFetch(BtFetch::new(id, dk, addr, now, timeout))
            });
            self.bt[dk].peers.connecting(addr, id);
        }
    }

    pub(super) fn bt_connected(&mut self, id: ConnId, now: Instant) {
        let Some(Conn {
            kind: Kind::BtFetch(f),
            ..
        }) = self.conns.get_mut(&id)
        else {
            return;
        };
        let Some(d) = self.bt.get_mut(f.download) else {
            return;
        };
        info!("BitTorrent peer used for {}: {}", d.display_name(), f.addr);
        d.last_connected = now;
        f.on_connected(d, self.peer_id, now);
        self.act(Action::Drive(id));
    }

    pub(super) fn bt_io(&mut self, id: ConnId, stream: &mut dyn Stream, now: Instant) {
        let Some(Conn {
            kind: Kind::BtFetch(f),
            ..
        }) = self.conns.get_mut(&id)
        else {
            return;
        };
        if !f.connected {
            return;
        }
        let (dk, addr) = (f.download, f.addr);
        let mut report = BtReport::default();
        let result = match self.bt.get_mut(dk) {
            Some(d) => {
                f.refill(d, now);
                f.drive(stream, d, now, TURN_BUDGET, &mut report)
            }
            None => Err(ConnEnd::Finished),
        };
        let mut end = match result {
            Ok(Flow::Idle) => None,
            Ok(Flow::Again) => {
                self.act(Action::Drive(id));
                None
            }
            Err(end) => Some(end),
        };
        let Some(d) = self.bt.get_mut(dk) else {
            self.close(id, ConnEnd::Finished, now);
            return;
        };
        if report.answered {
            d.peers.up(addr);
        }
        if report.verified > 0 {
            d.last_progress = now;
            // Hash the file in order while the network is the bottleneck,
            // so little is left for the end.
            if let Err(e) = d.advance_whole(&mut self.whole_buf, WHOLE_BUDGET) {
                d.fail(format!("cannot read the .part file: {e}"));
            }
        }
        for &(piece, alone) in &report.bad {
            let from = if alone { "from" } else { "partly from" };
            let name = d.display_name();
            warn!("piece {piece} of {name} {from} {addr} failed its hash: fetching it again");
            if alone && d.peers.strike(addr) && end.is_none() {
                end = Some(ConnEnd::BadPeer("sent pieces that failed their hash twice"));
            }
        }
        let mut accepted = false;
        if let Some(bytes) = report.info {
            d.info_conn = None;
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            if hash != d.info_hash || bytes.len() > MAX_INFO_LEN {
                end = end.or(Some(ConnEnd::BadPeer("sent metadata that is not the torrent")));
            } else {
                match Torrent::from_info_bytes(&bytes) {
                    Ok(t) => {
                        info!(
                            "metadata verified for {}: {} bytes",
                            names::escape(&t.name),
                            t.layout.size
                        );
                        d.last_progress = now;
                        self.bt_set_torrent(dk, t);
                        accepted = true;
                    }
                    Err(e) => self.bt[dk].fail(format!("the torrent cannot be downloaded: {e}")),
                }
            }
        }
        if report.layer_done {
            info!("piece layer verified for {}", self.bt[dk].display_name());
            self.bt[dk].last_progress = now;
        }
        if let Some(end) = end {
            self.close(id, end, now);
        }
        if self.bt[dk].is_complete() && !self.bt[dk].is_finished() {
            self.bt_finish(dk, now);
        }
        // New work for the others: the layer or the torrent became known,
        // or bad blocks are missing again.
        if report.layer_done || !report.bad.is_empty() || accepted {
            self.bt_kick(dk);
        }
        self.bt_end_if_finished(dk, now);
    }

    /// Asks for a turn for every connected fetch of BitTorrent download
    /// `dk` (new work may be there).
    fn bt_kick(&mut self, dk: usize) {
        self.drive_where(|k| matches!(k, Kind::BtFetch(f) if f.download == dk && f.connected));
    }

    /// Every piece is verified: compute the whole file's SHA-256 (and the
    /// native metadata, so the file can be shared), then put it in place.
    fn bt_finish(&mut self, dk: usize, _now: Instant) {
        let d = &mut self.bt[dk];
        // What the download did not hash yet as pieces came in.
        if let Err(e) = d.advance_whole(&mut self.whole_buf, u64::MAX) {
            return d.fail(format!("cannot read the .part file: {e}"));
        }
        let name = d.torrent.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let size = d.torrent.as_ref().map_or(0, |t| t.layout.size);
        let native = match d.whole.take().map(|b| b.finish(&name, size)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => return d.fail(e.to_string()),
            None => return d.fail("the file's hash was lost".into()),
        };
        let (Some(part), Some(meta)) = (d.part.as_mut(), d.meta.as_ref()) else {
            return;
        };
        match part.finish(&meta.name) {
            Ok(path) => {
                d.phase = BtPhase::Done;
                self.notify(Event::DownloadDone { meta: native, path });
            }
            Err(storage::FinishError::Exists) => d.fail("a file of that name appeared meanwhile".into()),
            Err(storage::FinishError::Io(e)) => d.fail(format!("cannot put the file in place: {e}")),
        }
    }

    /// Removes a finished (done or failed) download, closing its
    /// connections.
    fn bt_end_if_finished(&mut self, dk: usize, now: Instant) {
        if !self.bt.get(dk).is_some_and(BtDownload::is_finished) {
            return;
        }
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::BtFetch(f) if f.download == dk))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id, ConnEnd::Finished, now);
        }
        let d = self.bt.remove(dk);
        let name = d.display_name();
        let secs = now.duration_since(d.started).as_secs_f64().max(1e-6);
        match d.phase {
            BtPhase::Done => {
                let size = d.torrent.as_ref().map_or(0, |t| t.layout.size);
                info!(
                    "download verified: {name} ({size} bytes in {secs:.2} s, {:.1} MB/s)",
                    size as f64 / secs / 1e6
                );
            }
            BtPhase::Failed(why) => {
                warn!("download failed: {name}: {why}");
                self.notify(Event::DownloadFailed { label: name, why });
            }
            BtPhase::Running => {}
        }
    }

    /// A BitTorrent connection ended (its state is already out of the
    /// connection table).
    pub(super) fn bt_closed(&mut self, mut f: BtFetch, end: &ConnEnd, now: Instant) {
        let Some(d) = self.bt.get_mut(f.download) else {
            return;
        };
        f.abandon(d);
        let verdict = d.peers.ended(f.addr, end, now);
        let name = d.display_name();
        match (verdict, end) {
            (_, ConnEnd::Finished) => {}
            (conn_end::Verdict::Retry, _) => info!("peer left {name}: {}", f.addr),
            (conn_end::Verdict::Ban, _) => warn!("peer dropped for {name}: {}: {end}", f.addr),
            (conn_end::Verdict::BackOff, _) => warn!("peer lost for {name}: {}: {end}", f.addr),
        }
        self.bt_kick(f.download);
    }

    /// BitTorrent downloads' upkeep: connections to open, and giving up
    /// after the wait with no peer.
    pub(super) fn bt_upkeep(&mut self, now: Instant) {
        let keys: Vec<usize> = self.bt.iter().map(|(k, _)| k).collect();
        for dk in keys {
            let d = &mut self.bt[dk];
            let connected = d.peers.connected();
            if connected > 0 {
                d.last_connected = now;
                d.waiting_told = false;
            }
            let waited = now.duration_since(d.last_connected);
            let starved = now.duration_since(d.last_progress);
            // With no tracker to name new peers, a download whose every
            // peer was dropped has nothing left to wait for.
            if d.trackers.is_empty() && !d.peers.is_empty() && d.peers.usable() == 0 {
                d.fail("every peer that had it was dropped (bad data)".into());
            }
            if let Some(limit) = self.cfg.give_up_after {
                if connected == 0 && waited >= limit {
                    d.fail(format!("no peer has it (waited {} s)", waited.as_secs()));
                } else if starved >= limit {
                    d.fail(format!("no peer delivered any of it for {} s", starved.as_secs()));
                }
            }
            if connected == 0 && waited >= WAITING_AFTER && !d.waiting_told && !d.is_finished() {
                d.waiting_told = true;
                let msg = format!(
                    "waiting for peers: none that has {} is reachable",
                    d.display_name()
                );
                warn!("{msg}");
                self.notify(Event::Warning(msg));
            }
            self.bt_end_if_finished(dk, now);
        }
        self.bt_connect(now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::bt_download::tests::{download, torrent};
    use super::*;
    use crate::bt::merkle::BLOCK;
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
        Handshake::new(crate::bt::torrent::short_hash(&d.info_hash), [2; 20]).encode(&mut pipe.input);
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
            d.next_block(&[0xff], &[]),
            Some((0, 0, BLOCK as u32)),
            "the end game"
        );
        d.unask(0);
        wire::encode(&Msg::Choke, &mut pipe.input);
        f.drive(&mut pipe, &mut d, now, 1 << 20, &mut report).unwrap();
        assert_eq!(
            d.next_block(&[0xff], &[]),
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
