//! The client's side of the tracker protocol, as a pure state machine: the
//! client's mio loop owns the UDP socket, feeds received datagrams to
//! [`TrackerLink::handle_datagram`], sends what [`TrackerLink::poll_transmit`]
//! hands out, sets its poll timeout from [`TrackerLink::poll_deadline`] and
//! calls [`TrackerLink::handle_timeout`] when that passes. Time comes in as
//! `now`; nothing here touches a socket or a clock (the model is
//! quinn-proto's `Connection`).
//!
//! What the link does on its own:
//! - Handshake (`Connect`) first, again shortly before the connection id
//!   expires, and again when a request got no answer after
//!   [`SUSPECT_AFTER`] sends: a tracker that restarted (new secret) ignores
//!   our old id silently, so silence is the only sign.
//! - Register, then announce the whole announced set; again after every
//!   registration (an `Error{NotRegistered}` on any request means the tracker
//!   forgot us: register, re-announce, then resend that request).
//! - Keep-alives every interval the tracker names.
//! - While someone waits for an answer (a query, a username change), the
//!   handshake is retried every [`WAITED_HANDSHAKE`] instead of backing
//!   off, so a tracker that comes back is found before the question runs
//!   out of retries; and queries wait while an announce round is open
//!   (after a registration, or a change to what we share), so no answer
//!   shows the tracker's view from before it knew our files (both: issue
//!   11, defect 12).
//!
//! Invariants:
//! - Only one handshake at a time; it retries forever with a capped backoff.
//!   Every other request is retried with backoff and given up after
//!   [`MAX_SENDS`] sends (or after [`WAIT_PATIENCE`] unsendable), with an
//!   event saying so; registration alone never gives up.
//! - Every request has a fresh random transaction id; replies are matched by
//!   it and anything else is counted and ignored.
//! - No datagram handed out exceeds [`MAX_DATAGRAM`]: lists are packed with
//!   [`Page`] and every datagram goes through [`encode_request`].
//! - Everything is bounded: outstanding queries ([`MAX_QUERIES`]), the
//!   announced set ([`MAX_FILES_PER_PEER`]), announce/withdraw datagrams in
//!   flight ([`SYNC_WINDOW`]), rows gathered from paged lists
//!   ([`MAX_PEER_ROWS`], [`MAX_FILE_ROWS`], [`MAX_FOUND_ROWS`]) and events held
//!   back for the next `handle_*` call.
//! - An announce and a withdraw of the same file are never in flight at once,
//!   so a retried datagram cannot undo a later change.
//!
//! A link made with [`TrackerLink::reader`] never registers: it lists and
//! finds (which the tracker answers without a registration), so a
//! read-only run (`--list`, `--peers`) takes nobody's place.
//!
//! The loop must feed only datagrams that come from the tracker's address.

use crate::names;
use crate::rand::Rng;
use crate::wire::tracker::MAX_FILES_PER_PEER;
use crate::wire::tracker::{
    decode_reply, encode_request, ClientSecret, ConnId, ErrorCode, FileEntry, FileInfo, FileQuery,
    FindCursor, Page, PeerInfo, ReplyBody, Request, RequestBody, Role, CONNECT_PADDING, MAX_PEERS_PER_REPLY,
};
use crate::wire::{FileId, MAX_DATAGRAM};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Wait after the first send of a request before it is sent again; doubled
/// after every further send.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between two sends (the handshake keeps retrying at this pace).
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Sends of one request before it is given up (0.5 + 1 + 2 + 4 + 8 s).
pub const MAX_SENDS: u32 = 5;
/// Unanswered sends on one connection id after which that id is suspected
/// (the tracker may have restarted) and a fresh handshake starts.
pub const SUSPECT_AFTER: u32 = 2;
/// Longest wait between two handshakes while a query or a username change
/// waits on them (a 31-byte datagram a second costs the tracker nothing).
pub const WAITED_HANDSHAKE: Duration = Duration::from_secs(1);
/// Unanswered handshakes in a row before [`LinkEvent::Unreachable`].
pub const UNREACHABLE_AFTER: u32 = 3;
/// How long a request may wait unsendable (no connection id, not
/// registered) before it is given up.
pub const WAIT_PATIENCE: Duration = Duration::from_secs(15);
/// Most queries outstanding at once.
pub const MAX_QUERIES: usize = 64;
/// Most rows gathered for one peer list.
pub const MAX_PEER_ROWS: usize = 10_000;
/// Most rows gathered for one file list.
pub const MAX_FILE_ROWS: usize = 100_000;
/// Most rows gathered for one find: more than one match is an ambiguity
/// the user settles with an id, so a few more are only for the message.
pub const MAX_FOUND_ROWS: usize = 64;
/// Most pages followed for one list (bounds a tracker that sends empty pages).
const MAX_PAGES: u32 = 50_000;
/// Announce/withdraw datagrams in flight at once: enough to announce a full
/// set quickly, few enough not to flood the tracker's socket.
pub const SYNC_WINDOW: usize = 8;
/// Times one request may be bounced by `NotRegistered` before it fails
/// (bounds a tracker that keeps forgetting us).
const MAX_BOUNCES: u8 = 3;
/// Wait before registering again after the tracker refused a registration.
pub const REGISTER_RETRY: Duration = Duration::from_secs(30);
/// Events held back for the next `handle_*` call (from calls that have no
/// event list); more are dropped.
const MAX_DEFERRED: usize = 64;

