//! The client engine: every decision the client makes, as a pure state
//! machine in the style of quinn-proto and smoltcp. It owns no socket and
//! reads no clock: the caller (the mio reactor in [`crate::client::io`], or
//! the simulation in tests) feeds it what happened and executes what it
//! asks for.
//!
//! In: [`Engine::command`] (from a frontend), [`Engine::on_inbound`],
//! [`Engine::on_connected`], [`Engine::on_io`] (a connection is readable or
//! writable: the engine reads and writes through the [`Stream`] it is
//! handed), [`Engine::on_closed`] (the transport ended a connection),
//! [`Engine::on_datagram`] (from the tracker), [`Engine::handle_timeout`].
//! Out: [`Engine::poll_action`] ([`Action`]: connect, drive again, close,
//! notify the frontend, exit), [`Engine::poll_transmit`] (datagrams for
//! the tracker) and [`Engine::poll_timeout`] (when to call again).
//!
//! Invariants:
//! - Time comes only as the `now` arguments; randomness only from the
//!   seed in [`EngineConfig`]: one seed and one sequence of inputs give
//!   one sequence of actions.
//! - Connection ids ([`ConnId`]) are never reused, so an event for a
//!   connection the engine already closed is recognised and ignored.
//! - A connection's state is gone from the engine as soon as it asks for
//!   [`Action::Close`]; the caller drops the socket when it gets the action.
//! - Downloads' bytes go through [`storage::Storage`]; shared files are
//!   read by [`library::Library`] and [`serve`] (by descriptor, never by a
//!   name a peer chose).
//!
//! Rooms: [`transfer`] holds what a download is whatever protocol its
//! peers speak (pieces, picker, peer set, storage, resume records);
//! [`native`] is the project's own peer protocol and [`bittorrent`] is
//! BitTorrent v2 (an inbound connection's first byte tells the two apart);
//! neither imports from the other. Beside them: [`library`] (what we
//! share), [`tracker_link`] (the native tracker) and the engine's glue:
//! `conns` (connections), `transfers` (downloads' lifecycle), `sharing`,
//! `tracker`, `view` (snapshots for frontends).

pub mod bittorrent;
pub mod library;
pub mod native;
pub mod tracker_link;
pub mod transfer;

mod conns;
mod sharing;
mod tracker;
mod transfers;
mod view;

pub use tracker_link::RequestKind;
pub use transfer::conn_end::ConnEnd;
pub use view::{DownloadState, DownloadView, EngineView, SharedView};

use self::library::Library;
use self::native::download::{Download, Phase};
use self::native::fetch::Fetch;
use self::native::serve::Serve;
use self::native::{download, fetch, serve};
use self::tracker_link::{LinkEvent, TrackerLink};
use self::transfer::storage::Storage;
use self::transfer::{conn_end, storage};
use crate::meta::FileMeta;
use crate::rand::Rng;
use crate::wire::tracker::{ClientSecret, FileInfo, FileQuery, PeerInfo, Role};
use crate::wire::FileId;
use log::warn;
use slab::Slab;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a connection's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Blocked on the socket: the next readiness event resumes it.
    Idle,
    /// Stopped by its budget with work left: drive it again soon, since
    /// edge-triggered readiness will not report it again.
    Again,
}

/// A byte stream to a peer: a TCP socket, or a pipe in tests.
pub trait Stream: Read + Write {}
impl<T: Read + Write + ?Sized> Stream for T {}

