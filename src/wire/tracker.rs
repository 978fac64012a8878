//! Tracker datagrams: what a client asks ([`Request`]) and what the tracker
//! answers ([`Reply`]).
//!
//! Layout of a request: `MAGIC | VERSION | tx: u32 BE | conn id: 8 bytes |
//! bincode(RequestBody)`; of a reply: `MAGIC | VERSION | tx: u32 BE |
//! bincode(ReplyBody)`. The transaction id and connection id sit at fixed
//! offsets so the tracker can read them even when the body is malformed (and
//! then answer with an error only if the id is valid).
//!
//! Invariants: no datagram exceeds [`MAX_DATAGRAM`]; lists that would not
//! fit are paged (a reply carries the cursor of its next page), and senders
//! pack them with [`Page`]. A `Connect` request is never smaller than
//! its `Connected` reply, so the handshake cannot amplify spoofed traffic.

use super::codec::{self, EncodeError};
use super::{check_prefix, put_prefix, DecodeError, FileId, MAX_DATAGRAM, PREFIX_LEN};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// A connection id: proof, issued by the tracker's handshake, that the
/// sender really receives datagrams at its source address.
pub type ConnId = [u8; 8];

/// Bytes of fixed header before a request body: prefix, tx, conn id.
pub const REQUEST_HEADER_LEN: usize = PREFIX_LEN + 4 + 8;
/// Bytes of fixed header before a reply body: prefix, tx.
pub const REPLY_HEADER_LEN: usize = PREFIX_LEN + 4;
/// Memory one decoded datagram may claim.
const DATAGRAM_ALLOC: usize = MAX_DATAGRAM * codec::ALLOC_PER_WIRE_BYTE;
/// Padding in a `Connect` request that keeps it at least as large as the
/// reply it causes.
pub const CONNECT_PADDING: usize = 16;
/// Most peer addresses in one `Peers` reply (fits any mix of IPv4 and IPv6).
pub const MAX_PEERS_PER_REPLY: usize = 50;
/// Most files one peer may announce (the tracker refuses more; the client
/// shares no more).
pub const MAX_FILES_PER_PEER: usize = 4096;
/// Most files one `Found` page lists (a name is rarely shared; the client
/// needs only to tell one match from several).
pub const MAX_FOUND_PER_REPLY: usize = 16;
/// Fewest hex digits an id prefix query may have: shorter ones match too
/// much of a large tracker to be worth a reply.
pub const MIN_PREFIX_DIGITS: u8 = 8;
/// Bytes of a client's secret (see [`RequestBody::Register`]).
pub const SECRET_LEN: usize = 16;

/// A client's secret: random, kept next to its config, presented at every
/// registration. It tells the same client restarting (it may take its
/// username back at once) from another client wanting that name.
pub type ClientSecret = [u8; SECRET_LEN];

/// Longest `message` in an error reply.
pub const MAX_ERROR_MESSAGE: usize = 160;
/// Room for the list items of one paged datagram: the datagram minus its
/// header, the variant tag, the list length and the next-page cursor.
pub const PAGE_BUDGET: usize = MAX_DATAGRAM - REQUEST_HEADER_LEN - 1 - 3 - 6;

/// What a peer does on the network.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Shares files (and may also download).
    Seeder,
    /// Only downloads.
    Leecher,
}

/// A file a peer announces. It carries what the file id is made of, not the
/// id: the tracker derives the id ([`FileEntry::id`]), so nobody can put
/// their file under another file's id (squat it with another name or size).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    /// One digest of every hash in the metadata (see [`crate::meta`]).
    pub root: [u8; 32],
    /// False for a peer that holds only some chunks (it can still serve
    /// them); such peers are listed by `GetPeers` but not counted as seeders.
    pub complete: bool,
}

impl FileEntry {
    /// The id of the file this entry describes.
    pub fn id(&self) -> FileId {
        file_id(&self.name, self.size, self.chunk_size, &self.root)
    }
}