/// A question for the tracker; the answer comes as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Every registered peer: [`LinkEvent::PeerList`].
    ListPeers,
    /// Every file: [`LinkEvent::FileList`].
    ListFiles,
    /// Peers holding a file: [`LinkEvent::Peers`].
    GetPeers(FileId),
    /// Files by name or id prefix, from the tracker's index:
    /// [`LinkEvent::Found`].
    Find(FileQuery),
}

/// What happened, for the loop to act on or show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Registered (first time, after a role change, or again after the
    /// tracker forgot us / restarted). The link itself re-announces every
    /// file in its announced set after each registration.
    Registered { interval: Duration },
    /// All announce datagrams sent so far were acknowledged: after the
    /// announce that follows a registration and after later `announce` calls.
    Announced { files: usize },
    /// Peers holding `id` (at most [`MAX_PEERS_PER_REPLY`]).
    Peers { id: FileId, peers: Vec<SocketAddr> },
    /// Every page of the peer list (at most [`MAX_PEER_ROWS`] rows).
    PeerList(Vec<PeerInfo>),
    /// Every page of the file list (at most [`MAX_FILE_ROWS`] rows).
    FileList(Vec<FileInfo>),
    /// The files matching `query` (at most [`MAX_FOUND_ROWS`]).
    Found { query: FileQuery, files: Vec<FileInfo> },
    /// The tracker accepted the new username; [`TrackerLink::username`] is it.
    UsernameChanged(String),
    /// A request failed: an error reply, or no answer after its retries.
    /// `error` is safe to print (network text is escaped).
    Failed { what: RequestKind, error: String },
    /// The handshake failed [`UNREACHABLE_AFTER`] times in a row (once per
    /// outage).
    Unreachable,
    /// The tracker answers again after an [`LinkEvent::Unreachable`].
    Reachable,
    /// The disconnect was acknowledged, or given up on: the loop may exit.
    Disconnected,
}

/// Which request a [`LinkEvent::Failed`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Connect,
    Register,
    KeepAlive,
    Announce,
    Withdraw,
    ListPeers,
    ListFiles,
    GetPeers,
    ChangeUsername,
    Disconnect,
    FindFiles,
}

impl RequestKind {
    /// How messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Connect => "connect",
            RequestKind::Register => "register",
            RequestKind::KeepAlive => "keep-alive",
            RequestKind::Announce => "announce",
            RequestKind::Withdraw => "withdraw",
            RequestKind::ListPeers => "list peers",
            RequestKind::ListFiles => "list files",
            RequestKind::GetPeers => "get peers",
            RequestKind::ChangeUsername => "change username",
            RequestKind::Disconnect => "disconnect",
            RequestKind::FindFiles => "find files",
        }
    }
}

/// Why a request is on its way, and what it carries (the body is built
/// from this at each send, so a retry uses the current connection id).
#[derive(Debug)]
enum Purpose {
    Register,
    KeepAlive,
    /// Entries and their ids (derived once, when the page is made).
    Announce(Vec<FileId>, Vec<FileEntry>),
    Withdraw(Vec<FileId>),
    ListPeers(Gathered<u32, PeerInfo>),
    ListFiles(Gathered<u32, FileInfo>),
    GetPeers(FileId),
    Find(FileQuery, Gathered<FindCursor, FileInfo>),
    ChangeUsername(String),
    Disconnect,
}

impl Purpose {
    fn what(&self) -> RequestKind {
        match self {
            Purpose::Register => RequestKind::Register,
            Purpose::KeepAlive => RequestKind::KeepAlive,
            Purpose::Announce(..) => RequestKind::Announce,
            Purpose::Withdraw(_) => RequestKind::Withdraw,
            Purpose::ListPeers(_) => RequestKind::ListPeers,
            Purpose::ListFiles(_) => RequestKind::ListFiles,
            Purpose::GetPeers(_) => RequestKind::GetPeers,
            Purpose::Find(..) => RequestKind::FindFiles,
            Purpose::ChangeUsername(_) => RequestKind::ChangeUsername,
            Purpose::Disconnect => RequestKind::Disconnect,
        }
    }

    fn is_query(&self) -> bool {
        matches!(
            self,
            Purpose::ListPeers(_) | Purpose::ListFiles(_) | Purpose::GetPeers(_) | Purpose::Find(..)
        )
    }

    /// Whether `body` is a reply this request can get (an error always is).
    fn fits(&self, body: &ReplyBody) -> bool {
        matches!(
            (self, body),
            (_, ReplyBody::Error { .. })
                | (Purpose::Register, ReplyBody::Registered { .. })
                | (Purpose::Announce(..), ReplyBody::Announced { .. })
                | (Purpose::Withdraw(_), ReplyBody::Withdrawn { .. })
                | (Purpose::ListPeers(_), ReplyBody::PeerList { .. })
                | (Purpose::ListFiles(_), ReplyBody::FileList { .. })
                | (Purpose::Find(..), ReplyBody::Found { .. })
                | (
                    Purpose::KeepAlive | Purpose::ChangeUsername(_) | Purpose::Disconnect,
                    ReplyBody::Ok
                )
        ) || matches!((self, body), (Purpose::GetPeers(a), ReplyBody::Peers { id, .. }) if a == id)
    }
}

