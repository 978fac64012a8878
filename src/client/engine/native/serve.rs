//! One inbound connection from a leecher: read its requests, send metadata
//! and chunks of the files we share.
//!
//! Invariants:
//! - Memory is two fixed buffers: requests in ([`IN_CAP`]) and one frame out
//!   ([`OUT_CAP`]), whatever the chunk size or the number of requests.
//! - At most [`MAX_PIPELINE`] requests wait; past that the connection is not
//!   read (back-pressure: the leecher's requests wait in the kernel).
//! - Requests name a file id; the file is looked up among the files we
//!   share and those we are downloading ([`Files`]), so a peer can never
//!   make us read a path of its choosing. Of a file still downloading only
//!   verified chunks are served.
//! - A leecher that asked `GetHave` about a file we are still downloading
//!   hears of every chunk we verify after that (`Have`, between frames; at
//!   most [`MAX_PENDING_HAVES`] waiting).
//! - Replies go out in request order, each request answered by its frames
//!   or by one `Refused`.
//! - Chunk bytes are read with positioned reads straight into the send
//!   buffer: no per-request allocation, no copy in between.

use crate::client::engine::library::{Library, Stat};
use crate::client::engine::transfer::bitmap;
use crate::client::engine::transfer::buf::Buf;
use crate::client::engine::transfer::conn_end::ConnEnd;
use crate::client::engine::Flow;
use crate::client::engine::MIN_PROGRESS;
use crate::meta::FileMeta;
use crate::wire::frame::{FRAME_PREFIX_LEN, MAX_HEADER};
use crate::wire::peer::{decode_peer_head, encode_peer_head, PeerMsg, Refusal, BLOCK_SIZE, MAX_PIPELINE};
use crate::wire::FileId;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Inbound buffer: several small requests (a request head is far below
/// this; a frame that does not fit is refused by the decoder first).
pub const IN_CAP: usize = FRAME_PREFIX_LEN + 2 + MAX_HEADER + 1024;
/// Outbound buffer: exactly one largest frame.
pub const OUT_CAP: usize = FRAME_PREFIX_LEN + 2 + MAX_HEADER + BLOCK_SIZE;

/// A file this peer can serve: shared whole, or still being downloaded.
pub struct Source<'a> {
    pub meta: &'a FileMeta,
    pub encoded_meta: &'a [u8],
    /// Where its bytes are (a `.part` file while downloading).
    pub path: &'a Path,
    /// `None`: every chunk; else the verified chunks' bitmap.
    pub have: Option<&'a [u8]>,
    /// What the file must still be when opened (`None`: our own working
    /// file, not checked).
    pub stat: Option<Stat>,
}

/// The files a connection may serve, by id: never a path a peer names.
pub trait Files {
    fn source(&self, id: &FileId) -> Option<Source<'_>>;
}

impl Files for Library {
    fn source(&self, id: &FileId) -> Option<Source<'_>> {
        self.get(id).map(|f| Source {
            meta: &f.meta,
            encoded_meta: &f.encoded_meta,
            path: &f.path,
            have: None,
            stat: f.stat,
        })
    }
}

/// Opens a file to serve: never through a symlink (`O_NOFOLLOW`), never
/// blocking on a FIFO (`O_NONBLOCK`), and only if it is still the regular
/// file that was indexed (inode, size, modification time).
fn open_checked(path: &Path, want: Option<Stat>) -> Option<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let md = f.metadata().ok()?;
    (md.is_file() && want.is_none_or(|s| s == Stat::of(&md))).then_some(f)
}

/// Most `Have` notifications waiting on one connection; a leecher that
/// does not read them is dropped.
pub const MAX_PENDING_HAVES: usize = 4096;

#[derive(Debug, Clone, Copy)]
enum Job {
    Meta(FileId),
    Chunk(FileId, u32),
    Have(FileId),
}

