//! Tracker URLs and HTTP trackers (BEP 3, BEP 23 compact peers, BEP 7
//! `peers6`), the pure parts: parsing `udp://` and `http://` tracker URLs
//! (host names allowed: resolving them is the engine's job), the bytes of
//! an announce request, and the decoding of the reply. No I/O: the reactor
//! writes [`encode_announce`]'s bytes on a non-blocking socket and feeds
//! what it reads to a [`ReplyReader`] until it yields a reply or an error.
//!
//! Bounds: a URL of at most [`MAX_URL_LEN`] bytes; a reply's head (status
//! line and headers) of at most [`MAX_HEAD_LEN`] bytes and [`MAX_HEADERS`]
//! headers; a body of at most [`MAX_BODY_LEN`] bytes (chunked or not);
//! at most [`MAX_PEERS`] peers kept. A reply is complete when its
//! `Content-Length` bytes or its last chunk arrived, or at end of stream
//! when it has neither. Text from the tracker (a failure reason, a
//! warning) is kept as given, at most [`MAX_TEXT_LEN`] bytes: print it
//! through `names::escape`. Redirects are not followed.

use super::bencode::{self, Value};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest tracker URL accepted.
pub const MAX_URL_LEN: usize = 1024;
/// Longest status line plus headers of a reply.
pub const MAX_HEAD_LEN: usize = 8 << 10;
/// Most headers in a reply.
pub const MAX_HEADERS: usize = 64;
/// Longest reply body (a compact reply of 200 peers is about 1.3 KiB).
pub const MAX_BODY_LEN: usize = 256 << 10;
/// Most peers kept from one reply.
pub const MAX_PEERS: usize = 1000;
/// Longest failure reason or warning kept.
pub const MAX_TEXT_LEN: usize = 512;

/// The kinds of tracker the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// BEP 15.
    Udp,
    /// BEP 3.
    Http,
}

/// Where the host part of a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name (letters, digits, `-` and `.`; resolved by the caller).
    Name(String),
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUrl {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
    /// Path and query (`/announce?x=y`), `/` at least.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    TooLong,
    /// Neither `udp://` nor `http://` (`https://` among them: no TLS).
    Scheme,
    BadHost,
    BadPort,
    /// User info, a fragment, spaces or control characters.
    BadChars,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::TooLong => "tracker URL too long",
            UrlError::Scheme => "not a udp:// or http:// tracker (https:// is not supported)",
            UrlError::BadHost => "malformed host in the tracker URL",
            UrlError::BadPort => "malformed or missing port in the tracker URL",
            UrlError::BadChars => "the tracker URL has user info, a fragment, spaces or control characters",
        })
    }
}

impl std::error::Error for UrlError {}

impl TrackerUrl {
    pub fn parse(url: &str) -> Result<TrackerUrl, UrlError> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) || url.contains(['#', '@']) {
            return Err(UrlError::BadChars);
        }
        let (scheme, rest) = if let Some(r) = url.strip_prefix("udp://") {
            (Scheme::Udp, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else {
            return Err(UrlError::Scheme);
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(UrlError::BadHost)?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| UrlError::BadHost)?;
            (Host::Ip(IpAddr::V6(ip)), after)
        } else {
            let (name, after) = match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            (parse_host(name)?, after)
        };
        let port = match port.strip_prefix(':') {
            Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(UrlError::BadPort)?,
            None if port.is_empty() && scheme == Scheme::Http => 80,
            _ => return Err(UrlError::BadPort),
        };
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(TrackerUrl {
            scheme,
            host,
            port,
            path,
        })
    }
}

fn parse_host(name: &str) -> Result<Host, UrlError> {
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let ok_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    // All digits and dots but not an IPv4 address: a typo, not a name.
    if name.len() > 253
        || !name.split('.').all(ok_label)
        || name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(UrlError::BadHost);
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A regular announce.
    None,
    Started,
    Completed,
    Stopped,
}

/// What an announce tells the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The v1 info hash, or a v2 one truncated (BEP 52).
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: u32,
}