/// A file id: SHA-256 over a domain tag, the size, the chunk size, the
/// name (length-prefixed, so no two inputs share an encoding) and the root.
/// The metadata fetched from peers is checked against it, and the tracker
/// recomputes it from an announce, so an id vouches for the name and size
/// shown beside it as much as for every chunk.
pub fn file_id(name: &str, size: u64, chunk_size: u32, root: &[u8; 32]) -> FileId {
    let mut h = Sha256::new();
    h.update(b"pytorrent file id\0");
    h.update(size.to_be_bytes());
    h.update(chunk_size.to_be_bytes());
    h.update((name.len() as u64).to_be_bytes());
    h.update(name.as_bytes());
    h.update(root);
    h.finalize().into()
}

/// One row of the peer list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub username: String,
    /// The peer's address as the tracker sees it, with its TCP serving port.
    pub addr: SocketAddr,
    pub role: Role,
    /// Number of files the peer announced.
    pub files: u32,
    /// True for the peer that asked.
    pub is_you: bool,
}

/// One row of the file list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub id: FileId,
    pub name: String,
    pub size: u64,
    /// Peers holding every chunk.
    pub seeders: u32,
    /// Peers holding some chunks.
    pub partial: u32,
}

/// Why the tracker refused a request.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The sender has not registered (or the tracker forgot it): register again.
    NotRegistered,
    BadUsername,
    BadFileName,
    /// The tracker is at its peer limit.
    TrackerFull,
    /// The peer or the tracker is at its file limit.
    TooManyFiles,
    /// Another online peer has this username.
    UsernameTaken,
    /// The sender's address (an IPv4 address or an IPv6 /64) holds its
    /// share of peers or files already.
    HostLimit,
    /// The datagram could not be decoded.
    BadRequest,
    /// The datagram is in another protocol version.
    UnsupportedVersion,
}

/// A client's request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Handshake: asks for a connection id. Needs no valid id itself.
    Connect {
        padding: [u8; CONNECT_PADDING],
    },
    /// Joins the network (again): username, TCP serving port, role, and
    /// the client's secret, which proves a name in use is ours.
    Register {
        username: String,
        port: u16,
        role: Role,
        secret: ClientSecret,
    },
    /// Adds files (as many datagrams as it takes).
    Announce {
        files: Vec<FileEntry>,
    },
    /// Removes files.
    Withdraw {
        ids: Vec<FileId>,
    },
    /// A page of the peer list, from `cursor` (0 for the first page).
    /// Lists and finds need no registration; `member` says the sender
    /// believes it is registered, and then a tracker that does not know it
    /// answers `NotRegistered` (it restarted: register and announce, then
    /// read a view that counts our files).
    ListPeers {
        cursor: u32,
        member: bool,
    },
    /// A page of the file list, from `cursor` (0 for the first page).
    ListFiles {
        cursor: u32,
        member: bool,
    },
    /// A shuffled sample of the peers holding a file.
    GetPeers {
        id: FileId,
    },
    KeepAlive,
    ChangeUsername {
        username: String,
    },
    /// Leaves the network; the tracker forgets the peer and its files.
    Disconnect,
    /// The files matching `query`, by an index (not a walk of the list),
    /// from `cursor` (0 for the first page). Answered with `Found`.
    FindFiles {
        query: FileQuery,
        cursor: FindCursor,
        member: bool,
    },
}

/// Where a page of a find starts: a position in the tracker's index,
/// opaque to the client, which echoes the `next` of the previous page
/// (the default for the first). Ordered: the next page's cursor is always
/// greater, so a client can refuse a tracker that loops.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindCursor(pub u64, pub u32);

/// What a [`RequestBody::FindFiles`] looks for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FileQuery {
    /// Files with exactly this name.
    Name(String),
    /// Files whose id, written in hex, starts with the first `digits`
    /// digits of `id` (from [`MIN_PREFIX_DIGITS`] to 64; the rest of `id`
    /// is ignored).
    IdPrefix { id: FileId, digits: u8 },
}

impl FileQuery {
    /// Whether `file` matches (the tracker's index narrows, this decides).
    pub fn matches(&self, id: &FileId, name: &str) -> bool {
        match self {
            FileQuery::Name(n) => n == name,
            FileQuery::IdPrefix { id: want, digits } => {
                let digits = usize::from(*digits).min(64);
                let whole = digits / 2;
                id[..whole] == want[..whole] && (digits % 2 == 0 || id[whole] >> 4 == want[whole] >> 4)
            }
        }
    }
}

