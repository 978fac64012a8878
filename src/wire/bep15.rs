//! BitTorrent's UDP tracker protocol (BEP 15), spoken beside the project's
//! own protocol on the same socket. Pure: bytes in, typed messages out, and
//! back; no I/O.
//!
//! Layouts (every integer big-endian, offsets fixed):
//!
//! | message | layout |
//! |---|---|
//! | connect request (16 B) | protocol id `0x41727101980` u64, action 0 u32, tx u32 |
//! | connect response (16 B) | action 0, tx, connection id u64 |
//! | announce request (98 B + BEP 41 options) | conn id u64, action 1, tx, info hash 20 B, peer id 20 B, downloaded u64, left u64, uploaded u64, event u32, ip u32, key u32, num_want i32, port u16 |
//! | announce response | action 1, tx, interval u32, leechers u32, seeders u32, peers: 6 B (IPv4) or 18 B (IPv6) each |
//! | scrape request | conn id u64, action 2, tx, 1 to [`MAX_SCRAPE_HASHES`] info hashes |
//! | scrape response | action 2, tx, per hash: seeders u32, completed u32, leechers u32 |
//! | error response | action 3, tx, message (the rest of the datagram) |
//!
//! Invariants:
//! - Decoding never panics and never allocates more than the input implies:
//!   a scrape's hash list is bounded by [`MAX_SCRAPE_HASHES`], an announce
//!   response's peers by the datagram.
//! - Whatever decodes re-encodes to a datagram that decodes to the same
//!   message (the fuzz target `decode_bep15` checks it). BEP 41 options after
//!   an announce's 98 bytes are tolerated and not kept, so they are the one
//!   part of a request that does not survive the round trip.
//! - A request error is typed by what the server may do next:
//!   [`RequestError::Sendable`] carries the connection and transaction ids, so
//!   the server can answer with an error once it has checked the connection
//!   id; [`RequestError::Unsendable`] must be dropped silently.
//! - A connect response is exactly as long as a connect request, so the
//!   handshake cannot amplify spoofed traffic.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// The magic constant a connect request starts with.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// A connect request and its response are both 16 bytes.
pub const CONNECT_LEN: usize = 16;
/// An announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// Fixed part of a scrape request before its info hashes.
pub const SCRAPE_HEADER_LEN: usize = 16;
/// Most info hashes in one scrape: what fits a 1,500-byte Ethernet datagram
/// (16 + 74 × 20 = 1,496 bytes), the limit other trackers use as well.
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Largest BEP 15 request this tracker reads: a full scrape. Longer
/// datagrams are only tolerated as announces (options past the limit are
/// cut by the receive buffer and ignored).
pub const MAX_REQUEST_LEN: usize = SCRAPE_HEADER_LEN + MAX_SCRAPE_HASHES * 20;
/// Header of every response: action and transaction id.
pub const RESPONSE_HEADER_LEN: usize = 8;
/// Fixed part of an announce response before its peers.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Longest message this crate puts in an error response.
pub const MAX_ERROR_MESSAGE: usize = 120;
/// Largest response this crate encodes: it must cross any IPv6 path.
pub const MAX_RESPONSE_LEN: usize = super::MAX_DATAGRAM;

/// A torrent's identity: the SHA-1 of its info dictionary (v1), or the first
/// 20 bytes of a v2 or project file id.
pub type InfoHash = [u8; 20];

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// What an announce reports about the peer's download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    None,
    Completed,
    Started,
    Stopped,
}

impl Event {
    fn from_u32(v: u32) -> Option<Event> {
        Some(match v {
            0 => Event::None,
            1 => Event::Completed,
            2 => Event::Started,
            3 => Event::Stopped,
            _ => return None,
        })
    }