/// A peer connection's id: handed out by the engine, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Bytes that must move within a timeout (unless a whole request or
/// answer does first) for a connection to count as making progress: 16 KiB
/// per 10 s at the default request timeout, a floor no honest peer comes
/// near, and one a trickle never reaches.
pub const MIN_PROGRESS: u64 = 16 << 10;
/// Bytes a connection may move in one turn before others get theirs.
const TURN_BUDGET: usize = 4 << 20;
/// Bytes of the shared library hashed per turn.
const INDEX_BUDGET: u64 = 8 << 20;
/// Bytes of a download hashed for its whole-file check per turn.
const WHOLE_BUDGET: u64 = 16 << 20;
/// Most connections one download opens.
pub const MAX_CONNS_PER_DOWNLOAD: usize = 16;
/// Most connections a download opens while it looks for its metadata:
/// hundreds of peers that accept connections and never answer must be
/// sifted quickly, and a connection's buffers cost memory only once data
/// fills them. Trimmed to [`MAX_CONNS_PER_DOWNLOAD`] when the metadata
/// arrives. Enough that a tracker's 200-peer answer of silent peers, the
/// honest one last, is gone through in four rounds of first-answer
/// timeouts (issue 19).
pub(crate) const SEARCH_CONNS: usize = 4 * MAX_CONNS_PER_DOWNLOAD;
/// Most downloads at once.
pub const MAX_DOWNLOADS: usize = 16;
/// How long to wait for the tracker to acknowledge a disconnect.
const GOODBYE_WAIT: Duration = Duration::from_secs(3);
/// Peer re-query period while a download has peers, and while it has none.
/// Other downloaders of the same file appear at the tracker once they have
/// its metadata, so the first re-query comes soon after ours
/// ([`REQUERY_AFTER_META`]).
const REQUERY_BUSY: Duration = Duration::from_secs(5);
const REQUERY_AFTER_META: Duration = Duration::from_millis(300);
const REQUERY_IDLE: Duration = Duration::from_secs(2);
/// Re-query period while no peer has given a download its metadata: the
/// tracker answers with a random sample, and when silent peers crowd the
/// swarm the honest ones turn up only in some samples.
const REQUERY_SEARCH: Duration = Duration::from_secs(1);
/// How often a download records its verified chunks (each time syncing
/// its data first).
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// A download with no peer for this long says it is waiting.
const WAITING_AFTER: Duration = Duration::from_secs(3);
/// A connection that made no progress for this long is the first to go
/// when the inbound slots are full.
const UNPRODUCTIVE_AFTER: Duration = Duration::from_secs(5);
/// How often downloads are looked at for upkeep (re-queries, saves,
/// giving up); connection timers have deadlines of their own.
const UPKEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the shared directory is listed again for new, changed and
/// removed files (a listing, no hashing, unless something changed).
const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// A deadline that never comes (after the exit was asked for).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Most actions waiting to be taken; the caller drains them after every
/// call, so this is only reached by a bug, which is logged.
const MAX_ACTIONS: usize = 1 << 16;

/// What the engine needs to know, free of command-line types.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The tracker (for messages; the caller sends the datagrams).
    pub tracker: SocketAddr,
    /// The TCP address peers reach us on.
    pub listen_addr: SocketAddr,
    /// `None`: wait for [`Command::Join`] before talking to the tracker.
    pub username: Option<String>,
    /// The client's secret, presented with the username (see
    /// [`crate::wire::tracker::ClientSecret`]).
    pub secret: ClientSecret,
    /// Only lists and finds (`--list`, `--peers`): never registers, so it
    /// takes nobody's name or place.
    pub read_only: bool,
    /// Whether we share files (the tracker hears "seeder").
    pub seed: bool,
    pub max_inbound: usize,
    /// An inbound connection with nothing to do for this long is closed.
    pub idle_timeout: Duration,
    /// A connect, or the oldest request, without progress for this long
    /// ends the connection.
    pub request_timeout: Duration,
    /// A download with no connected peer for this long fails; `None`
    /// waits as long as the user likes.
    pub give_up_after: Option<Duration>,
    /// Seed of every random choice (tie-breaks, transaction ids).
    pub rng_seed: u64,
}

