//! One inbound connection from a leecher: read its requests, send metadata
//! and chunks of the files we share.
//!
//! Invariants:
//! - Memory is two fixed buffers: requests in ([`IN_CAP`]) and one frame out
//!   ([`OUT_CAP`]), whatever the chunk size or the number of requests.
//! - At most [`MAX_PIPELINE`] requests wait; past that the connection is not
//!   read (back-pressure: the leecher's requests wait in the kernel).
//! - Requests name a file id; the file is looked up among the files we
//!   share, so a peer can never make us read a path of its choosing.
//! - Replies go out in request order, each request answered by its frames
//!   or by one `Refused`.
//! - Chunk bytes are read with positioned reads straight into the send
//!   buffer: no per-request allocation, no copy in between.

use super::buf::Buf;
use super::library::Library;
use super::Flow;
use crate::meta::FileMeta;
use crate::wire::frame::{FRAME_PREFIX_LEN, MAX_HEADER};
use crate::wire::peer::{decode_peer_head, encode_peer_head, PeerMsg, Refusal, BLOCK_SIZE, MAX_PIPELINE};
use crate::wire::{DecodeError, FileId};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// Inbound buffer: several small requests (a request head is far below
/// this; a frame that does not fit is refused by the decoder first).
pub const IN_CAP: usize = FRAME_PREFIX_LEN + 2 + MAX_HEADER + 1024;
/// Outbound buffer: exactly one largest frame.
pub const OUT_CAP: usize = FRAME_PREFIX_LEN + 2 + MAX_HEADER + BLOCK_SIZE;

/// Why a connection ends.
#[derive(Debug)]
pub enum Close {
    /// The peer closed its side.
    Eof,
    Io(io::Error),
    /// The peer broke the protocol.
    Protocol(DecodeError),
    Unexpected(&'static str),
    /// The file changed under us in the middle of a chunk.
    FileChanged,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Eof => write!(f, "closed by the peer"),
            Close::Io(e) => write!(f, "{e}"),
            Close::Protocol(e) => write!(f, "protocol error: {e}"),
            Close::Unexpected(what) => write!(f, "protocol error: {what}"),
            Close::FileChanged => write!(f, "the shared file changed on disk while a chunk was being sent"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Meta(FileId),
    Chunk(FileId, u32),
}

/// The request being answered.
#[derive(Debug)]
enum Sending {
    Meta {
        id: FileId,
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
    /// The file this leecher last asked about (for the interface's
    /// "downloading from you" count).
    pub file: Option<FileId>,
    /// Chunk bytes sent since the loop last took them, per file (one or
    /// two entries: the loop drains it after every turn).
    sent: Vec<(FileId, u64)>,
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
            file: None,
            sent: Vec::new(),
        }
    }

    /// Reads requests and writes replies until the socket would block both
    /// ways or `budget` bytes were sent (then [`Flow::Again`]: call again
    /// soon, without waiting for an event, since edge-triggered readiness
    /// will not repeat itself).
    pub fn drive<S: Read + Write>(&mut self, s: &mut S, lib: &Library, budget: usize) -> Result<Flow, Close> {
        let mut sent = 0;
        let mut read_blocked = false;
        loop {
            if !read_blocked && self.queue.len() < MAX_PIPELINE && self.input.room() > 0 {
                match self.input.read_from(s) {
                    Ok(0) => return Err(Close::Eof),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Close::Io(e)),
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
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Writable readiness will wake us; reading first would
                    // only queue more work we cannot send.
                    if read_blocked || self.queue.len() >= MAX_PIPELINE {
                        return Ok(Flow::Idle);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Io(e)),
            }
            if sent >= budget {
                return Ok(Flow::Again);
            }
        }
    }

    /// Chunk bytes sent per file since the last call.
    pub fn take_sent(&mut self) -> impl Iterator<Item = (FileId, u64)> + '_ {
        self.sent.drain(..)
    }

    /// Whether the peer has nothing outstanding (for the idle timeout).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.sending.is_none() && self.output.is_empty()
    }

    /// Moves complete requests from the input buffer to the queue.
    fn parse(&mut self) -> Result<(), Close> {
        while self.queue.len() < MAX_PIPELINE {
            let Some(head) = decode_peer_head(self.input.filled()).map_err(Close::Protocol)? else {
                return Ok(());
            };
            // Requests carry no payload (the decoder checks), so the head
            // is the whole frame.
            self.input.consume(head.head_len);
            let job = match head.header {
                PeerMsg::GetMeta { id } => Job::Meta(id),
                PeerMsg::GetChunk { id, index } => Job::Chunk(id, index),
                _ => return Err(Close::Unexpected("a reply where a request belongs")),
            };
            self.queue.push_back(job);
        }
        Ok(())
    }

    /// Puts the next frame into the (empty) output buffer, if there is one.
    fn fill(&mut self, lib: &Library) -> Result<(), Close> {
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
                let Some(file) = lib.get(&id) else {
                    return Err(Close::FileChanged);
                };
                let meta = &file.encoded_meta;
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
            Some(Sending::Chunk {
                id,
                index,
                offset,
                len,
            }) => {
                let n = (len - offset).min(BLOCK_SIZE as u64) as usize;
                let Some(file) = lib.get(&id) else {
                    return Err(Close::FileChanged);
                };
                let at = u64::from(index) * u64::from(file.meta.chunk_size) + offset;
                let msg = PeerMsg::Block {
                    index,
                    offset: offset as u32,
                };
                self.scratch.clear();
                encode_peer_head(&msg, n, &mut self.scratch)
                    .map_err(|_| Close::Unexpected("block too large"))?;
                if !self.output.push(&self.scratch) {
                    return Err(Close::Unexpected("output buffer too small"));
                }
                let Some((_, f)) = &self.open else {
                    return Err(Close::FileChanged);
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
                    Err(_) => return Err(Close::FileChanged),
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
    fn start(&mut self, job: Job, lib: &Library) -> Result<Sending, Refusal> {
        let (Job::Meta(id) | Job::Chunk(id, _)) = job;
        self.file = Some(id);
        let file = lib.get(&id).ok_or(Refusal::NoSuchFile)?;
        match job {
            Job::Meta(id) => Ok(Sending::Meta { id, offset: 0 }),
            Job::Chunk(id, index) => {
                let meta: &FileMeta = &file.meta;
                if index as usize >= meta.chunks.len() {
                    return Err(Refusal::NoSuchChunk);
                }
                if self.open.as_ref().map(|(open, _)| *open) != Some(id) {
                    let f = File::open(&file.path).map_err(|_| Refusal::Unavailable)?;
                    self.open = Some((id, f));
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
    fn put(&mut self, msg: &PeerMsg, payload: &[u8]) -> Result<(), Close> {
        self.scratch.clear();
        encode_peer_head(msg, payload.len(), &mut self.scratch)
            .map_err(|_| Close::Unexpected("frame too large"))?;
        if !(self.output.push(&self.scratch) && self.output.push(payload)) {
            return Err(Close::Unexpected("output buffer too small"));
        }
        Ok(())
    }
}
