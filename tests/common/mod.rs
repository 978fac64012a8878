//! Shared helpers for the integration tests: start the real binaries on
//! loopback port 0, read the address they actually bound, and talk to the
//! tracker with the real wire codec. Every process is killed on drop, so a
//! failing test never leaves one behind.
#![allow(dead_code)] // each test file uses its own subset

use pytorrent::wire::tracker::{
    decode_reply, encode_request, ConnId, Reply, ReplyBody, Request, RequestBody, Role, CONNECT_PADDING,
};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `pytorrent-tracker`.
pub struct TrackerProc {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines the tracker printed on stdout after its banner.
    pub stdout: mpsc::Receiver<String>,
}

impl TrackerProc {
    /// Starts the tracker on 127.0.0.1:0 with `extra` flags.
    pub fn start(extra: &[&str]) -> TrackerProc {
        TrackerProc::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(bind: &str, extra: &[&str]) -> TrackerProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pytorrent-tracker"))
            .args(["--bind", bind])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pytorrent-tracker");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let banner = rx.recv_timeout(Duration::from_secs(10)).expect("tracker banner");
        let addr = banner
            .split_whitespace()
            .skip_while(|w| *w != "udp")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in banner: {banner}"));
        TrackerProc {
            child,
            addr,
            stdout: rx,
        }
    }

    /// Sends `signal` and waits (up to 10 s) for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        wait_with_timeout(&mut self.child, Duration::from_secs(10)).expect("tracker did not exit")
    }
}

impl Drop for TrackerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A test client speaking the tracker protocol from its own UDP socket.
pub struct Client {
    pub sock: UdpSocket,
    pub tracker: SocketAddr,
    pub conn: ConnId,
    tx: u32,
}

impl Client {
    /// A client that has done the handshake (not yet registered).
    pub fn connect(tracker: SocketAddr) -> Client {
        let bind = if tracker.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let sock = UdpSocket::bind(bind).unwrap();
        let mut c = Client {
            sock,
            tracker,
            conn: [0; 8],
            tx: 1,
        };
        c.handshake();
        c
    }

    pub fn handshake(&mut self) {
        match self.request(RequestBody::Connect {
            padding: [0; CONNECT_PADDING],
        }) {
            ReplyBody::Connected { conn, valid_secs } => {
                assert!(valid_secs >= 1);
                self.conn = conn;
            }
            other => panic!("connect: {other:?}"),
        }
    }

    /// Connects and registers as `name` serving on TCP `port`.
    pub fn registered(tracker: SocketAddr, name: &str, port: u16) -> Client {
        let mut c = Client::connect(tracker);
        let reply = c.request(RequestBody::Register {
            username: name.into(),
            port,
            role: Role::Seeder,
        });
        assert!(matches!(reply, ReplyBody::Registered { .. }), "{reply:?}");
        c
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Encodes a request with this client's connection id.
    pub fn encode(&mut self, body: RequestBody) -> (u32, Vec<u8>) {
        self.tx += 1;
        let mut buf = Vec::new();
        encode_request(
            &Request {
                tx: self.tx,
                conn: self.conn,
                body,
            },
            &mut buf,
        )
        .unwrap();
        (self.tx, buf)
    }

    /// Sends raw bytes and returns the raw reply, if one comes within `wait`.
    pub fn send_raw(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.sock.send_to(bytes, self.tracker).unwrap();
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends a request and returns its reply, retrying a lost datagram.
    pub fn request(&mut self, body: RequestBody) -> ReplyBody {
        self.try_request(body, Duration::from_secs(2))
            .expect("no reply from tracker")
    }

    /// Sends a request; `None` if no matching reply came within `wait`.
    pub fn try_request(&mut self, body: RequestBody, wait: Duration) -> Option<ReplyBody> {
        let (tx, bytes) = self.encode(body);
        self.sock.send_to(&bytes, self.tracker).unwrap();
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 2048];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            assert!(n <= pytorrent::wire::MAX_DATAGRAM, "reply of {n} bytes");
            let Reply { tx: got, body } = decode_reply(&buf[..n]).expect("tracker reply decodes");
            if got == tx {
                return Some(body);
            }
        }
    }
}