impl RequestBody {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestBody::Connect { .. } => "connect",
            RequestBody::Register { .. } => "register",
            RequestBody::Announce { .. } => "announce",
            RequestBody::Withdraw { .. } => "withdraw",
            RequestBody::ListPeers { .. } => "list peers",
            RequestBody::ListFiles { .. } => "list files",
            RequestBody::GetPeers { .. } => "get peers",
            RequestBody::KeepAlive => "keep-alive",
            RequestBody::ChangeUsername { .. } => "change username",
            RequestBody::Disconnect => "disconnect",
            RequestBody::FindFiles { .. } => "find files",
        }
    }
}

/// The tracker's answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// The connection id to put in every later request, valid for at
    /// least `valid_secs` seconds.
    Connected {
        conn: ConnId,
        valid_secs: u32,
    },
    /// Registered; send a keep-alive every `interval_secs` seconds.
    Registered {
        interval_secs: u32,
    },
    Announced {
        accepted: u32,
    },
    Withdrawn {
        removed: u32,
    },
    PeerList {
        peers: Vec<PeerInfo>,
        next: Option<u32>,
    },
    FileList {
        files: Vec<FileInfo>,
        next: Option<u32>,
    },
    /// TCP addresses of peers holding `id` (at most [`MAX_PEERS_PER_REPLY`]).
    Peers {
        id: FileId,
        peers: Vec<SocketAddr>,
    },
    /// Keep-alive, username change or disconnect done.
    Ok,
    Error {
        code: ErrorCode,
        message: String,
    },
    /// A page of the files a `FindFiles` matched (at most
    /// [`MAX_FOUND_PER_REPLY`]), and the cursor of the next page.
    Found {
        files: Vec<FileInfo>,
        next: Option<FindCursor>,
    },
}

/// A request datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Transaction id, echoed in the reply.
    pub tx: u32,
    /// Connection id from the handshake (zeros for `Connect`).
    pub conn: ConnId,
    pub body: RequestBody,
}

/// A reply datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub tx: u32,
    pub body: ReplyBody,
}

/// Appends one request datagram to `out`.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    put_prefix(out);
    out.extend_from_slice(&req.tx.to_be_bytes());
    out.extend_from_slice(&req.conn);
    codec::encode(&req.body, out, MAX_DATAGRAM - REQUEST_HEADER_LEN).inspect_err(|_| out.truncate(start))
}

/// Appends one reply datagram to `out`.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    put_prefix(out);
    out.extend_from_slice(&reply.tx.to_be_bytes());
    codec::encode(&reply.body, out, MAX_DATAGRAM - REPLY_HEADER_LEN).inspect_err(|_| out.truncate(start))
}

/// Reads the fixed header of a request: its transaction and connection ids.
/// Works even when the body is malformed.
pub fn peek_request_header(buf: &[u8]) -> Result<(u32, ConnId), DecodeError> {
    check_size(buf)?;
    check_prefix(buf)?;
    let head = buf
        .get(PREFIX_LEN..REQUEST_HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    let tx = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let mut conn = [0u8; 8];
    conn.copy_from_slice(&head[4..]);
    Ok((tx, conn))
}

/// Decodes one whole request datagram.
pub fn decode_request(buf: &[u8]) -> Result<Request, DecodeError> {
    let (tx, conn) = peek_request_header(buf)?;
    let body = codec::decode_exact::<RequestBody, DATAGRAM_ALLOC>(&buf[REQUEST_HEADER_LEN..], MAX_DATAGRAM)?;
    Ok(Request { tx, conn, body })
}

/// Decodes one whole reply datagram.
pub fn decode_reply(buf: &[u8]) -> Result<Reply, DecodeError> {
    check_size(buf)?;
    check_prefix(buf)?;
    let head = buf
        .get(PREFIX_LEN..REPLY_HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    let tx = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let body = codec::decode_exact::<ReplyBody, DATAGRAM_ALLOC>(&buf[REPLY_HEADER_LEN..], MAX_DATAGRAM)?;
    Ok(Reply { tx, body })
}

fn check_size(buf: &[u8]) -> Result<(), DecodeError> {
    if buf.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            max: MAX_DATAGRAM,
        });
    }
    Ok(())
}