/// The pages of a paged answer gathered so far, and where the next one
/// starts.
#[derive(Debug)]
struct Gathered<C, T> {
    cursor: C,
    rows: Vec<T>,
    pages: u32,
}

impl<C: Ord + Default, T> Gathered<C, T> {
    /// Nothing yet: the first page is next.
    fn start() -> Self {
        Gathered {
            cursor: C::default(),
            rows: Vec::new(),
            pages: 0,
        }
    }

    /// Adds a page (at most `cap` rows in all): `Ok` with the state to ask
    /// the next page with, or `Err` with every row when the answer is
    /// complete (or the caps are reached).
    fn add(mut self, page: Vec<T>, next: Option<C>, cap: usize) -> Result<Self, Vec<T>> {
        let room = cap.saturating_sub(self.rows.len());
        self.rows.extend(page.into_iter().take(room));
        match next_cursor(self.cursor, next, self.pages, self.rows.len() < cap) {
            Some(cursor) => Ok(Gathered {
                cursor,
                rows: self.rows,
                pages: self.pages + 1,
            }),
            None => Err(self.rows),
        }
    }
}

/// One request on its way (or waiting to be sendable).
#[derive(Debug)]
struct Pending {
    tx: u32,
    purpose: Purpose,
    /// Sends so far, and sends since the current connection id arrived.
    sends: u32,
    sends_on_conn: u32,
    /// True while a send waits for its answer until `due`; false while the
    /// request waits to be sent at `due`.
    awaiting: bool,
    due: Instant,
    /// Times `NotRegistered` sent it back to wait for a registration.
    bounces: u8,
}

/// The handshake in progress.
#[derive(Debug)]
struct Handshake {
    tx: u32,
    sends: u32,
    awaiting: bool,
    due: Instant,
    /// When it was last sent.
    sent_at: Instant,
}

/// A connection id and its lifetime as we measured it.
#[derive(Debug, Clone, Copy)]
struct Conn {
    id: ConnId,
    /// When a fresh handshake starts (well before expiry).
    refresh_at: Instant,
    /// When the tracker may stop accepting it.
    expires_at: Instant,
}

/// The client's conversation with the tracker. See the module docs.
#[derive(Debug)]
pub struct TrackerLink {
    username: String,
    /// Presented at registration: proves a name in use is ours.
    secret: ClientSecret,
    /// False for a [`TrackerLink::reader`]: never registers.
    registering: bool,
    port: u16,
    role: Role,
    rng: Rng,
    conn: Option<Conn>,
    handshake: Option<Handshake>,
    /// Unanswered handshakes in a row.
    handshake_failures: u32,
    unreachable: bool,
    registered: bool,
    /// True once a `Register` has been sent: only then may the tracker know us.
    register_sent: bool,
    /// The tracker refused our registration (a taken username, say) and
    /// has not accepted one since: a new username is then registered
    /// rather than changed.
    register_refused: bool,
    /// The registration under way carries a new username: say so when it
    /// is accepted.
    renaming: bool,
    interval: Option<Duration>,
    next_keepalive: Option<Instant>,
    requests: Vec<Pending>,
    /// The announced set.
    files: BTreeMap<FileId, FileEntry>,
    /// Files whose current entry the tracker has not acknowledged yet.
    unsynced_announce: BTreeSet<FileId>,
    /// Files withdrawn here that the tracker has not acknowledged yet.
    unsynced_withdraw: BTreeSet<FileId>,
    /// `Some` while an announce round is open; true if part of it failed.
    round: Option<bool>,
    closing: bool,
    closed: bool,
    deferred: Vec<LinkEvent>,
    /// The latest `now` seen: "immediately" for [`TrackerLink::poll_deadline`].
    last_now: Instant,
    ignored: u64,
}

impl TrackerLink {
    /// A link that starts with the handshake; `port` is the TCP serving port
    /// to register, `secret` the client's (see [`ClientSecret`]).
    pub fn new(
        username: String,
        secret: ClientSecret,
        port: u16,
        role: Role,
        rng: Rng,
        now: Instant,
    ) -> TrackerLink {
        let mut link = TrackerLink {
            username,
            secret,
            registering: true,
            port,
            role,
            rng,
            conn: None,
            handshake: None,
            handshake_failures: 0,
            unreachable: false,
            registered: false,
            register_sent: false,
            register_refused: false,
            renaming: false,
            interval: None,
            next_keepalive: None,
            requests: Vec::new(),
            files: BTreeMap::new(),
            unsynced_announce: BTreeSet::new(),
            unsynced_withdraw: BTreeSet::new(),
            round: None,
            closing: false,
            closed: false,
            deferred: Vec::new(),
            last_now: now,
            ignored: 0,
        };
        link.pump(now);
        link
    }

    /// A link that never registers: it only asks what needs no
    /// registration (lists and finds).
    pub fn reader(rng: Rng, now: Instant) -> TrackerLink {
        let mut link = TrackerLink::new(String::new(), [0; 16], 0, Role::Leecher, rng, now);
        // `new` queued a registration: a reader sends none.
        link.registering = false;
        link.requests.clear();
        link
    }