/// Something the engine reports to the frontend.
#[derive(Debug, Clone)]
pub enum Event {
    /// Indexing is done, the tracker knows us and has acknowledged every
    /// file we share (again, after a later share or re-registration).
    Ready,
    PeerList(Vec<PeerInfo>),
    FileList(Vec<FileInfo>),
    /// The files the tracker's index matched for a [`Command::Find`].
    Found {
        query: FileQuery,
        files: Vec<FileInfo>,
    },
    /// A download was verified and moved into place.
    DownloadDone {
        meta: FileMeta,
        path: PathBuf,
    },
    /// A multi-file torrent was verified and its folder moved into place
    /// (`name` is unchecked: escape it to print).
    FolderDone {
        name: String,
        files: usize,
        size: u64,
        path: PathBuf,
    },
    /// A download stopped for good; `label` and `why` are safe to print.
    DownloadFailed {
        label: String,
        why: String,
    },
    /// A download picked up an earlier run's verified chunks (from its
    /// record, or by re-checking a `.part` file without one).
    Resumed {
        name: String,
        verified: usize,
        total: usize,
        rechecked: bool,
    },
    /// A finished download is now shared.
    Shared {
        name: String,
    },
    /// A download was cancelled; its `.part` file stays, to resume
    /// (`kept`: there is one, i.e. the metadata had arrived).
    DownloadCancelled {
        name: String,
        kept: bool,
        /// `cancel --delete`: the `.part` file and record were deleted.
        deleted: bool,
    },
    /// A file is no longer shared (withdrawn from the tracker); escaped.
    Unshared {
        name: String,
    },
    /// The shared directory was listed again: `queued` new or changed
    /// files are being indexed, `gone` files are no longer shared. Timer
    /// rescans report only when they found something; `asked` is true for
    /// a [`Command::Rescan`].
    Rescanned {
        queued: usize,
        gone: usize,
        asked: bool,
    },
    /// The tracker accepted a new username.
    UsernameChanged(String),
    /// A tracker request failed; `error` is safe to print.
    TrackerFailed {
        what: RequestKind,
        error: String,
    },
    TrackerUnreachable,
    TrackerReachable,
    /// Something worth telling the user that changes nothing (a skipped
    /// file, for instance); safe to print.
    Warning(String),
    /// SIGINT or SIGTERM arrived (reported by the reactor).
    Signal,
}

/// Something a frontend asks the engine to do.
#[derive(Debug, Clone)]
pub enum Command {
    ListPeers,
    ListFiles,
    /// Files by name or id prefix, from the tracker's index: [`Event::Found`].
    Find(FileQuery),
    /// Download a file; `label` names it until its metadata is known.
    /// `listed` is what the tracker's file list said of it, when the user
    /// picked it from there: the metadata must agree.
    Download {
        id: FileId,
        label: String,
        listed: Option<Listed>,
        /// `--output NAME`: the name it is saved as (else its own).
        output: Option<String>,
    },
    /// Share a verified download: hard-linked into the shared directory
    /// when possible, else shared where it is; never copied.
    Share {
        meta: FileMeta,
        path: PathBuf,
    },
    ChangeUsername(String),
    /// Stop a running download, keeping its `.part` file and record so a
    /// later download of the same file resumes it.
    Cancel(FileId),
    /// Stop a running download and delete its `.part` file and record
    /// (`cancel --delete`).
    CancelDelete(FileId),
    /// Stop sharing a file: withdrawn from the tracker, left on disk.
    Unshare(FileId),
    /// List the shared directory again now (it is also done every
    /// [`RESCAN_EVERY`]).
    Rescan,
    /// Download a BitTorrent torrent, from its trackers' peers and
    /// `peers`; of a multi-file torrent only the files matching an `only`
    /// pattern (none: all).
    BtDownload {
        source: bittorrent::fetch::BtSource,
        peers: Vec<SocketAddr>,
        only: Vec<String>,
    },
    /// Seed `path` (a file, or a multi-file torrent's folder) as
    /// `torrent`; `trees` are its files' trees where known (per entry of
    /// its layout: hash requests for them are answered).
    BtShare {
        torrent: Box<crate::bt::metainfo::Metainfo>,
        trees: Vec<Option<crate::bt::merkle::Tree>>,
        path: PathBuf,
    },
    /// Register with the tracker under this name (the interactive client's
    /// first run, once the user picked one); a rename afterwards.
    Join(String),
    /// Leave the network (withdrawing our files) and exit with `code`.
    Quit {
        code: u8,
    },
}