    fn to_u32(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub conn: u64,
    pub tx: u32,
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    pub downloaded: u64,
    /// Bytes still missing; 0 makes the peer a seeder.
    pub left: u64,
    pub uploaded: u64,
    pub event: Event,
    /// The address the client claims; the tracker ignores it (it would let
    /// anyone list a victim's address in a swarm).
    pub ip: u32,
    pub key: u32,
    /// Peers wanted; negative means "the tracker's default".
    pub num_want: i32,
    pub port: u16,
}

impl AnnounceRequest {
    /// An announce with zero counters, peer id, ip and key, asking for the
    /// tracker's default number of peers.
    pub fn new(conn: u64, tx: u32, info_hash: InfoHash, port: u16, left: u64, event: Event) -> Self {
        AnnounceRequest {
            conn,
            tx,
            info_hash,
            peer_id: [0; 20],
            downloaded: 0,
            left,
            uploaded: 0,
            event,
            ip: 0,
            key: 0,
            num_want: -1,
            port,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub conn: u64,
    pub tx: u32,
    /// 1 to [`MAX_SCRAPE_HASHES`] hashes.
    pub info_hashes: Vec<InfoHash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect { tx: u32 },
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

impl Request {
    pub fn tx(&self) -> u32 {
        match self {
            Request::Connect { tx } => *tx,
            Request::Announce(a) => a.tx,
            Request::Scrape(s) => s.tx,
        }
    }
}

/// The peers of an announce response, in the asker's address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    V4(Vec<SocketAddrV4>),
    V6(Vec<SocketAddrV6>),
}

impl Peers {
    pub fn len(&self) -> usize {
        match self {
            Peers::V4(p) => p.len(),
            Peers::V6(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    pub tx: u32,
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    pub peers: Peers,
}

/// One torrent's counts in a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub seeders: u32,
    pub completed: u32,
    pub leechers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect { tx: u32, conn: u64 },
    Announce(AnnounceResponse),
    Scrape { tx: u32, stats: Vec<ScrapeStats> },
    Error { tx: u32, message: String },
}

/// Why a request could not be decoded, typed by what the server does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The header is readable: the server may answer with an error response
    /// carrying `tx`, once `conn` is proven to be one it issued.
    Sendable { conn: u64, tx: u32, why: &'static str },
    /// Not even a header: drop silently.
    Unsendable(&'static str),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Sendable { why, .. } => write!(f, "bad BEP 15 request: {why}"),
            RequestError::Unsendable(why) => write!(f, "not a BEP 15 request: {why}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why a response could not be decoded (the client side: tests, tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError(pub &'static str);

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad BEP 15 response: {}", self.0)
    }
}

impl std::error::Error for ResponseError {}

/// Reads fixed-size big-endian fields; every read is bounds-checked, so a
/// short input is an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let out = self.buf.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(out)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_be_bytes)
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
}

/// True when `buf` may be a BEP 15 connect request: the cheap test the
/// server's demultiplexer and the tests use.
pub fn is_connect(buf: &[u8]) -> bool {
    buf.get(..8).is_some_and(|b| b == PROTOCOL_ID.to_be_bytes())
}

/// Decodes one request datagram.
pub fn decode_request(buf: &[u8]) -> Result<Request, RequestError> {
    let mut r = Reader::new(buf);
    let (Some(conn), Some(action), Some(tx)) = (r.u64(), r.u32(), r.u32()) else {
        return Err(RequestError::Unsendable("shorter than a request header"));
    };
    let sendable = |why| RequestError::Sendable { conn, tx, why };
    match action {
        ACTION_CONNECT => {
            if conn != PROTOCOL_ID {
                // Without the magic this is noise, not a client to answer.
                return Err(RequestError::Unsendable("connect without the protocol id"));
            }
            Ok(Request::Connect { tx })
        }
        ACTION_ANNOUNCE => {
            let (
                Some(info_hash),
                Some(peer_id),
                Some(downloaded),
                Some(left),
                Some(uploaded),
                Some(event),
                Some(ip),
                Some(key),
                Some(num_want),
                Some(port),
            ) = (
                r.bytes(),
                r.bytes(),
                r.u64(),
                r.u64(),
                r.u64(),
                r.u32(),
                r.u32(),
                r.u32(),
                r.bytes::<4>(),
                r.u16(),
            )
            else {
                return Err(sendable("announce shorter than 98 bytes"));
            };
            let event = Event::from_u32(event).ok_or_else(|| sendable("unknown announce event"))?;
            // Whatever follows is BEP 41 options (URL data, NOPs, an end
            // marker); the tracker serves one path, so they are skipped.
            Ok(Request::Announce(AnnounceRequest {
                conn,
                tx,
                info_hash,
                peer_id,
                downloaded,
                left,
                uploaded,
                event,
                ip,
                key,
                num_want: i32::from_be_bytes(num_want),
                port,
            }))
        }
        ACTION_SCRAPE => {
            let hashes = r.rest();
            if hashes.is_empty() {
                return Err(sendable("scrape without an info hash"));
            }
            if !hashes.len().is_multiple_of(20) {
                return Err(sendable("scrape hashes are not a multiple of 20 bytes"));
            }
            if hashes.len() / 20 > MAX_SCRAPE_HASHES {
                return Err(sendable("scrape of more than 74 info hashes"));
            }
            let info_hashes = hashes
                .chunks_exact(20)
                .map(|h| {
                    let mut out = [0u8; 20];
                    out.copy_from_slice(h);
                    out
                })
                .collect();
            Ok(Request::Scrape(ScrapeRequest {
                conn,
                tx,
                info_hashes,
            }))
        }
        _ => Err(sendable("unknown action")),
    }
}

/// Appends `req`'s encoding (what a client sends; tests and the fuzz target
/// use it). A scrape's hash count is the caller's to keep within limits.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    match req {
        Request::Connect { tx } => {
            out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
            out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
            out.extend_from_slice(&tx.to_be_bytes());
        }
        Request::Announce(a) => {
            out.extend_from_slice(&a.conn.to_be_bytes());
            out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
            out.extend_from_slice(&a.tx.to_be_bytes());
            out.extend_from_slice(&a.info_hash);
            out.extend_from_slice(&a.peer_id);
            out.extend_from_slice(&a.downloaded.to_be_bytes());
            out.extend_from_slice(&a.left.to_be_bytes());
            out.extend_from_slice(&a.uploaded.to_be_bytes());
            out.extend_from_slice(&a.event.to_u32().to_be_bytes());
            out.extend_from_slice(&a.ip.to_be_bytes());
            out.extend_from_slice(&a.key.to_be_bytes());
            out.extend_from_slice(&a.num_want.to_be_bytes());
            out.extend_from_slice(&a.port.to_be_bytes());
        }
        Request::Scrape(s) => {
            out.extend_from_slice(&s.conn.to_be_bytes());
            out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
            out.extend_from_slice(&s.tx.to_be_bytes());
            for h in &s.info_hashes {
                out.extend_from_slice(h);
            }
        }
    }
}

/// Appends the header of an announce response; the caller then appends
/// peers with [`put_peer_v4`] or [`put_peer_v6`]. The server builds its
/// responses this way, straight into its send buffer.
pub fn put_announce_header(tx: u32, interval: u32, leechers: u32, seeders: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&tx.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
}

/// Appends one compact IPv4 peer (6 bytes).
pub fn put_peer_v4(peer: SocketAddrV4, out: &mut Vec<u8>) {
    out.extend_from_slice(&peer.ip().octets());
    out.extend_from_slice(&peer.port().to_be_bytes());
}

/// Appends one compact IPv6 peer (18 bytes).
pub fn put_peer_v6(peer: SocketAddrV6, out: &mut Vec<u8>) {
    out.extend_from_slice(&peer.ip().octets());
    out.extend_from_slice(&peer.port().to_be_bytes());
}

/// Appends the header of a scrape response; then one [`put_scrape_stats`]
/// per hash asked, in the order asked.
pub fn put_scrape_header(tx: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&tx.to_be_bytes());
}

pub fn put_scrape_stats(s: ScrapeStats, out: &mut Vec<u8>) {
    out.extend_from_slice(&s.seeders.to_be_bytes());
    out.extend_from_slice(&s.completed.to_be_bytes());
    out.extend_from_slice(&s.leechers.to_be_bytes());
}

/// Appends a connect response (16 bytes, as long as the request).
pub fn put_connect_response(tx: u32, conn: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&tx.to_be_bytes());
    out.extend_from_slice(&conn.to_be_bytes());
}

/// Appends an error response; the message is cut to [`MAX_ERROR_MESSAGE`]
/// bytes (at a character boundary).
pub fn put_error(tx: u32, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&tx.to_be_bytes());
    let mut end = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&message.as_bytes()[..end]);
}