    /// Adds `files` to the announced set (replacing entries with the same
    /// id) and announces them once registered. Files with invalid names, or
    /// past [`MAX_FILES_PER_PEER`], are left out with a `Failed` event.
    pub fn announce(&mut self, files: Vec<FileEntry>, now: Instant) {
        self.last_now = now;
        if self.closing {
            return;
        }
        let (mut bad_name, mut over) = (None, 0usize);
        for entry in files {
            if let Err(e) = names::check_file_name(&entry.name) {
                bad_name.get_or_insert_with(|| format!("file {}: name {e}", names::escape(&entry.name)));
                continue;
            }
            let id = entry.id();
            if !self.files.contains_key(&id) && self.files.len() >= MAX_FILES_PER_PEER {
                over += 1;
                continue;
            }
            if self.files.get(&id) == Some(&entry) {
                continue;
            }
            self.unsynced_withdraw.remove(&id);
            if self.registered {
                self.unsynced_announce.insert(id);
            }
            self.files.insert(id, entry);
        }
        if let Some(error) = bad_name {
            self.defer(LinkEvent::Failed {
                what: RequestKind::Announce,
                error,
            });
        }
        if over > 0 {
            self.defer(LinkEvent::Failed {
                what: RequestKind::Announce,
                error: format!(
                    "{over} file(s) left out: a peer may share at most {MAX_FILES_PER_PEER} files"
                ),
            });
        }
        self.round.get_or_insert(false);
        self.pump(now);
    }