/// A file as the tracker listed it (name and size, from the announcer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// What the engine asks its caller to do.
#[derive(Debug)]
pub enum Action {
    /// Open a TCP connection to `addr`; report with
    /// [`Engine::on_connected`] or [`Engine::on_closed`].
    Connect {
        conn: ConnId,
        addr: SocketAddr,
    },
    /// The connection has work that no readiness event will announce:
    /// call [`Engine::on_io`] for it.
    Drive(ConnId),
    /// Drop the connection's socket (its state is gone already).
    Close(ConnId),
    Notify(Event),
    /// Everything is done: exit with this code.
    Exit(u8),
}

struct Conn {
    addr: SocketAddr,
    kind: Kind,
    /// When an inbound connection last made progress (a request in, or
    /// [`MIN_PROGRESS`] bytes out): its idle timeout counts from here.
    last_active: Instant,
}

enum Kind {
    Serve(Serve),
    Fetch(Fetch),
    BtFetch(bittorrent::fetch::BtFetch),
    /// An inbound connection whose first byte tells which protocol it
    /// speaks (only while we seed BitTorrent torrents).
    Sniff,
    BtServe(bittorrent::serve::BtServe),
}

impl Kind {
    /// Whether the peer connected to us (it holds an inbound slot).
    fn is_inbound(&self) -> bool {
        matches!(self, Kind::Serve(_) | Kind::Sniff | Kind::BtServe(_))
    }
}

/// The client engine. See the module header.
pub struct Engine {
    cfg: EngineConfig,
    link: TrackerLink,
    library: Library,
    storage: Box<dyn Storage>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    downloads: Slab<Download>,
    /// Shared by every download: bounds their metadata buffers together.
    meta_budget: download::MetaBudget,
    inbound: usize,
    actions: VecDeque<Action>,
    link_events: Vec<LinkEvent>,
    whole_buf: Vec<u8>,
    next_upkeep: Instant,
    /// Files sent to the tracker and not yet acknowledged.
    announce_pending: bool,
    /// `Event::Ready` was sent and nothing has changed since.
    ready_told: bool,
    /// Bytes of chunks served per shared file.
    uploaded: HashMap<FileId, u64>,
    /// False until a username is known (the interactive client's first
    /// run): the tracker hears nothing before that.
    joined: bool,
    rng: Rng,
    /// Exit code and deadline once leaving.
    exit: Option<(u8, Instant)>,
    /// A refused inbound connection was logged (once per burst).
    refused_logged: bool,
    /// When the shared directory is next listed again.
    next_rescan: Instant,
    /// BitTorrent downloads.
    bt: Slab<bittorrent::download::BtDownload>,
    /// Our BitTorrent peer id (random per run).
    peer_id: [u8; 20],
    /// Torrents we seed.
    bt_shared: Vec<bittorrent::serve::BtShared>,
    /// Finished BitTorrent downloads not shared yet (at most
    /// [`MAX_DOWNLOADS`], the oldest forgotten first).
    bt_finished: Vec<bittorrent::downloads::Finished>,
}