/// Appends the HTTP request of an announce to `url` (BEP 3 with
/// `compact=1`; `Connection: close`, so the reply's end is the stream's at
/// worst).
pub fn encode_announce(url: &TrackerUrl, a: &Announce, out: &mut Vec<u8>) {
    let mut target = url.path.clone();
    target.push(if target.contains('?') { '&' } else { '?' });
    target.push_str("info_hash=");
    url_encode(&a.info_hash, &mut target);
    target.push_str("&peer_id=");
    url_encode(&a.peer_id, &mut target);
    target.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}",
        a.port, a.uploaded, a.downloaded, a.left, a.numwant
    ));
    match a.event {
        Event::None => {}
        Event::Started => target.push_str("&event=started"),
        Event::Completed => target.push_str("&event=completed"),
        Event::Stopped => target.push_str("&event=stopped"),
    }
    let host = match &url.host {
        Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        Host::Ip(ip) => ip.to_string(),
        Host::Name(n) => n.clone(),
    };
    let host = if url.port == 80 {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    out.extend_from_slice(
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pytorrent/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
}

/// Percent-encoding of binary bytes: unreserved characters as they are.
fn url_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A tracker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `failure reason` (as given; escape it before printing).
    Failure(String),
    Peers(PeerList),
}

/// A successful announce reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerList {
    /// Seconds until the next announce.
    pub interval: u32,
    pub min_interval: Option<u32>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// IPv4 and IPv6 peers, compact or dictionary form, at most
    /// [`MAX_PEERS`] (port 0 dropped).
    pub peers: Vec<SocketAddr>,
    pub warning: Option<String>,
}

/// Why a reply is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not `HTTP/1.x NNN ...`, or malformed headers or chunks.
    Malformed,
    /// A status other than 200 (redirects are not followed).
    Status(u16),
    HeadTooLong,
    BodyTooLong,
    /// The stream ended before the reply did.
    Truncated,
    /// The body is not a tracker reply (bencode, or fields).
    BadBody,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed => write!(f, "malformed HTTP reply from the tracker"),
            HttpError::Status(code) => write!(f, "the tracker answered HTTP status {code}"),
            HttpError::HeadTooLong => write!(f, "the tracker's HTTP headers are too long"),
            HttpError::BodyTooLong => write!(f, "the tracker's reply is larger than {MAX_BODY_LEN} bytes"),
            HttpError::Truncated => write!(f, "the tracker closed the connection mid-reply"),
            HttpError::BadBody => write!(f, "the tracker's reply is not a valid announce reply"),
        }
    }
}

impl std::error::Error for HttpError {}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Decodes a whole reply from `buf` (everything read so far): `Ok(None)`
/// while more bytes are needed; `eof` says the stream ended.
pub fn decode_reply(buf: &[u8], eof: bool) -> Result<Option<Reply>, HttpError> {
    let Some(head_len) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() > MAX_HEAD_LEN {
            return Err(HttpError::HeadTooLong);
        }
        return if eof { Err(HttpError::Truncated) } else { Ok(None) };
    };
    if head_len > MAX_HEAD_LEN {
        return Err(HttpError::HeadTooLong);
    }
    let framing = parse_head(&buf[..head_len])?;
    let rest = &buf[head_len..];
    let body = match framing {
        Framing::Length(n) if n > MAX_BODY_LEN => return Err(HttpError::BodyTooLong),
        Framing::Length(n) if rest.len() >= n => rest[..n].to_vec(),
        Framing::Length(_) => return if eof { Err(HttpError::Truncated) } else { Ok(None) },
        Framing::Chunked => match dechunk(rest)? {
            Some(body) => body,
            None => return if eof { Err(HttpError::Truncated) } else { Ok(None) },
        },
        Framing::UntilClose if rest.len() > MAX_BODY_LEN => return Err(HttpError::BodyTooLong),
        Framing::UntilClose if eof => rest.to_vec(),
        Framing::UntilClose => return Ok(None),
    };
    parse_body(&body).map(Some)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status line and headers: how the body is framed, if the status is 200.
fn parse_head(head: &[u8]) -> Result<Framing, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Malformed)?;
    let mut lines = text.split("\r\n");
    let status = lines.next().ok_or(HttpError::Malformed)?;
    let mut parts = status.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed);
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed);
    }
    let code: u16 = code.parse().map_err(|_| HttpError::Malformed)?;
    if code != 200 {
        return Err(HttpError::Status(code));
    }
    let mut framing = Framing::UntilClose;
    let mut count = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(HttpError::HeadTooLong);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed);
            }
            let n = value.parse().map_err(|_| HttpError::Malformed)?;
            // Two different lengths: request smuggling's tell, refused.
            if matches!(framing, Framing::Length(m) if m != n) {
                return Err(HttpError::Malformed);
            }
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed);
            }
            // Chunked wins over a length (RFC 9112 section 6.3).
            framing = Framing::Chunked;
        }
    }
    Ok(framing)
}