    /// Removes files from the announced set and withdraws them at the tracker.
    pub fn withdraw(&mut self, ids: Vec<FileId>, now: Instant) {
        self.last_now = now;
        if self.closing {
            return;
        }
        let mut dropped = 0usize;
        for id in ids {
            if self.files.remove(&id).is_none() {
                continue;
            }
            self.unsynced_announce.remove(&id);
            // Unregistered, the tracker holds none of our files.
            if self.registered {
                if self.unsynced_withdraw.len() < MAX_FILES_PER_PEER {
                    self.unsynced_withdraw.insert(id);
                } else {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            self.defer(LinkEvent::Failed {
                what: RequestKind::Withdraw,
                error: format!("{dropped} file(s) not withdrawn: too many withdrawals waiting"),
            });
        }
        self.pump(now);
    }

    /// Registers again with `role` (the tracker updates our entry), then
    /// re-announces the set.
    pub fn set_role(&mut self, role: Role, now: Instant) {
        self.last_now = now;
        self.role = role;
        if self.closing {
            return;
        }
        // A fresh request (new tx): a register already sent may carry the old role.
        self.requests.retain(|r| !matches!(r.purpose, Purpose::Register));
        self.push_front(Purpose::Register, now);
        self.pump(now);
    }

    /// Asks the tracker something; the answer comes as an event. Refused
    /// when [`MAX_QUERIES`] are outstanding or the link is disconnecting.
    pub fn query(&mut self, q: Query, now: Instant) -> Result<(), String> {
        self.last_now = now;
        if self.closing {
            return Err("disconnecting from the tracker".into());
        }
        let outstanding = self.requests.iter().filter(|r| r.purpose.is_query()).count();
        if outstanding >= MAX_QUERIES {
            return Err(format!(
                "too many tracker queries outstanding ({MAX_QUERIES}); wait for answers"
            ));
        }
        let purpose = match q {
            Query::ListPeers => Purpose::ListPeers(Gathered::start()),
            Query::ListFiles => Purpose::ListFiles(Gathered::start()),
            Query::GetPeers(id) => Purpose::GetPeers(id),
            Query::Find(query) => Purpose::Find(query, Gathered::start()),
        };
        self.push_back(purpose, now);
        self.hurry_handshake();
        self.pump(now);
        Ok(())
    }

    /// Asks to be known as `name`: `UsernameChanged` on success (and
    /// [`username`](Self::username) returns it), `Failed` otherwise. A change
    /// still on its way is replaced.
    pub fn change_username(&mut self, name: String, now: Instant) {
        self.last_now = now;
        if self.closing {
            return;
        }
        self.requests
            .retain(|r| !matches!(r.purpose, Purpose::ChangeUsername(_)));
        if self.register_refused && !self.registered {
            // Nothing to change at the tracker: register under the new name.
            self.requests.retain(|r| !matches!(r.purpose, Purpose::Register));
            self.username = name;
            self.renaming = true;
            self.push_back(Purpose::Register, now);
        } else {
            self.push_back(Purpose::ChangeUsername(name), now);
        }
        self.hurry_handshake();
        self.pump(now);
    }

    /// Leaves the network: drops everything outstanding, stops keep-alives
    /// and sends `Disconnect` (which withdraws all our files at the tracker).
    /// `Disconnected` follows on its answer or after its retries; at once if
    /// the tracker never heard from us.
    pub fn disconnect(&mut self, now: Instant) {
        self.last_now = now;
        if self.closing {
            return;
        }
        self.closing = true;
        self.requests.clear();
        self.unsynced_announce.clear();
        self.unsynced_withdraw.clear();
        self.round = None;
        self.next_keepalive = None;
        if self.register_sent {
            self.push_back(Purpose::Disconnect, now);
        } else {
            self.close();
            self.defer(LinkEvent::Disconnected);
        }
        self.pump(now);
    }

    /// Takes one datagram from the tracker. Undecodable datagrams and
    /// unknown transaction ids are counted and ignored.
    pub fn handle_datagram(&mut self, bytes: &[u8], now: Instant, events: &mut Vec<LinkEvent>) {
        self.last_now = now;
        events.append(&mut self.deferred);
        let Ok(reply) = decode_reply(bytes) else {
            self.ignored += 1;
            return;
        };
        if self.closed {
            self.ignored += 1;
            return;
        }
        if self.handshake.as_ref().is_some_and(|h| h.tx == reply.tx) {
            self.on_handshake_reply(reply.body, now, events);
        } else if let Some(i) = self
            .requests
            .iter()
            .position(|r| r.tx == reply.tx && r.purpose.fits(&reply.body))
        {
            let req = self.requests.remove(i);
            self.on_reply(req, reply.body, now, events);
        } else {
            self.ignored += 1;
            return;
        }
        self.pump(now);
        self.finish_round(events);
    }

    /// Runs the timers: counts unanswered sends, gives up requests, starts
    /// handshakes, schedules keep-alives.
    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<LinkEvent>) {
        self.last_now = now;
        events.append(&mut self.deferred);
        if self.closed {
            return;
        }
        if let Some(h) = &mut self.handshake {
            if h.awaiting && h.due <= now {
                h.awaiting = false;
                self.handshake_failures += 1;
                if self.handshake_failures >= UNREACHABLE_AFTER && !self.unreachable {
                    self.unreachable = true;
                    events.push(LinkEvent::Unreachable);
                }
            }
        }
        let mut suspect = false;
        let mut i = 0;
        while i < self.requests.len() {
            let sendable = self.sendable(&self.requests[i], now);
            let r = &mut self.requests[i];
            let persistent = matches!(r.purpose, Purpose::Register);
            let give_up = if r.awaiting && r.due <= now {
                if r.sends >= MAX_SENDS && !persistent {
                    true
                } else {
                    r.awaiting = false;
                    suspect |= r.sends_on_conn >= SUSPECT_AFTER;
                    false
                }
            } else {
                !r.awaiting && !sendable && !persistent && now >= r.due + WAIT_PATIENCE
            };
            if give_up {
                let r = self.requests.remove(i);
                self.give_up(r, events);
            } else {
                i += 1;
            }
        }
        if suspect && self.handshake.is_none() {
            self.start_handshake(now);
        }
        self.pump(now);
        self.finish_round(events);
    }

    /// Appends one datagram to `out` if one is due; call until false.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.last_now = now;
        if self.closed {
            return false;
        }
        if let Some(h) = &mut self.handshake {
            if !h.awaiting && h.due <= now {
                let req = Request {
                    tx: h.tx,
                    conn: [0; 8],
                    body: RequestBody::Connect {
                        padding: [0; CONNECT_PADDING],
                    },
                };
                h.sends += 1;
                h.awaiting = true;
                h.sent_at = now;
                h.due = now + backoff(h.sends);
                self.hurry_handshake();
                // A Connect is a fixed 31 bytes; it always encodes.
                return encode_request(&req, out).is_ok();
            }
        }
        let Some(conn) = self.conn.filter(|c| now < c.expires_at) else {
            return false;
        };
        loop {
            let Some(i) = self
                .requests
                .iter()
                .position(|r| !r.awaiting && r.due <= now && self.sendable(r, now))
            else {
                return false;
            };
            let req = Request {
                tx: self.requests[i].tx,
                conn: conn.id,
                body: self.body(&self.requests[i].purpose),
            };
            let start = out.len();
            match encode_request(&req, out) {
                Ok(()) if out.len() - start <= MAX_DATAGRAM => {
                    self.register_sent |= matches!(req.body, RequestBody::Register { .. });
                    let r = &mut self.requests[i];
                    r.sends += 1;
                    r.sends_on_conn += 1;
                    r.awaiting = true;
                    r.due = now + backoff(r.sends);
                    return true;
                }
                // Only user text (a huge username) can get here: refuse
                // that request and look for another.
                _ => {
                    out.truncate(start);
                    let r = self.requests.remove(i);
                    self.defer(LinkEvent::Failed {
                        what: r.purpose.what(),
                        error: "request too large for one datagram".into(),
                    });
                    if matches!(r.purpose, Purpose::Register | Purpose::Disconnect) {
                        // Neither can be sent: stop rather than loop forever.
                        self.close();
                        return false;
                    }
                }
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) (or
    /// [`poll_transmit`](Self::poll_transmit)) next has work; `None` once
    /// disconnected. A time in the past means "now".
    pub fn poll_deadline(&self) -> Option<Instant> {
        if !self.deferred.is_empty() || self.round_done() {
            return Some(self.last_now);
        }
        if self.closed {
            return None;
        }
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some(h) = &self.handshake {
            consider(h.due);
        }
        if let Some(c) = &self.conn {
            // While closing, only a pending Disconnect needs an id.
            if self.handshake.is_none() && (!self.closing || !self.requests.is_empty()) {
                consider(c.refresh_at);
            }
            consider(c.expires_at);
        }
        if let Some(t) = self.next_keepalive {
            consider(t);
        }
        for r in &self.requests {
            if r.awaiting || self.sendable(r, self.last_now) {
                consider(r.due);
            } else if !matches!(r.purpose, Purpose::Register) {
                consider(r.due + WAIT_PATIENCE);
            }
        }
        at
    }

    /// True while the tracker knows us (as far as we know).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The role we register with.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The username we registered with (or last changed to).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Datagrams ignored so far: undecodable, unknown tx, or unexpected.
    pub fn ignored_datagrams(&self) -> u64 {
        self.ignored
    }

    fn on_handshake_reply(&mut self, body: ReplyBody, now: Instant, events: &mut Vec<LinkEvent>) {
        match body {
            ReplyBody::Connected { conn, valid_secs } => {
                let valid = Duration::from_secs(u64::from(valid_secs.max(1)));
                self.conn = Some(Conn {
                    id: conn,
                    refresh_at: now + valid * 3 / 4,
                    expires_at: now + valid,
                });
                self.handshake = None;
                self.handshake_failures = 0;
                if self.unreachable {
                    self.unreachable = false;
                    events.push(LinkEvent::Reachable);
                }
                for r in &mut self.requests {
                    // Suspects went unanswered on the old id: resend now.
                    if r.awaiting && r.sends_on_conn >= SUSPECT_AFTER {
                        r.awaiting = false;
                        r.due = now;
                    }
                    r.sends_on_conn = 0;
                }
            }
            ReplyBody::Error { code, message } => events.push(LinkEvent::Failed {
                what: RequestKind::Connect,
                error: error_text(code, &message),
            }),
            _ => self.ignored += 1,
        }
    }

    fn on_reply(&mut self, mut req: Pending, body: ReplyBody, now: Instant, events: &mut Vec<LinkEvent>) {
        let purpose = std::mem::replace(&mut req.purpose, Purpose::KeepAlive);
        match (purpose, body) {
            // Whatever the answer (NotRegistered included), we are gone.
            (Purpose::Disconnect, _) => {
                self.close();
                events.push(LinkEvent::Disconnected);
            }
            (
                purpose,
                ReplyBody::Error {
                    code: ErrorCode::NotRegistered,
                    ..
                },
            ) if !matches!(purpose, Purpose::Register) => {
                self.forgotten();
                match purpose {
                    // Registration re-announces the set and restarts keep-alives.
                    Purpose::KeepAlive | Purpose::Announce(..) | Purpose::Withdraw(_) => {}
                    purpose if req.bounces >= MAX_BOUNCES => events.push(LinkEvent::Failed {
                        what: purpose.what(),
                        error: "the tracker keeps forgetting our registration".into(),
                    }),
                    purpose => {
                        req.purpose = purpose;
                        req.bounces += 1;
                        self.requeue(req, now);
                    }
                }
            }
            (Purpose::Register, ReplyBody::Error { code, message }) => {
                self.register_refused = true;
                let what = if std::mem::take(&mut self.renaming) {
                    RequestKind::ChangeUsername
                } else {
                    RequestKind::Register
                };
                events.push(LinkEvent::Failed {
                    what,
                    error: error_text(code, &message),
                });
                // Registration never gives up; try again later.
                req.purpose = Purpose::Register;
                self.requeue(req, now + REGISTER_RETRY);
            }
            (purpose, ReplyBody::Error { code, message }) => {
                if matches!(purpose, Purpose::Announce(..)) {
                    self.round = self.round.map(|_| true);
                }
                events.push(LinkEvent::Failed {
                    what: purpose.what(),
                    error: error_text(code, &message),
                });
            }
            (Purpose::Register, ReplyBody::Registered { interval_secs }) => {
                let interval = Duration::from_secs(u64::from(interval_secs.max(1)));
                self.registered = true;
                self.register_refused = false;
                self.interval = Some(interval);
                self.next_keepalive = Some(now + interval);
                events.push(LinkEvent::Registered { interval });
                if std::mem::take(&mut self.renaming) {
                    events.push(LinkEvent::UsernameChanged(self.username.clone()));
                }
                self.unsynced_announce = self.files.keys().copied().collect();
                if !self.files.is_empty() {
                    self.round = Some(false);
                }
            }
            (Purpose::ListPeers(g), ReplyBody::PeerList { peers, next }) => {
                match g.add(peers, next, MAX_PEER_ROWS) {
                    Ok(g) => self.requeue_as(req, Purpose::ListPeers(g), now),
                    Err(rows) => events.push(LinkEvent::PeerList(rows)),
                }
            }
            (Purpose::ListFiles(g), ReplyBody::FileList { files, next }) => {
                match g.add(files, next, MAX_FILE_ROWS) {
                    Ok(g) => self.requeue_as(req, Purpose::ListFiles(g), now),
                    Err(rows) => events.push(LinkEvent::FileList(rows)),
                }
            }
            (Purpose::Find(query, g), ReplyBody::Found { files, next }) => {
                match g.add(files, next, MAX_FOUND_ROWS) {
                    Ok(g) => self.requeue_as(req, Purpose::Find(query, g), now),
                    Err(rows) => events.push(LinkEvent::Found { query, files: rows }),
                }
            }
            (Purpose::GetPeers(id), ReplyBody::Peers { mut peers, .. }) => {
                peers.truncate(MAX_PEERS_PER_REPLY);
                events.push(LinkEvent::Peers { id, peers });
            }
            (Purpose::ChangeUsername(name), ReplyBody::Ok) => {
                self.username.clone_from(&name);
                events.push(LinkEvent::UsernameChanged(name));
            }
            // Keep-alive Ok, Announced, Withdrawn: the request is done.
            _ => {}
        }
    }

    /// The tracker said `NotRegistered`: it holds nothing of ours any more.
    fn forgotten(&mut self) {
        self.registered = false;
        self.next_keepalive = None;
        self.unsynced_withdraw.clear();
    }

    fn give_up(&mut self, r: Pending, events: &mut Vec<LinkEvent>) {
        let error = if r.sends == 0 {
            "the tracker is not reachable".to_string()
        } else {
            format!("no answer from the tracker after {} tries", r.sends)
        };
        match r.purpose {
            Purpose::Register | Purpose::KeepAlive => {}
            Purpose::Disconnect => {
                self.close();
                events.push(LinkEvent::Disconnected);
            }
            purpose => {
                if matches!(purpose, Purpose::Announce(..)) {
                    self.round = self.round.map(|_| true);
                }
                events.push(LinkEvent::Failed {
                    what: purpose.what(),
                    error,
                });
            }
        }
    }

    /// Brings timers and queues up to date: handshake, registration,
    /// keep-alive, announce/withdraw datagrams.
    fn pump(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.conn.is_some_and(|c| now >= c.expires_at) {
            self.conn = None;
        }
        let need_conn = !self.closing || !self.requests.is_empty();
        let refresh = match self.conn {
            Some(c) => now >= c.refresh_at,
            None => true,
        };
        if need_conn && self.handshake.is_none() && refresh {
            self.start_handshake(now);
        }
        if self.closing {
            return;
        }
        if self.registering
            && !self.registered
            && !self
                .requests
                .iter()
                .any(|r| matches!(r.purpose, Purpose::Register))
        {
            self.push_front(Purpose::Register, now);
        }
        if let (true, Some(at), Some(interval)) = (self.registered, self.next_keepalive, self.interval) {
            if now >= at {
                if !self
                    .requests
                    .iter()
                    .any(|r| matches!(r.purpose, Purpose::KeepAlive))
                {
                    self.push_back(Purpose::KeepAlive, now);
                }
                self.next_keepalive = Some(now + interval);
            }
        }
        if self.registered {
            self.fill_sync_window(now);
        }
    }

    /// Packs waiting announces and withdrawals into datagrams, up to
    /// [`SYNC_WINDOW`] in flight, never touching a file that is in flight.
    fn fill_sync_window(&mut self, now: Instant) {
        let mut in_flight = 0;
        let mut busy: HashSet<FileId> = HashSet::new();
        for r in &self.requests {
            match &r.purpose {
                Purpose::Announce(ids, _) => busy.extend(ids.iter().copied()),
                Purpose::Withdraw(ids) => busy.extend(ids.iter().copied()),
                _ => continue,
            }
            in_flight += 1;
        }
        while in_flight < SYNC_WINDOW {
            let purpose = if let Some(ids) = self.withdraw_page(&busy) {
                busy.extend(ids.iter().copied());
                Purpose::Withdraw(ids)
            } else if let Some((ids, files)) = self.announce_page(&busy) {
                busy.extend(ids.iter().copied());
                Purpose::Announce(ids, files)
            } else {
                break;
            };
            self.push_back(purpose, now);
            in_flight += 1;
        }
    }

    fn withdraw_page(&mut self, busy: &HashSet<FileId>) -> Option<Vec<FileId>> {
        let mut page = Page::new();
        for id in self.unsynced_withdraw.iter().filter(|id| !busy.contains(*id)) {
            if page.try_push(*id).is_err() {
                break;
            }
        }
        let ids = page.into_items();
        for id in &ids {
            self.unsynced_withdraw.remove(id);
        }
        (!ids.is_empty()).then_some(ids)
    }

    /// The next page of entries to announce, with their ids.
    fn announce_page(&mut self, busy: &HashSet<FileId>) -> Option<(Vec<FileId>, Vec<FileEntry>)> {
        let mut page = Page::new();
        let mut ids = Vec::new();
        let mut taken = Vec::new();
        for id in self.unsynced_announce.iter().filter(|id| !busy.contains(*id)) {
            let Some(entry) = self.files.get(id) else {
                taken.push(*id);
                continue;
            };
            if page.try_push(entry.clone()).is_err() {
                if page.is_empty() {
                    // Cannot happen for a valid name (at most 255 bytes);
                    // drop it rather than stall every later file.
                    taken.push(*id);
                }
                break;
            }
            ids.push(*id);
            taken.push(*id);
        }
        for id in &taken {
            self.unsynced_announce.remove(id);
        }
        let files = page.into_items();
        (!files.is_empty()).then_some((ids, files))
    }

    /// True when an announce round is open and nothing of it is left.
    fn round_done(&self) -> bool {
        self.round.is_some()
            && self.registered
            && self.unsynced_announce.is_empty()
            && !self
                .requests
                .iter()
                .any(|r| matches!(r.purpose, Purpose::Announce(..)))
    }

    fn finish_round(&mut self, events: &mut Vec<LinkEvent>) {
        if self.round_done() {
            if self.round == Some(false) {
                events.push(LinkEvent::Announced {
                    files: self.files.len(),
                });
            }
            self.round = None;
        }
    }

    fn sendable(&self, r: &Pending, now: Instant) -> bool {
        let conn = self.conn.is_some_and(|c| now < c.expires_at);
        match r.purpose {
            Purpose::Register | Purpose::Disconnect => conn,
            // Queries wait while an announce round is open (after every
            // registration, and after every change to what we share), so
            // an answer always counts what we announced, even the first
            // one after a tracker restart or at start.
            // A reader's lists and finds need only the connection id.
            _ if r.purpose.is_query() && !self.registering => conn,
            _ if r.purpose.is_query() => conn && self.registered && self.round.is_none(),
            _ => conn && self.registered,
        }
    }

    fn body(&self, purpose: &Purpose) -> RequestBody {
        match purpose {
            Purpose::Register => RequestBody::Register {
                username: self.username.clone(),
                port: self.port,
                role: self.role,
                secret: self.secret,
            },
            Purpose::KeepAlive => RequestBody::KeepAlive,
            Purpose::Announce(_, files) => RequestBody::Announce { files: files.clone() },
            Purpose::Withdraw(ids) => RequestBody::Withdraw { ids: ids.clone() },
            Purpose::ListPeers(g) => RequestBody::ListPeers {
                cursor: g.cursor,
                member: self.registering,
            },
            Purpose::ListFiles(g) => RequestBody::ListFiles {
                cursor: g.cursor,
                member: self.registering,
            },
            Purpose::GetPeers(id) => RequestBody::GetPeers { id: *id },
            Purpose::Find(query, g) => RequestBody::FindFiles {
                query: query.clone(),
                cursor: g.cursor,
                member: self.registering,
            },
            Purpose::ChangeUsername(name) => RequestBody::ChangeUsername {
                username: name.clone(),
            },
            Purpose::Disconnect => RequestBody::Disconnect,
        }
    }

    fn start_handshake(&mut self, now: Instant) {
        let tx = self.fresh_tx();
        self.handshake = Some(Handshake {
            tx,
            sends: 0,
            awaiting: false,
            due: now,
            sent_at: now,
        });
    }

    /// While a person (or a download) waits for an answer, the handshake
    /// in flight is retried within [`WAITED_HANDSHAKE`] of its last send
    /// rather than after its backoff, which grows to [`MAX_BACKOFF`].
    fn hurry_handshake(&mut self) {
        let waited = self
            .requests
            .iter()
            .any(|r| r.purpose.is_query() || matches!(r.purpose, Purpose::ChangeUsername(_)));
        if let Some(h) = self.handshake.as_mut().filter(|h| h.awaiting && waited) {
            h.due = h.due.min(h.sent_at + WAITED_HANDSHAKE);
        }
    }

    /// A random transaction id no outstanding request uses.
    fn fresh_tx(&mut self) -> u32 {
        loop {
            let tx = self.rng.next_u64() as u32;
            let used = self.handshake.as_ref().is_some_and(|h| h.tx == tx)
                || self.requests.iter().any(|r| r.tx == tx);
            if !used {
                return tx;
            }
        }
    }

    fn new_pending(&mut self, purpose: Purpose, due: Instant) -> Pending {
        Pending {
            tx: self.fresh_tx(),
            purpose,
            sends: 0,
            sends_on_conn: 0,
            awaiting: false,
            due,
            bounces: 0,
        }
    }

    fn push_back(&mut self, purpose: Purpose, now: Instant) {
        let p = self.new_pending(purpose, now);
        self.requests.push(p);
    }

    /// Registration goes first: everything else waits for it.
    fn push_front(&mut self, purpose: Purpose, now: Instant) {
        let p = self.new_pending(purpose, now);
        self.requests.insert(0, p);
    }

    /// The next page of a paged request: sent at once, as a new request.
    fn requeue_as(&mut self, mut req: Pending, purpose: Purpose, now: Instant) {
        req.purpose = purpose;
        self.requeue(req, now);
    }

    /// Puts a request back as new (fresh tx, no sends), due at `due`.
    fn requeue(&mut self, mut req: Pending, due: Instant) {
        req.tx = self.fresh_tx();
        req.sends = 0;
        req.sends_on_conn = 0;
        req.awaiting = false;
        req.due = due;
        if matches!(req.purpose, Purpose::Register) {
            self.requests.insert(0, req);
        } else {
            self.requests.push(req);
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.closing = true;
        self.handshake = None;
        self.requests.clear();
        self.next_keepalive = None;
        self.round = None;
    }

    fn defer(&mut self, event: LinkEvent) {
        if self.deferred.len() < MAX_DEFERRED {
            self.deferred.push(event);
        }
    }
}

/// Wait after the `sends`-th send: 0.5 s doubling, capped at [`MAX_BACKOFF`].
fn backoff(sends: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << sends.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// The cursor of the next page to ask for, if any: it must move forward
/// (a tracker repeating a cursor would loop us forever) and the caps allow.
fn next_cursor<C: Ord>(cursor: C, next: Option<C>, pages: u32, room: bool) -> Option<C> {
    next.filter(|n| *n > cursor && room && pages + 1 < MAX_PAGES)
}

fn error_text(code: ErrorCode, message: &str) -> String {
    format!("refused ({code:?}): {}", names::escape(message))
}

#[cfg(test)]
#[path = "../../sim/tracker_link_tests.rs"]
mod tests;