impl Engine {
    /// An engine sharing `library` (empty when not seeding) and keeping
    /// downloads in `storage`.
    pub fn new(cfg: EngineConfig, library: Library, storage: Box<dyn Storage>, now: Instant) -> Engine {
        let mut rng = Rng::seeded(cfg.rng_seed);
        let joined = cfg.username.is_some() || cfg.read_only;
        let username = cfg.username.clone().unwrap_or_default();
        let role = if cfg.seed { Role::Seeder } else { Role::Leecher };
        let link_rng = Rng::seeded(rng.next_u64());
        let link = if cfg.read_only {
            TrackerLink::reader(link_rng, now)
        } else {
            TrackerLink::new(username, cfg.secret, cfg.listen_addr.port(), role, link_rng, now)
        };
        let mut peer_id = *b"-PY0100-000000000000";
        for b in &mut peer_id[8..] {
            *b = b'0' + (rng.next_u64() % 10) as u8;
        }
        Engine {
            cfg,
            link,
            library,
            storage,
            conns: BTreeMap::new(),
            next_conn: 0,
            downloads: Slab::new(),
            meta_budget: download::MetaBudget::new(download::META_MEMORY),
            inbound: 0,
            actions: VecDeque::new(),
            link_events: Vec::new(),
            whole_buf: vec![0; 256 << 10],
            next_upkeep: now,
            announce_pending: false,
            ready_told: false,
            uploaded: HashMap::new(),
            joined,
            rng,
            exit: None,
            refused_logged: false,
            next_rescan: now + RESCAN_EVERY,
            bt: Slab::new(),
            peer_id,
            bt_shared: Vec::new(),
            bt_finished: Vec::new(),
        }
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn act(&mut self, action: Action) {
        if self.actions.len() >= MAX_ACTIONS {
            warn!(
                "engine: {} actions not taken; dropping {action:?}",
                self.actions.len()
            );
            return;
        }
        self.actions.push_back(action);
    }

    fn notify(&mut self, event: Event) {
        self.act(Action::Notify(event));
    }

    /// Does what a frontend asked.
    pub fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::ListPeers => self.query(tracker_link::Query::ListPeers, now),
            Command::ListFiles => self.query(tracker_link::Query::ListFiles, now),
            Command::Find(q) => self.query(tracker_link::Query::Find(q), now),
            Command::Download {
                id,
                label,
                listed,
                output,
            } => self.start_download(id, label, listed, output, now),
            Command::Share { meta, path } => self.share(meta, path, now),
            Command::ChangeUsername(name) => self.link.change_username(name, now),
            Command::Cancel(id) => self.cancel_download(id, false, now),
            Command::CancelDelete(id) => self.cancel_download(id, true, now),
            Command::Unshare(id) => self.unshare(id, now),
            Command::Rescan => self.rescan(true, now),
            Command::BtDownload { source, peers, only } => self.start_bt(source, peers, only, now),
            Command::BtShare { torrent, trees, path } => self.bt_share(*torrent, trees, path, now),
            Command::Join(name) => self.join(name, now),
            Command::Quit { code } => self.quit(code, now),
        }
        self.after(now);
    }

    /// Runs every timer that is due and whatever slice of background work
    /// (indexing, whole-file checks) fits in one turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((code, deadline)) = self.exit {
            if now >= deadline {
                let ids: Vec<ConnId> = self.conns.keys().copied().collect();
                for id in ids {
                    self.close(id, ConnEnd::Finished, now);
                }
                self.act(Action::Exit(code));
                // Said once; the engine has nothing left to do.
                self.exit = Some((code, deadline + FOREVER));
                return;
            }
        }
        if self.joined {
            self.link.handle_timeout(now, &mut self.link_events);
        }
        self.conn_timers(now);
        if now >= self.next_upkeep {
            self.next_upkeep = now + UPKEEP_EVERY;
            self.upkeep(now);
            self.bt_upkeep(now);
        }
        if now >= self.next_rescan && self.exit.is_none() {
            self.next_rescan = now + RESCAN_EVERY;
            self.rescan(false, now);
        }
        self.step_library(now);
        self.step_downloads(now);
        self.after(now);
    }

    /// When [`Engine::handle_timeout`] is next needed: `now` while there is
    /// background work.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let busy =
            self.library.is_indexing() || self.downloads.iter().any(|(_, d)| d.phase == Phase::Recheck);
        if busy {
            return now;
        }
        // Upkeep is for downloads; without any the engine sleeps until a
        // connection's or the tracker link's deadline.
        let mut deadline = if self.downloads.is_empty() && self.bt.is_empty() {
            now + FOREVER
        } else {
            self.next_upkeep
        };
        if let Some(d) = self.link.poll_deadline() {
            deadline = deadline.min(d);
        }
        if let Some(d) = self.bt_tracker_deadline() {
            deadline = deadline.min(d);
        }
        if let Some((_, d)) = self.exit {
            deadline = deadline.min(d);
        } else {
            deadline = deadline.min(self.next_rescan);
        }
        for (at, _) in self.conns.values().filter_map(|c| self.conn_deadline(c)) {
            deadline = deadline.min(at);
        }
        deadline
    }

    /// Bookkeeping after every input: what the tracker link reported, and
    /// whether we became ready.
    fn after(&mut self, now: Instant) {
        self.handle_link_events(now);
        if !self.ready_told && self.is_ready() {
            self.ready_told = true;
            self.notify(Event::Ready);
        }
    }

    fn is_ready(&self) -> bool {
        self.joined && self.link.is_registered() && !self.library.is_indexing() && !self.announce_pending
    }

    fn query(&mut self, q: tracker_link::Query, now: Instant) {
        let what = match q {
            tracker_link::Query::ListPeers => RequestKind::ListPeers,
            tracker_link::Query::ListFiles => RequestKind::ListFiles,
            tracker_link::Query::GetPeers(_) => RequestKind::GetPeers,
            tracker_link::Query::Find(_) => RequestKind::FindFiles,
        };
        if let Err(error) = self.link.query(q, now) {
            self.notify(Event::TrackerFailed { what, error });
        }
    }
}