/// A chunked body, once its last chunk and the blank line after its
/// trailers came; `Ok(None)` while incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            return if rest.len() > 64 {
                Err(HttpError::Malformed)
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| HttpError::Malformed)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        if size.is_empty() || size.len() > 8 {
            return Err(HttpError::Malformed);
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| HttpError::Malformed)?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers, then a blank line.
            return match find(rest, b"\r\n\r\n") {
                _ if rest.starts_with(b"\r\n") => Ok(Some(body)),
                Some(_) => Ok(Some(body)),
                None if rest.len() > MAX_HEAD_LEN => Err(HttpError::HeadTooLong),
                None => Ok(None),
            };
        }
        if body.len() + size > MAX_BODY_LEN {
            return Err(HttpError::BodyTooLong);
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The bencoded body of an announce reply.
fn parse_body(body: &[u8]) -> Result<Reply, HttpError> {
    // A reply that is not canonical bencode is refused, not guessed at.
    let Ok(Value::Dict(d)) = bencode::decode(body) else {
        return Err(HttpError::BadBody);
    };
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(MAX_TEXT_LEN)]).into_owned();
    if let Some(reason) = d.bytes(b"failure reason") {
        return Ok(Reply::Failure(text(reason)));
    }
    let count = |key: &[u8]| d.int(key).and_then(|n| u32::try_from(n).ok());
    let mut list = PeerList {
        interval: count(b"interval").ok_or(HttpError::BadBody)?,
        min_interval: count(b"min interval"),
        seeders: count(b"complete"),
        leechers: count(b"incomplete"),
        peers: Vec::new(),
        warning: d.bytes(b"warning message").map(text),
    };
    let mut add = |addr: SocketAddr| {
        if list.peers.len() < MAX_PEERS && addr.port() != 0 {
            list.peers.push(addr);
        }
    };
    match d.get(b"peers") {
        Some(Value::Bytes(b)) if b.len() % 6 == 0 => {
            for p in b.chunks_exact(6) {
                let ip = Ipv4Addr::new(p[0], p[1], p[2], p[3]);
                add(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([p[4], p[5]])));
            }
        }
        Some(Value::List(items)) => {
            for item in items {
                let Value::Dict(p) = item else { continue };
                let ip = p
                    .bytes(b"ip")
                    .and_then(|ip| std::str::from_utf8(ip).ok()?.parse::<IpAddr>().ok());
                let port = p.int(b"port").and_then(|n| u16::try_from(n).ok());
                if let (Some(ip), Some(port)) = (ip, port) {
                    add(SocketAddr::new(ip, port));
                }
            }
        }
        None => {}
        Some(_) => return Err(HttpError::BadBody),
    }
    match d.get(b"peers6") {
        Some(Value::Bytes(b)) if b.len() % 18 == 0 => {
            for p in b.chunks_exact(18) {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&p[..16]);
                add(SocketAddr::new(
                    IpAddr::V6(ip.into()),
                    u16::from_be_bytes([p[16], p[17]]),
                ));
            }
        }
        None => {}
        Some(_) => return Err(HttpError::BadBody),
    }
    Ok(Reply::Peers(list))
}

/// The reply side of one HTTP announce, for a reactor: bytes in as they
/// are read, a reply (or an error) out. Holds at most
/// `MAX_HEAD_LEN + MAX_BODY_LEN` plus chunk framing bytes.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
}

/// Chunk headers and line ends a chunked body may add to the bound.
const FRAMING_SLACK: usize = 16 << 10;

impl ReplyReader {
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Bytes read from the socket: `Ok(Some(reply))` once complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Reply>, HttpError> {
        if self.buf.len() + data.len() > MAX_HEAD_LEN + MAX_BODY_LEN + FRAMING_SLACK {
            return Err(HttpError::BodyTooLong);
        }
        self.buf.extend_from_slice(data);
        decode_reply(&self.buf, false)
    }