/// The request being answered.
#[derive(Debug)]
enum Sending {
    Meta {
        id: FileId,
        offset: usize,
    },
    /// The answer to `GetHave` from a complete file.
    HaveAll,
    /// A snapshot of the held-chunks bitmap, sent in pieces; chunks
    /// verified after it go out as `Have` notifications.
    Have {
        bits: Vec<u8>,
        offset: usize,
    },
    Chunk {
        id: FileId,
        index: u32,
        offset: u64,
        len: u64,
    },
}

/// An inbound connection's protocol state.
#[derive(Debug)]
pub struct Serve {
    input: Buf,
    output: Buf,
    queue: VecDeque<Job>,
    sending: Option<Sending>,
    /// The file of the chunk being sent, kept open across its blocks and
    /// across requests for the same file.
    open: Option<(FileId, File)>,
    scratch: Vec<u8>,
    /// Bytes of chunk data sent on this connection.
    pub uploaded: u64,
    /// Bytes sent since progress was last taken.
    window: u64,
    /// A request arrived since progress was last taken.
    asked: bool,
    /// The file this leecher last asked about (for the interface's
    /// "downloading from you" count).
    pub file: Option<FileId>,
    /// Chunk bytes sent since the loop last took them, per file (one or
    /// two entries: the loop drains it after every turn).
    sent: Vec<(FileId, u64)>,
    /// The partial file this leecher asked `GetHave` about: it is told of
    /// each chunk we verify.
    pub subscribed: Option<FileId>,
    pending_haves: VecDeque<u32>,
}

impl Default for Serve {
    fn default() -> Self {
        Serve::new()
    }
}

impl Serve {
    pub fn new() -> Serve {
        Serve {
            input: Buf::new(IN_CAP),
            output: Buf::new(OUT_CAP),
            queue: VecDeque::new(),
            sending: None,
            open: None,
            scratch: Vec::with_capacity(64),
            uploaded: 0,
            window: 0,
            asked: false,
            file: None,
            sent: Vec::new(),
            subscribed: None,
            pending_haves: VecDeque::new(),
        }
    }

    /// A connection whose first byte was read already (to tell the
    /// protocols apart).
    pub fn with_first_byte(first: u8) -> Serve {
        let mut s = Serve::new();
        s.input.push(&[first]);
        s
    }

    /// We verified chunk `index` of the file this leecher subscribed to:
    /// it will hear of it between two frames. Errs when too many are
    /// waiting (the leecher does not read).
    pub fn notify_have(&mut self, index: u32) -> Result<(), ConnEnd> {
        if self.pending_haves.len() >= MAX_PENDING_HAVES {
            return Err(ConnEnd::Unexpected(
                "the peer does not read its chunk notifications",
            ));
        }
        self.pending_haves.push_back(index);
        Ok(())
    }

    /// Reads requests and writes replies until the socket would block both
    /// ways or `budget` bytes were sent (then [`Flow::Again`]: call again
    /// soon, without waiting for an event, since edge-triggered readiness
    /// will not repeat itself).
    pub fn drive<S: Read + Write + ?Sized>(
        &mut self,
        s: &mut S,
        lib: &dyn Files,
        budget: usize,
    ) -> Result<Flow, ConnEnd> {
        let mut sent = 0;
        let mut read_blocked = false;
        loop {
            if !read_blocked && self.queue.len() < MAX_PIPELINE && self.input.room() > 0 {
                match self.input.read_from(s) {
                    Ok(0) => return Err(ConnEnd::Eof { in_flight: 0 }),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ConnEnd::Io(e)),
                }
            }
            self.parse()?;
            if self.output.is_empty() {
                self.fill(lib)?;
            }
            if self.output.is_empty() {
                // Nothing to send: done once reading is blocked or must wait.
                if read_blocked || self.queue.len() >= MAX_PIPELINE {
                    return Ok(Flow::Idle);
                }
                continue;
            }
            match self.output.write_to(s) {
                Ok(n) => {
                    sent += n;
                    self.window += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Writable readiness will wake us; reading first would
                    // only queue more work we cannot send.
                    if read_blocked || self.queue.len() >= MAX_PIPELINE {
                        return Ok(Flow::Idle);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnEnd::Io(e)),
            }
            if sent >= budget {
                return Ok(Flow::Again);
            }
        }
    }

