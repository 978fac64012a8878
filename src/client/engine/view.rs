//! What a frontend may read of the engine: [`EngineView`], plain
//! snapshots, so frontends can be tested against a hand-made view.

use super::*;
use crate::names;

/// A download as the frontend sees it.
#[derive(Debug, Clone)]
pub struct DownloadView {
    pub id: FileId,
    /// The file's name once known (escaped), else what was asked for.
    pub name: String,
    pub done: u64,
    /// Of `done`, the bytes fetched by this run (not found on disk).
    pub fetched: u64,
    /// 0 until the metadata is known.
    pub total: u64,
    /// The metadata is in (until then `total` means nothing).
    pub has_meta: bool,
    pub peers: usize,
    pub started: Instant,
    pub state: DownloadState,
}

/// What a download is doing, for the downloads view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadState {
    /// Waiting for the file's metadata from a peer.
    Metadata,
    /// Hashing an earlier run's `.part` file to keep its good chunks.
    Rechecking,
    /// Fetching chunks.
    Fetching,
    /// Every piece is in: the file is being put in place (or, BitTorrent,
    /// its whole-file SHA-256 finished).
    Verifying,
}

/// A shared file as the frontend sees it.
#[derive(Debug, Clone)]
pub struct SharedView {
    pub id: FileId,
    pub name: String,
    pub size: u64,
    pub chunks: usize,
    pub sha256: crate::meta::Hash,
    /// Peers fetching from it right now.
    pub leechers: usize,
    pub uploaded: u64,
}

/// The engine's state, read-only.
pub trait EngineView {
    /// The TCP address peers reach us on.
    fn listen_addr(&self) -> SocketAddr;
    fn tracker(&self) -> SocketAddr;
    /// Our name on the network (empty until joined).
    fn username(&self) -> &str;
    /// Shared files still waiting to be indexed, and their bytes.
    fn indexing(&self) -> (usize, u64);
    /// Files shared (ready to serve).
    fn shared_count(&self) -> usize;
    /// Whether indexing is done and the tracker knows every shared file.
    fn is_ready(&self) -> bool;
    /// The downloads in progress, oldest first.
    fn downloads(&self) -> Vec<DownloadView>;
    /// The shared files, by name, with who is fetching them now.
    fn shared(&self) -> Vec<SharedView>;
    /// Downloads an earlier run left unfinished (not the running ones):
    /// id, name (escaped), chunks verified, chunks in all.
    fn unfinished(&self) -> Vec<(FileId, String, usize, usize)>;
}

impl EngineView for Engine {
    fn listen_addr(&self) -> SocketAddr {
        self.cfg.listen_addr
    }

    fn tracker(&self) -> SocketAddr {
        self.cfg.tracker
    }

    fn username(&self) -> &str {
        self.link.username()
    }

    fn indexing(&self) -> (usize, u64) {
        self.library.pending()
    }

    fn shared_count(&self) -> usize {
        self.library.len()
    }

    fn is_ready(&self) -> bool {
        Engine::is_ready(self)
    }

    fn downloads(&self) -> Vec<DownloadView> {
        let native = self.downloads.iter().map(|(_, d)| DownloadView {
            id: d.id,
            name: d.display_name(),
            done: d.verified_bytes,
            fetched: d.verified_bytes - d.resumed_bytes,
            total: d.meta.as_ref().map_or(0, |m| m.size),
            has_meta: d.meta.is_some(),
            peers: d.peers.connected(),
            started: d.started,
            state: match d.phase {
                Phase::Meta => DownloadState::Metadata,
                Phase::Recheck => DownloadState::Rechecking,
                Phase::Chunks => DownloadState::Fetching,
                Phase::Done(_) | Phase::Failed(_) => DownloadState::Verifying,
            },
        });
        // BitTorrent downloads go by their v2 info hash.
        let bt = self.bt.iter().map(|(_, d)| DownloadView {
            id: d.key,
            name: d.display_name(),
            done: d.verified_bytes,
            fetched: d.verified_bytes - d.resumed_bytes,
            total: d.wanted_bytes(),
            has_meta: d.torrent.is_some(),
            peers: d.peers.connected(),
            started: d.started,
            state: if d.ready() {
                DownloadState::Fetching
            } else {
                DownloadState::Metadata
            },
        });
        let mut all: Vec<DownloadView> = native.chain(bt).collect();
        all.sort_by_key(|d| d.started);
        all
    }

    fn shared(&self) -> Vec<SharedView> {
        self.library
            .files()
            .map(|f| SharedView {
                id: f.id,
                name: f.meta.name.clone(),
                size: f.meta.size,
                chunks: f.meta.chunks.len(),
                sha256: f.meta.sha256,
                leechers: self
                    .conns
                    .values()
                    .filter(|c| matches!(&c.kind, Kind::Serve(s) if s.file == Some(f.id) && !s.is_idle()))
                    .count(),
                uploaded: self.uploaded.get(&f.id).copied().unwrap_or(0),
            })
            .collect()
    }

    fn unfinished(&self) -> Vec<(FileId, String, usize, usize)> {
        self.storage
            .unfinished()
            .into_iter()
            .map(|st| {
                (
                    st.meta.id(),
                    names::escape(&st.meta.name),
                    st.count(),
                    st.meta.chunks.len(),
                )
            })
            .filter(|(id, ..)| !self.downloads.iter().any(|(_, d)| d.id == *id))
            .collect()
    }
}