/// Appends `resp`'s encoding. Peers of an announce response must fit
/// [`MAX_RESPONSE_LEN`]; the encoder does not cut them.
pub fn encode_response(resp: &Response, out: &mut Vec<u8>) {
    match resp {
        Response::Connect { tx, conn } => put_connect_response(*tx, *conn, out),
        Response::Announce(a) => {
            put_announce_header(a.tx, a.interval, a.leechers, a.seeders, out);
            match &a.peers {
                Peers::V4(peers) => peers.iter().for_each(|&p| put_peer_v4(p, out)),
                Peers::V6(peers) => peers.iter().for_each(|&p| put_peer_v6(p, out)),
            }
        }
        Response::Scrape { tx, stats } => {
            put_scrape_header(*tx, out);
            stats.iter().for_each(|&s| put_scrape_stats(s, out));
        }
        // Written whole (unlike `put_error`), so what decodes re-encodes
        // to the same bytes; decoding bounds it by the datagram limit.
        Response::Error { tx, message } => {
            out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
            out.extend_from_slice(&tx.to_be_bytes());
            out.extend_from_slice(message.as_bytes());
        }
    }
}

/// Decodes one response. BEP 15 does not say which family an announce
/// response's peers are in: it is the family of the address the request was
/// sent to, so the caller says (`ipv6`).
pub fn decode_response(buf: &[u8], ipv6: bool) -> Result<Response, ResponseError> {
    if buf.len() > MAX_RESPONSE_LEN {
        return Err(ResponseError("longer than the datagram limit"));
    }
    let mut r = Reader::new(buf);
    let (Some(action), Some(tx)) = (r.u32(), r.u32()) else {
        return Err(ResponseError("shorter than a response header"));
    };
    match action {
        ACTION_CONNECT => match (r.u64(), r.rest().is_empty()) {
            (Some(conn), true) => Ok(Response::Connect { tx, conn }),
            _ => Err(ResponseError("connect response is not 16 bytes")),
        },
        ACTION_ANNOUNCE => {
            let (Some(interval), Some(leechers), Some(seeders)) = (r.u32(), r.u32(), r.u32()) else {
                return Err(ResponseError("announce response shorter than 20 bytes"));
            };
            let rest = r.rest();
            let peers = if ipv6 {
                if !rest.len().is_multiple_of(18) {
                    return Err(ResponseError("IPv6 peers are not a multiple of 18 bytes"));
                }
                Peers::V6(
                    rest.chunks_exact(18)
                        .map(|c| {
                            let mut ip = [0u8; 16];
                            ip.copy_from_slice(&c[..16]);
                            let port = u16::from_be_bytes([c[16], c[17]]);
                            SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)
                        })
                        .collect(),
                )
            } else {
                if !rest.len().is_multiple_of(6) {
                    return Err(ResponseError("IPv4 peers are not a multiple of 6 bytes"));
                }
                Peers::V4(
                    rest.chunks_exact(6)
                        .map(|c| {
                            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
                            SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]]))
                        })
                        .collect(),
                )
            };
            Ok(Response::Announce(AnnounceResponse {
                tx,
                interval,
                leechers,
                seeders,
                peers,
            }))
        }
        ACTION_SCRAPE => {
            let rest = r.rest();
            if !rest.len().is_multiple_of(12) {
                return Err(ResponseError("scrape stats are not a multiple of 12 bytes"));
            }
            let stats = rest
                .chunks_exact(12)
                .map(|c| {
                    let word = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    ScrapeStats {
                        seeders: word(0),
                        completed: word(4),
                        leechers: word(8),
                    }
                })
                .collect();
            Ok(Response::Scrape { tx, stats })
        }
        ACTION_ERROR => {
            let message = std::str::from_utf8(r.rest())
                .map_err(|_| ResponseError("error message is not UTF-8"))?
                .to_owned();
            Ok(Response::Error { tx, message })
        }
        _ => Err(ResponseError("unknown action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> AnnounceRequest {
        AnnounceRequest {
            conn: 0x8123_4567_89ab_cdef,
            tx: 77,
            info_hash: [0xab; 20],
            peer_id: *b"-LT2080-abcdefghijkl",
            downloaded: 1 << 40,
            left: 12345,
            uploaded: 3,
            event: Event::Started,
            ip: 0x0a00_0001,
            key: 0xdead_beef,
            num_want: -1,
            port: 6881,
        }
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Connect { tx: 0xffff_ffff },
            Request::Announce(announce()),
            Request::Announce(AnnounceRequest {
                event: Event::Stopped,
                num_want: 200,
                ..announce()
            }),
            Request::Scrape(ScrapeRequest {
                conn: 9,
                tx: 1,
                info_hashes: vec![[1; 20]],
            }),
            Request::Scrape(ScrapeRequest {
                conn: 9,
                tx: 2,
                info_hashes: (0..MAX_SCRAPE_HASHES as u8).map(|i| [i; 20]).collect(),
            }),
        ]
    }

    fn responses() -> Vec<(Response, bool)> {
        vec![
            (Response::Connect { tx: 5, conn: 1 << 63 }, false),
            (
                Response::Announce(AnnounceResponse {
                    tx: 6,
                    interval: 1800,
                    leechers: 2,
                    seeders: 1,
                    peers: Peers::V4(vec![
                        "10.1.2.3:6881".parse().unwrap(),
                        "1.1.1.1:1".parse().unwrap(),
                    ]),
                }),
                false,
            ),
            (
                Response::Announce(AnnounceResponse {
                    tx: 7,
                    interval: 300,
                    leechers: 0,
                    seeders: 0,
                    peers: Peers::V6(vec!["[2001:db8::1]:51413".parse().unwrap()]),
                }),
                true,
            ),
            (
                Response::Announce(AnnounceResponse {
                    tx: 7,
                    interval: 300,
                    leechers: 0,
                    seeders: 0,
                    peers: Peers::V4(vec![]),
                }),
                false,
            ),
            (
                Response::Scrape {
                    tx: 8,
                    stats: vec![
                        ScrapeStats {
                            seeders: 1,
                            completed: 2,
                            leechers: 3,
                        },
                        ScrapeStats::default(),
                    ],
                },
                false,
            ),
            (
                Response::Error {
                    tx: 9,
                    message: "info hash not allowed".into(),
                },
                false,
            ),
        ]
    }

    #[test]
    fn requests_round_trip_with_fixed_sizes() {
        for req in requests() {
            let mut buf = Vec::new();
            encode_request(&req, &mut buf);
            let want_len = match &req {
                Request::Connect { .. } => CONNECT_LEN,
                Request::Announce(_) => ANNOUNCE_LEN,
                Request::Scrape(s) => SCRAPE_HEADER_LEN + 20 * s.info_hashes.len(),
            };
            assert_eq!(buf.len(), want_len, "{req:?}");
            assert!(buf.len() <= MAX_REQUEST_LEN);
            assert_eq!(decode_request(&buf), Ok(req.clone()));
            assert_eq!(decode_request(&buf).unwrap().tx(), req.tx());
        }
    }

    #[test]
    fn responses_round_trip() {
        for (resp, ipv6) in responses() {
            let mut buf = Vec::new();
            encode_response(&resp, &mut buf);
            assert_eq!(decode_response(&buf, ipv6), Ok(resp));
        }
    }

    /// Every message split in two: the first half alone never decodes to a
    /// message of the same kind (a datagram is all or nothing), and never
    /// panics; the two halves joined decode to the original.
    #[test]
    fn split_inputs_are_rejected_and_joined_inputs_decode() {
        for req in requests() {
            let mut buf = Vec::new();
            encode_request(&req, &mut buf);
            for cut in 0..buf.len() {
                let (a, b) = buf.split_at(cut);
                match decode_request(a) {
                    Err(_) => {}
                    // A scrape cut at a hash boundary is a shorter scrape.
                    Ok(Request::Scrape(s)) => assert!(cut % 20 == 16 && s.info_hashes.len() < 74),
                    Ok(other) => panic!("prefix of {cut} bytes decoded: {other:?}"),
                }
                let joined = [a, b].concat();
                assert_eq!(decode_request(&joined), Ok(req.clone()));
            }
        }
        for (resp, ipv6) in responses() {
            let mut buf = Vec::new();
            encode_response(&resp, &mut buf);
            for cut in 0..buf.len() {
                let _ = decode_response(&buf[..cut], ipv6);
                assert_eq!(
                    decode_response(&[&buf[..cut], &buf[cut..]].concat(), ipv6),
                    Ok(resp.clone())
                );
            }
        }
    }

    #[test]
    fn header_errors_are_typed_by_what_the_server_may_do() {
        let mut buf = Vec::new();
        encode_request(&Request::Announce(announce()), &mut buf);
        // Short announce: readable header, so sendable with its ids.
        assert_eq!(
            decode_request(&buf[..50]),
            Err(RequestError::Sendable {
                conn: 0x8123_4567_89ab_cdef,
                tx: 77,
                why: "announce shorter than 98 bytes"
            })
        );
        // No header at all: unsendable.
        assert!(matches!(
            decode_request(&buf[..15]),
            Err(RequestError::Unsendable(_))
        ));
        assert!(matches!(decode_request(&[]), Err(RequestError::Unsendable(_))));
        // Unknown event and unknown action: sendable.
        let mut bad_event = buf.clone();
        bad_event[83] = 9;
        assert!(matches!(
            decode_request(&bad_event),
            Err(RequestError::Sendable { tx: 77, .. })
        ));
        let mut bad_action = buf.clone();
        bad_action[11] = 4;
        assert!(matches!(
            decode_request(&bad_action),
            Err(RequestError::Sendable { .. })
        ));
        // Connect without the protocol id: noise.
        let mut connect = Vec::new();
        encode_request(&Request::Connect { tx: 1 }, &mut connect);
        connect[0] ^= 1;
        assert!(matches!(
            decode_request(&connect),
            Err(RequestError::Unsendable(_))
        ));
        // Scrape: empty, ragged, too many.
        let scrape = |n: usize, extra: usize| {
            let mut b = Vec::new();
            encode_request(
                &Request::Scrape(ScrapeRequest {
                    conn: 1,
                    tx: 2,
                    info_hashes: vec![[3; 20]; n],
                }),
                &mut b,
            );
            b.resize(b.len() + extra, 0);
            decode_request(&b)
        };
        assert!(matches!(scrape(0, 0), Err(RequestError::Sendable { .. })));
        assert!(matches!(scrape(1, 7), Err(RequestError::Sendable { .. })));
        assert!(matches!(scrape(75, 0), Err(RequestError::Sendable { .. })));
        assert!(scrape(74, 0).is_ok());
        assert!(RequestError::Unsendable("x").to_string().contains("not a BEP 15"));
    }

    #[test]
    fn bep41_options_are_tolerated() {
        let mut buf = Vec::new();
        encode_request(&Request::Announce(announce()), &mut buf);
        // URL data "/announce", then end of options, as libtorrent sends.
        buf.extend_from_slice(&[2, 9]);
        buf.extend_from_slice(b"/announce");
        buf.push(0);
        assert_eq!(decode_request(&buf), Ok(Request::Announce(announce())));
        // Malformed options (a length past the end) are tolerated too.
        buf.extend_from_slice(&[2, 200, 1]);
        assert_eq!(decode_request(&buf), Ok(Request::Announce(announce())));
    }

    #[test]
    fn connect_is_recognised_and_not_project_traffic() {
        let mut buf = Vec::new();
        encode_request(&Request::Connect { tx: 3 }, &mut buf);
        assert!(is_connect(&buf));
        assert!(!buf.starts_with(&super::super::MAGIC));
        assert!(!is_connect(b"PYT\x01\x01rest of it"));
        let mut resp = Vec::new();
        put_connect_response(3, 1, &mut resp);
        assert_eq!(resp.len(), buf.len(), "no amplification in the handshake");
    }

    #[test]
    fn response_errors() {
        assert!(decode_response(&[0, 0, 0, 1], false).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 0, 0, 0, 1, 0], false).is_err());
        let mut buf = Vec::new();
        put_announce_header(1, 2, 3, 4, &mut buf);
        buf.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert!(decode_response(&buf, false).is_err());
        assert!(decode_response(&buf, true).is_err());
        assert!(decode_response(&[0, 0, 0, 3, 0, 0, 0, 0, 0xff], false).is_err());
        assert!(decode_response(&[0, 0, 0, 4, 0, 0, 0, 0], false).is_err());
        assert!(decode_response(&vec![0; MAX_RESPONSE_LEN + 1], false).is_err());
        let mut long = Vec::new();
        put_error(1, &"é".repeat(100), &mut long);
        let Ok(Response::Error { message, .. }) = decode_response(&long, false) else {
            panic!("error response")
        };
        assert!(message.len() <= MAX_ERROR_MESSAGE && message.chars().all(|c| c == 'é'));
    }
}