    /// Chunk bytes sent per file since the last call.
    /// Whether the connection made progress since the last call: a whole
    /// request came in, or [`MIN_PROGRESS`] bytes went out. A peer that
    /// trickles a byte at a time, or asks and never reads, makes none.
    pub fn take_progress(&mut self) -> bool {
        let moved = self.asked || self.window >= MIN_PROGRESS;
        if moved {
            self.asked = false;
            self.window = 0;
        }
        moved
    }

    pub fn take_sent(&mut self) -> impl Iterator<Item = (FileId, u64)> + '_ {
        self.sent.drain(..)
    }

    /// Whether the peer has nothing outstanding (for the idle timeout).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.sending.is_none()
            && self.output.is_empty()
            && self.pending_haves.is_empty()
    }

    /// Moves complete requests from the input buffer to the queue.
    fn parse(&mut self) -> Result<(), ConnEnd> {
        while self.queue.len() < MAX_PIPELINE {
            let Some(head) = decode_peer_head(self.input.filled()).map_err(ConnEnd::Protocol)? else {
                return Ok(());
            };
            // Requests carry no payload (the decoder checks), so the head
            // is the whole frame.
            self.input.consume(head.head_len);
            let job = match head.header {
                PeerMsg::GetMeta { id } => Job::Meta(id),
                PeerMsg::GetChunk { id, index } => Job::Chunk(id, index),
                PeerMsg::GetHave { id } => Job::Have(id),
                _ => return Err(ConnEnd::Unexpected("a reply where a request belongs")),
            };
            self.queue.push_back(job);
            self.asked = true;
        }
        Ok(())
    }

    /// Puts the next frame into the (empty) output buffer, if there is one.
    fn fill(&mut self, lib: &dyn Files) -> Result<(), ConnEnd> {
        // Notifications go out first, between two frames.
        while let Some(&index) = self.pending_haves.front() {
            if self.output.room() < 64 {
                return Ok(());
            }
            self.put(&PeerMsg::Have { index }, &[])?;
            self.pending_haves.pop_front();
        }
        if !self.output.is_empty() {
            return Ok(());
        }
        if self.sending.is_none() {
            let Some(job) = self.queue.pop_front() else {
                return Ok(());
            };
            match self.start(job, lib) {
                Ok(sending) => self.sending = Some(sending),
                Err(reason) => return self.put(&PeerMsg::Refused { reason }, &[]),
            }
        }
        match self.sending.take() {
            Some(Sending::Meta { id, offset }) => {
                let Some(file) = lib.source(&id) else {
                    return Err(ConnEnd::FileChanged);
                };
                let meta = file.encoded_meta;
                let end = meta.len().min(offset + BLOCK_SIZE);
                let msg = PeerMsg::MetaPiece {
                    offset: offset as u32,
                    total: meta.len() as u32,
                };
                self.put(&msg, &meta[offset..end])?;
                if end < meta.len() {
                    self.sending = Some(Sending::Meta { id, offset: end });
                }
            }
            Some(Sending::HaveAll) => self.put(&PeerMsg::HaveAll, &[])?,
            Some(Sending::Have { bits, offset }) => {
                let end = bits.len().min(offset + BLOCK_SIZE);
                let msg = PeerMsg::HaveMap {
                    offset: offset as u32,
                    total: bits.len() as u32,
                };
                self.put(&msg, &bits[offset..end])?;
                if end < bits.len() {
                    self.sending = Some(Sending::Have { bits, offset: end });
                }
            }
            Some(Sending::Chunk {
                id,
                index,
                offset,
                len,
            }) => {
                let n = (len - offset).min(BLOCK_SIZE as u64) as usize;
                let Some(file) = lib.source(&id) else {
                    return Err(ConnEnd::FileChanged);
                };
                let at = u64::from(index) * u64::from(file.meta.chunk_size) + offset;
                let msg = PeerMsg::Block {
                    index,
                    offset: offset as u32,
                };
                self.scratch.clear();
                encode_peer_head(&msg, n, &mut self.scratch)
                    .map_err(|_| ConnEnd::Unexpected("block too large"))?;
                if !self.output.push(&self.scratch) {
                    return Err(ConnEnd::Unexpected("output buffer too small"));
                }
                let Some((_, f)) = &self.open else {
                    return Err(ConnEnd::FileChanged);
                };
                let head_len = self.scratch.len();
                match f.read_exact_at(&mut self.output.spare()[..n], at) {
                    Ok(()) => self.output.commit(n),
                    Err(_) if offset == 0 => {
                        // Nothing of this chunk sent yet: refuse it cleanly.
                        self.output.consume(head_len);
                        self.open = None;
                        return self.put(
                            &PeerMsg::Refused {
                                reason: Refusal::Unavailable,
                            },
                            &[],
                        );
                    }
                    Err(_) => return Err(ConnEnd::FileChanged),
                }
                self.uploaded += n as u64;
                match self.sent.last_mut() {
                    Some((last, bytes)) if *last == id => *bytes += n as u64,
                    _ => self.sent.push((id, n as u64)),
                }
                let offset = offset + n as u64;
                if offset < len {
                    self.sending = Some(Sending::Chunk {
                        id,
                        index,
                        offset,
                        len,
                    });
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Checks a request against what we share and opens its file.
    fn start(&mut self, job: Job, lib: &dyn Files) -> Result<Sending, Refusal> {
        let (Job::Meta(id) | Job::Chunk(id, _) | Job::Have(id)) = job;
        self.file = Some(id);
        let file = lib.source(&id).ok_or(Refusal::NoSuchFile)?;
        match job {
            Job::Meta(id) => Ok(Sending::Meta { id, offset: 0 }),
            Job::Have(id) => match file.have {
                // An empty bitmap cannot travel as a payload; an empty
                // file is complete anyway.
                Some(bits) if !bits.is_empty() => {
                    self.subscribed = Some(id);
                    Ok(Sending::Have {
                        bits: bits.to_vec(),
                        offset: 0,
                    })
                }
                _ => Ok(Sending::HaveAll),
            },
            Job::Chunk(id, index) => {
                let meta: &FileMeta = file.meta;
                if index as usize >= meta.chunks.len() {
                    return Err(Refusal::NoSuchChunk);
                }
                if file.have.is_some_and(|bits| !bitmap::bit(bits, index as usize)) {
                    return Err(Refusal::Missing);
                }
                if self.open.as_ref().map(|(open, _)| *open) != Some(id) {
                    self.open = Some((
                        id,
                        open_checked(file.path, file.stat).ok_or(Refusal::Unavailable)?,
                    ));
                }
                Ok(Sending::Chunk {
                    id,
                    index,
                    offset: 0,
                    len: meta.chunk_len(index as usize),
                })
            }
        }
    }

    /// Appends one whole frame to the output buffer.
    fn put(&mut self, msg: &PeerMsg, payload: &[u8]) -> Result<(), ConnEnd> {
        self.scratch.clear();
        encode_peer_head(msg, payload.len(), &mut self.scratch)
            .map_err(|_| ConnEnd::Unexpected("frame too large"))?;
        if !(self.output.push(&self.scratch) && self.output.push(payload)) {
            return Err(ConnEnd::Unexpected("output buffer too small"));
        }
        Ok(())
    }
}