#[cfg(test)]
mod tests {
    //! The engine alone, driven by hand: no socket, no clock.
    use super::storage::mem::MemStorage;
    use super::*;

    fn engine(max_inbound: usize) -> (Engine, Instant) {
        let now = Instant::now();
        let cfg = EngineConfig {
            tracker: SocketAddr::from(([127, 0, 0, 1], 17380)),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            username: Some("me".into()),
            secret: [7; 16],
            read_only: false,
            seed: false,
            max_inbound,
            idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(3),
            give_up_after: Some(Duration::from_secs(5)),
            rng_seed: 1,
        };
        (
            Engine::new(cfg, Library::empty(), Box::new(MemStorage::default()), now),
            now,
        )
    }

    fn actions(e: &mut Engine) -> Vec<Action> {
        std::iter::from_fn(|| e.poll_action()).collect()
    }

    #[test]
    fn inbound_connections_past_the_limit_are_refused_and_idle_ones_closed() {
        let (mut e, now) = engine(2);
        let peer = |p| SocketAddr::from(([10, 0, 0, 1], p));
        let a = e.on_inbound(peer(1), now).unwrap();
        let b = e.on_inbound(peer(2), now).unwrap();
        assert!(e.on_inbound(peer(3), now).is_none(), "the limit is 2");
        assert_ne!(a, b);
        // Nothing asked of them: idle, closed at the idle timeout.
        let closed = |e: &mut Engine| -> Vec<ConnId> {
            actions(e)
                .into_iter()
                .filter_map(|a| match a {
                    Action::Close(c) => Some(c),
                    _ => None,
                })
                .collect()
        };
        e.handle_timeout(now + Duration::from_millis(9_999));
        assert!(closed(&mut e).is_empty());
        assert!(e.poll_timeout(now + Duration::from_millis(9_999)) <= now + Duration::from_secs(10));
        e.handle_timeout(now + Duration::from_secs(10));
        assert_eq!(closed(&mut e), vec![a, b]);
        assert!(e.on_inbound(peer(3), now).is_some(), "room again");
    }