/// A list being packed into one page of a datagram: items are added while
/// they fit in [`PAGE_BUDGET`]; the first that does not is handed back.
#[derive(Debug)]
pub struct Page<T> {
    items: Vec<T>,
    used: usize,
}

impl<T: Serialize> Page<T> {
    pub fn new() -> Page<T> {
        Page {
            items: Vec::new(),
            used: 0,
        }
    }

    /// Adds `item` if it fits; otherwise gives it back (the page is full).
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        let len = codec::encoded_len(&item);
        if self.used + len > PAGE_BUDGET {
            return Err(item);
        }
        self.used += len;
        self.items.push(item);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

impl<T: Serialize> Default for Page<T> {
    fn default() -> Self {
        Page::new()
    }
}

/// An error reply body with its message cut to [`MAX_ERROR_MESSAGE`] bytes.
pub fn error_reply(code: ErrorCode, message: &str) -> ReplyBody {
    let mut end = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    ReplyBody::Error {
        code,
        message: message[..end].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::VERSION;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    fn longest_name() -> String {
        "é".repeat(127) + "x" // 255 bytes
    }

    fn v6(port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfe80, 1, 2, 3, 4, 5, 6, 7),
            port,
            0,
            0,
        ))
    }

    pub(crate) fn sample_requests() -> Vec<Request> {
        let entry = |i: u8| FileEntry {
            name: format!("file {i}.txt"),
            size: u64::from(i) << 33,
            chunk_size: 1 << 20,
            root: [i; 32],
            complete: i.is_multiple_of(2),
        };
        let bodies = vec![
            RequestBody::Connect {
                padding: [0; CONNECT_PADDING],
            },
            RequestBody::Register {
                username: "alice".into(),
                port: 6881,
                role: Role::Seeder,
                secret: [0; SECRET_LEN],
            },
            RequestBody::Register {
                username: "ø".repeat(32),
                port: u16::MAX,
                role: Role::Leecher,
                secret: [0xff; SECRET_LEN],
            },
            RequestBody::Announce {
                files: (0..4).map(entry).collect(),
            },
            RequestBody::Announce { files: vec![] },
            RequestBody::Withdraw {
                ids: vec![[1; 32], [2; 32]],
            },
            RequestBody::ListPeers {
                cursor: 0,
                member: true,
            },
            RequestBody::ListFiles {
                cursor: u32::MAX,
                member: true,
            },
            RequestBody::GetPeers { id: [9; 32] },
            RequestBody::KeepAlive,
            RequestBody::ChangeUsername {
                username: "bob".into(),
            },
            RequestBody::Disconnect,
            RequestBody::FindFiles {
                query: FileQuery::Name(longest_name()),
                cursor: FindCursor(u64::MAX, u32::MAX),
                member: true,
            },
            RequestBody::FindFiles {
                query: FileQuery::IdPrefix {
                    id: [0xab; 32],
                    digits: 64,
                },
                cursor: FindCursor::default(),
                member: false,
            },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Request {
                tx: i as u32 * 0x0101_0101,
                conn: [i as u8; 8],
                body,
            })
            .collect()
    }

    pub(crate) fn sample_replies() -> Vec<Reply> {
        let bodies = vec![
            ReplyBody::Connected {
                conn: [7; 8],
                valid_secs: 120,
            },
            ReplyBody::Registered { interval_secs: 30 },
            ReplyBody::Announced { accepted: 3 },
            ReplyBody::Withdrawn { removed: 0 },
            ReplyBody::PeerList {
                peers: vec![
                    PeerInfo {
                        username: "alice".into(),
                        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 6881)),
                        role: Role::Seeder,
                        files: 12,
                        is_you: true,
                    },
                    PeerInfo {
                        username: "bob".into(),
                        addr: v6(1),
                        role: Role::Leecher,
                        files: 0,
                        is_you: false,
                    },
                ],
                next: Some(17),
            },
            ReplyBody::FileList {
                files: vec![FileInfo {
                    id: [3; 32],
                    name: longest_name(),
                    size: u64::MAX,
                    seeders: 2,
                    partial: 1,
                }],
                next: None,
            },
            ReplyBody::Peers {
                id: [4; 32],
                peers: (0..MAX_PEERS_PER_REPLY as u16)
                    .map(|p| v6(p.wrapping_mul(1000)))
                    .collect(),
            },
            ReplyBody::Ok,
            error_reply(ErrorCode::BadUsername, "username must be 1-32 characters"),
            ReplyBody::Found {
                files: vec![],
                next: None,
            },
            ReplyBody::Found {
                files: (0..2)
                    .map(|i| FileInfo {
                        id: [i; 32],
                        name: "a.bin".into(),
                        size: 1,
                        seeders: 1,
                        partial: 0,
                    })
                    .collect(),
                next: Some(FindCursor(7, 8)),
            },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Reply {
                tx: i as u32 + 1,
                body,
            })
            .collect()
    }

    #[test]
    fn every_request_round_trips() {
        for req in sample_requests() {
            let mut buf = Vec::new();
            encode_request(&req, &mut buf).unwrap();
            assert!(buf.len() <= MAX_DATAGRAM);
            assert_eq!(decode_request(&buf), Ok(req.clone()));
            assert_eq!(peek_request_header(&buf), Ok((req.tx, req.conn)));
        }
    }

    #[test]
    fn every_reply_round_trips() {
        for reply in sample_replies() {
            let mut buf = Vec::new();
            encode_reply(&reply, &mut buf).unwrap();
            assert!(buf.len() <= MAX_DATAGRAM, "{} bytes", buf.len());
            assert_eq!(decode_reply(&buf), Ok(reply));
        }
    }

    #[test]
    fn every_prefix_is_truncated_never_a_panic() {
        let mut all = Vec::new();
        for req in sample_requests() {
            let mut buf = Vec::new();
            encode_request(&req, &mut buf).unwrap();
            all.push((buf, true));
        }
        for reply in sample_replies() {
            let mut buf = Vec::new();
            encode_reply(&reply, &mut buf).unwrap();
            all.push((buf, false));
        }
        for (buf, is_request) in all {
            for cut in 0..buf.len() {
                let r = if is_request {
                    decode_request(&buf[..cut]).err()
                } else {
                    decode_reply(&buf[..cut]).err()
                };
                assert_eq!(r, Some(DecodeError::Truncated), "cut at {cut} of {}", buf.len());
            }
        }
    }

    #[test]
    fn connect_never_amplifies() {
        let mut req = Vec::new();
        encode_request(
            &Request {
                tx: u32::MAX,
                conn: [0; 8],
                body: RequestBody::Connect {
                    padding: [0; CONNECT_PADDING],
                },
            },
            &mut req,
        )
        .unwrap();
        let mut reply = Vec::new();
        encode_reply(
            &Reply {
                tx: u32::MAX,
                body: ReplyBody::Connected {
                    conn: [0xff; 8],
                    valid_secs: u32::MAX,
                },
            },
            &mut reply,
        )
        .unwrap();
        assert!(reply.len() <= req.len(), "{} > {}", reply.len(), req.len());
    }

    #[test]
    fn oversized_and_foreign_datagrams_are_refused() {
        let mut buf = Vec::new();
        encode_request(&sample_requests()[1], &mut buf).unwrap();
        let mut big = buf.clone();
        big.resize(MAX_DATAGRAM + 1, 0);
        assert!(matches!(decode_request(&big), Err(DecodeError::TooLarge { .. })));
        let mut other_version = buf.clone();
        other_version[4] = VERSION + 1;
        assert_eq!(
            decode_request(&other_version),
            Err(DecodeError::UnsupportedVersion(VERSION + 1))
        );
        let mut bad_magic = buf.clone();
        bad_magic[0] = b'X';
        assert_eq!(decode_request(&bad_magic), Err(DecodeError::BadMagic));
        let mut unknown_variant = buf;
        unknown_variant[REQUEST_HEADER_LEN] = 200;
        assert!(matches!(
            decode_request(&unknown_variant),
            Err(DecodeError::Malformed(_))
        ));
    }

    fn fill<T: Serialize>(items: Vec<T>) -> usize {
        let mut page = Page::new();
        for item in items {
            if page.try_push(item).is_err() {
                break;
            }
        }
        page.len()
    }

    #[test]
    fn full_pages_fit_in_a_datagram() {
        // Worst case rows: longest names, IPv6 addresses, largest numbers.
        let files: Vec<FileInfo> = (0..50)
            .map(|i| FileInfo {
                id: [i; 32],
                name: longest_name(),
                size: u64::MAX,
                seeders: u32::MAX,
                partial: u32::MAX,
            })
            .collect();
        let n = fill(files.clone());
        assert!(n >= 1);
        let reply = Reply {
            tx: u32::MAX,
            body: ReplyBody::FileList {
                files: files[..n].to_vec(),
                next: Some(u32::MAX),
            },
        };
        let mut buf = Vec::new();
        encode_reply(&reply, &mut buf).unwrap();
        assert!(buf.len() <= MAX_DATAGRAM);
        assert_eq!(decode_reply(&buf), Ok(reply));

        let peers: Vec<PeerInfo> = (0..100)
            .map(|i| PeerInfo {
                username: "ø".repeat(32),
                addr: v6(i),
                role: Role::Leecher,
                files: u32::MAX,
                is_you: false,
            })
            .collect();
        let n = fill(peers.clone());
        assert!(n >= 10, "only {n} peers per page");
        let reply = Reply {
            tx: u32::MAX,
            body: ReplyBody::PeerList {
                peers: peers[..n].to_vec(),
                next: Some(u32::MAX),
            },
        };
        buf.clear();
        encode_reply(&reply, &mut buf).unwrap();
        assert_eq!(decode_reply(&buf), Ok(reply));

        let entries: Vec<FileEntry> = (0..50)
            .map(|i| FileEntry {
                name: longest_name(),
                size: u64::MAX,
                chunk_size: u32::MAX,
                root: [i; 32],
                complete: true,
            })
            .collect();
        let n = fill(entries.clone());
        let req = Request {
            tx: u32::MAX,
            conn: [0xff; 8],
            body: RequestBody::Announce {
                files: entries[..n].to_vec(),
            },
        };
        buf.clear();
        encode_request(&req, &mut buf).unwrap();
        assert_eq!(decode_request(&buf), Ok(req));

        // The densest lists: the most addresses, the shortest peer rows.
        let reply = Reply {
            tx: 0,
            body: ReplyBody::Peers {
                id: [0; 32],
                peers: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 1)); MAX_PEERS_PER_REPLY],
            },
        };
        buf.clear();
        encode_reply(&reply, &mut buf).unwrap();
        assert_eq!(decode_reply(&buf), Ok(reply));
        let short: Vec<PeerInfo> = (0..200)
            .map(|_| PeerInfo {
                username: String::new(),
                addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                role: Role::Seeder,
                files: 0,
                is_you: false,
            })
            .collect();
        let n = fill(short.clone());
        let reply = Reply {
            tx: 0,
            body: ReplyBody::PeerList {
                peers: short[..n].to_vec(),
                next: None,
            },
        };
        buf.clear();
        encode_reply(&reply, &mut buf).unwrap();
        assert_eq!(decode_reply(&buf), Ok(reply));
    }

    #[test]
    fn id_prefixes_match_by_hex_digit() {
        let mut id = [0u8; 32];
        id[..5].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89]);
        let q = |digits: u8, want: [u8; 5]| {
            let mut w = [0xee; 32];
            w[..5].copy_from_slice(&want);
            FileQuery::IdPrefix { id: w, digits }.matches(&id, "")
        };
        assert!(q(8, [0x01, 0x23, 0x45, 0x67, 0x00]));
        assert!(q(9, [0x01, 0x23, 0x45, 0x67, 0x8f]));
        assert!(!q(9, [0x01, 0x23, 0x45, 0x67, 0x9f]));
        assert!(!q(8, [0x01, 0x23, 0x45, 0x66, 0x89]));
        assert!(FileQuery::IdPrefix { id, digits: 64 }.matches(&id, ""));
        assert!(FileQuery::Name("a".into()).matches(&id, "a"));
        assert!(!FileQuery::Name("a".into()).matches(&id, "A"));
    }

    #[test]
    fn error_messages_are_cut_on_a_char_boundary() {
        match error_reply(ErrorCode::BadRequest, &"é".repeat(200)) {
            ReplyBody::Error { message, .. } => {
                assert!(message.len() <= MAX_ERROR_MESSAGE && message.len() >= MAX_ERROR_MESSAGE - 1)
            }
            other => panic!("{other:?}"),
        }
    }
}