    /// The stream ended (read returned 0).
    pub fn end(&mut self) -> Result<Reply, HttpError> {
        decode_reply(&self.buf, true)?.ok_or(HttpError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_urls_parse_with_names_addresses_and_default_ports() {
        let u = TrackerUrl::parse("http://Tracker.Example.org/announce?passkey=ab%20c").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, Host::Name("tracker.example.org".into()));
        assert_eq!((u.port, u.path.as_str()), (80, "/announce?passkey=ab%20c"));
        let u = TrackerUrl::parse("udp://127.0.0.1:6969/announce").unwrap();
        assert_eq!(
            (u.scheme, u.host, u.port),
            (Scheme::Udp, Host::Ip([127, 0, 0, 1].into()), 6969)
        );
        let u = TrackerUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (u.host, u.port, u.path.as_str()),
            (Host::Ip("::1".parse().unwrap()), 8080, "/")
        );
        let u = TrackerUrl::parse("http://localhost:6969?x=1").unwrap();
        assert_eq!(
            (u.host, u.path.as_str()),
            (Host::Name("localhost".into()), "/?x=1")
        );
        for (bad, why) in [
            ("https://t.org/announce", UrlError::Scheme),
            ("wss://t.org", UrlError::Scheme),
            ("udp://t.org/announce", UrlError::BadPort),
            ("udp://t.org:0", UrlError::BadPort),
            ("http://t.org:65536/", UrlError::BadPort),
            ("http://t.org:/", UrlError::BadPort),
            ("http://t.org:+80/", UrlError::BadPort),
            ("http://user@t.org/", UrlError::BadChars),
            ("http://t.org/a#b", UrlError::BadChars),
            ("http://t.org/a b", UrlError::BadChars),
            ("http://t.org/\u{1b}[2J", UrlError::BadChars),
            ("http://-t.org/", UrlError::BadHost),
            ("http://t_o.org/", UrlError::BadHost),
            ("http://a..b/", UrlError::BadHost),
            ("http:///announce", UrlError::BadHost),
            ("http://1.2.3.400/", UrlError::BadHost),
            ("http://[::1/", UrlError::BadHost),
            ("http://[zz]:1/", UrlError::BadHost),
        ] {
            assert_eq!(TrackerUrl::parse(bad), Err(why), "{bad}");
        }
        let long = format!("http://t.org/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(TrackerUrl::parse(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn an_announce_is_a_bep3_get_with_binary_fields_escaped() {
        let url = TrackerUrl::parse("http://localhost:6969/announce?k=v").unwrap();
        let mut info_hash = [0u8; 20];
        info_hash[..4].copy_from_slice(b"a-~ ");
        let a = Announce {
            info_hash,
            peer_id: *b"-PY0100-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            numwant: 50,
        };
        let mut out = Vec::new();
        encode_announce(&url, &a, &mut out);
        let want = format!(
            "GET /announce?k=v&info_hash=a-~%20{}&peer_id=-PY0100-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3&compact=1&numwant=50&event=started HTTP/1.1\r\nHost: localhost:6969\r\nUser-Agent: pytorrent/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            "%00".repeat(16),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    fn http(head: &str, body: &[u8]) -> Vec<u8> {
        [head.as_bytes(), b"\r\n\r\n", body].concat()
    }

    fn body_with(peers: &[u8], peers6: &[u8]) -> Vec<u8> {
        let mut b = b"d8:completei5e10:incompletei2e8:intervali1800e5:peers".to_vec();
        b.extend_from_slice(format!("{}:", peers.len()).as_bytes());
        b.extend_from_slice(peers);
        b.extend_from_slice(format!("6:peers6{}:", peers6.len()).as_bytes());
        b.extend_from_slice(peers6);
        b.push(b'e');
        b
    }

    #[test]
    fn replies_decode_whole_and_split_at_every_byte() {
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[16..].copy_from_slice(&6882u16.to_be_bytes());
        let body = body_with(&[127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 0], &v6);
        let chunked_body = [
            format!("{:x}\r\n", 10).as_bytes(),
            &body[..10],
            b"\r\n",
            format!("{:X};ext=1\r\n", body.len() - 10).as_bytes(),
            &body[10..],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        let replies = [
            http(
                &format!("HTTP/1.1 200 OK\r\nContent-Length: {}", body.len()),
                &body,
            ),
            http(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nContent-Length: 3",
                &chunked_body,
            ),
            http("HTTP/1.0 200 OK\r\nServer: x", &body),
        ];
        let want = Reply::Peers(PeerList {
            interval: 1800,
            min_interval: None,
            seeders: Some(5),
            leechers: Some(2),
            // Port 0 dropped.
            peers: vec!["127.0.0.1:6881".parse().unwrap(), "[::1]:6882".parse().unwrap()],
            warning: None,
        });
        for (i, reply) in replies.iter().enumerate() {
            let until_close = i == 2;
            for cut in 0..=reply.len() {
                let mut r = ReplyReader::new();
                let first = r.feed(&reply[..cut]).unwrap();
                assert!(
                    first.is_none() || cut == reply.len(),
                    "reply {i} complete early at {cut}"
                );
                let got = match r.feed(&reply[cut..]).unwrap() {
                    Some(got) => got,
                    None if until_close => r.end().unwrap(),
                    None => panic!("reply {i} incomplete"),
                };
                assert_eq!(got, want, "reply {i} cut at {cut}");
                if cut < reply.len() && !until_close {
                    let mut short = ReplyReader::new();
                    assert_eq!(short.feed(&reply[..cut]), Ok(None));
                    assert_eq!(short.end(), Err(HttpError::Truncated), "reply {i} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn failures_dictionary_peers_and_bad_replies() {
        let failure = http("HTTP/1.1 200 OK", b"d14:failure reason12:unregisterede");
        assert_eq!(
            decode_reply(&failure, true),
            Ok(Some(Reply::Failure("unregistered".into())))
        );
        let dict = http(
            "HTTP/1.1 200 OK",
            b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti7ee\
              d2:ip11:example.org4:porti8eed2:ip3:::14:porti9eeee",
        );
        let Ok(Some(Reply::Peers(p))) = decode_reply(&dict, true) else {
            panic!()
        };
        assert_eq!(
            p.peers,
            ["127.0.0.1:7".parse().unwrap(), "[::1]:9".parse().unwrap()]
        );
        let many = body_with(&[1u8; 6 * (MAX_PEERS + 5)], b"");
        let Ok(Some(Reply::Peers(p))) = decode_reply(&http("HTTP/1.1 200 OK", &many), true) else {
            panic!()
        };
        assert_eq!(p.peers.len(), MAX_PEERS);
        for (bad, why) in [
            (
                http("HTTP/1.1 302 Found\r\nLocation: http://x/", b""),
                HttpError::Status(302),
            ),
            (http("HTTP/1.1 404 Not Found", b""), HttpError::Status(404)),
            (http("HTTP/2 200 OK", b""), HttpError::Malformed),
            (http("ICY 200 OK", b""), HttpError::Malformed),
            (http("HTTP/1.1 20 OK", b""), HttpError::Malformed),
            (http("HTTP/1.1 200 OK\r\nno colon", b""), HttpError::Malformed),
            (
                http("HTTP/1.1 200 OK\r\nContent-Length: -1", b""),
                HttpError::Malformed,
            ),
            (
                http("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2", b"ab"),
                HttpError::Malformed,
            ),
            (
                http("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip", b""),
                HttpError::Malformed,
            ),
            (
                http("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"zz\r\n"),
                HttpError::Malformed,
            ),
            (
                http("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"2\r\nabXY"),
                HttpError::Malformed,
            ),
            (
                http("HTTP/1.1 200 OK\r\nContent-Length: 999999999", b""),
                HttpError::BodyTooLong,
            ),
            (http("HTTP/1.1 200 OK", b"not bencode"), HttpError::BadBody),
            (http("HTTP/1.1 200 OK", b"d5:peers5:abcdee"), HttpError::BadBody),
            (http("HTTP/1.1 200 OK", b"d8:intervali-1ee"), HttpError::BadBody),
            (
                http("HTTP/1.1 200 OK", b"d8:intervali1e5:peersi1ee"),
                HttpError::BadBody,
            ),
        ] {
            assert_eq!(
                decode_reply(&bad, true),
                Err(why),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
        let endless = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &vec![b'a'; MAX_HEAD_LEN]].concat();
        assert_eq!(decode_reply(&endless, false), Err(HttpError::HeadTooLong));
        let mut r = ReplyReader::new();
        r.feed(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let big = vec![b'x'; MAX_BODY_LEN + 1];
        assert!(r.feed(&big).is_err());
    }

    #[test]
    fn the_fuzz_corpus_replies_decode() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/decode_http_reply");
        for name in ["compact", "chunked6", "failure", "dictpeers"] {
            let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
            let got = decode_reply(&bytes, true);
            assert!(matches!(got, Ok(Some(_))), "{name}: {got:?}");
        }
    }
}