    /// Issue 11, defect 12: with the tracker silent, a download's peer
    /// queries fail one after another; the user hears once that the
    /// tracker does not answer, not of every failed query.
    #[test]
    fn failed_peer_queries_of_a_download_are_not_reported() {
        let (mut e, now) = engine(8);
        let label = "x".into();
        e.command(
            Command::Download {
                id: [7; 32],
                label,
                listed: None,
                output: None,
            },
            now,
        );
        let (mut t, mut events) = (now, Vec::new());
        let mut out = Vec::new();
        while t < now + Duration::from_secs(40) {
            t = e.poll_timeout(t).max(t + Duration::from_millis(1));
            e.handle_timeout(t);
            // Sent into the void: the tracker never answers.
            while e.poll_transmit(t, &mut out) {
                out.clear();
            }
            events.extend(actions(&mut e).into_iter().filter_map(|a| match a {
                Action::Notify(ev) => Some(ev),
                _ => None,
            }));
        }
        let failed: Vec<&Event> = events
            .iter()
            .filter(|ev| matches!(ev, Event::TrackerFailed { .. }))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        let unreachable = events.iter().filter(|ev| matches!(ev, Event::TrackerUnreachable));
        assert_eq!(unreachable.count(), 1);
    }

    #[test]
    fn a_download_with_no_peer_fails_after_the_wait_and_a_repeat_is_ignored() {
        let (mut e, now) = engine(8);
        let id = [7; 32];
        for _ in 0..2 {
            let label = "x".into();
            e.command(
                Command::Download {
                    id,
                    label,
                    listed: None,
                    output: None,
                },
                now,
            );
        }
        assert_eq!(e.downloads().len(), 1);
        let mut t = now;
        let mut failed = None;
        while failed.is_none() && t < now + Duration::from_secs(30) {
            t = e.poll_timeout(t).max(t + Duration::from_millis(1));
            e.handle_timeout(t);
            failed = actions(&mut e).into_iter().find_map(|a| match a {
                Action::Notify(Event::DownloadFailed { why, .. }) => Some(why),
                _ => None,
            });
        }
        let why = failed.expect("the download never failed");
        assert!(why.contains("no peer has it"), "{why}");
        assert!(
            t >= now + Duration::from_secs(5),
            "failed before the wait was over"
        );
        assert!(e.downloads().is_empty());
    }

    #[test]
    fn one_host_gets_a_fair_share_of_the_inbound_slots() {
        let (mut e, now) = engine(40);
        let from = |host: u8, port: u16| SocketAddr::from(([10, 0, 0, host], port));
        let per_host = e.per_host();
        assert_eq!(per_host, 10);
        for p in 0..per_host as u16 {
            assert!(e.on_inbound(from(1, p), now).is_some());
        }
        assert!(e.on_inbound(from(1, 999), now).is_none(), "host 1 has its share");
        assert!(e.on_inbound(from(2, 1), now).is_some(), "others still get in");
    }

    #[test]
    fn when_full_the_longest_unproductive_connection_makes_room() {
        let (mut e, now) = engine(2);
        let from = |host: u8| SocketAddr::from(([10, 0, 0, host], 5000));
        let a = e.on_inbound(from(1), now).unwrap();
        let _b = e.on_inbound(from(2), now + Duration::from_secs(1)).unwrap();
        actions(&mut e);
        // Full, and nobody has been unproductive for long: refused.
        assert!(e.on_inbound(from(3), now + Duration::from_secs(2)).is_none());
        // Later: the one that went longest without progress goes.
        let c = e.on_inbound(from(3), now + UNPRODUCTIVE_AFTER + Duration::from_secs(1));
        assert!(c.is_some());
        let closed: Vec<ConnId> = actions(&mut e)
            .into_iter()
            .filter_map(|x| match x {
                Action::Close(id) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(closed, vec![a]);
    }

    #[test]
    fn quit_exits_once_after_the_goodbye_wait() {
        let (mut e, now) = engine(8);
        e.command(Command::Quit { code: 3 }, now);
        let exits = |a: Vec<Action>| a.iter().filter(|a| matches!(a, Action::Exit(3))).count();
        // The tracker never answers the goodbye: the wait bounds it.
        e.handle_timeout(now + GOODBYE_WAIT - Duration::from_millis(1));
        assert_eq!(exits(actions(&mut e)), 0);
        e.handle_timeout(now + GOODBYE_WAIT);
        assert_eq!(exits(actions(&mut e)), 1);
        e.handle_timeout(now + GOODBYE_WAIT * 2);
        assert_eq!(exits(actions(&mut e)), 0, "exit is said once");
    }
}
