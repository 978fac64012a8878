//! The engine's side of BitTorrent downloads: starting one from a torrent
//! or a magnet link (resuming an earlier run's record when there is one),
//! opening and feeding its connections, recording its verified pieces,
//! finishing, failing or cancelling it, and its upkeep.
//!
//! Invariants: a download's working file holds only what the record says
//! is verified or what this run wrote; a download that ends without a
//! verified byte leaves no working file; a finished download is seeded
//! to BitTorrent peers only when the user shares it ([`Command::Share`]).

use crate::bt::merkle::{Hash, Tree};
use crate::bt::metainfo::{InfoHashes, Metainfo};
use crate::bt::select;
use crate::bt::torrent::MAX_INFO_LEN;
use crate::client::engine::bittorrent::download::{key_of, BtDownload, BtPhase};
use crate::client::engine::bittorrent::fetch::{BtFetch, BtReport, BtSource};
use crate::client::engine::bittorrent::serve::{BtShared, Offer, Offers};
use crate::client::engine::transfer::storage::{FolderPlan, PlannedFile};
use crate::client::engine::*;
use crate::meta::hex;
use crate::names;
use log::info;

/// What BitTorrent connections may be served from: the torrents we seed,
/// then the downloads with verified pieces.
pub struct BtOffers<'a> {
    pub shared: &'a Vec<BtShared>,
    pub downloads: &'a Slab<BtDownload>,
}

impl Offers for BtOffers<'_> {
    fn offer(&self, short: &[u8; 20]) -> Option<Offer<'_>> {
        self.shared.offer(short).or_else(|| {
            let mut running = self.downloads.iter().map(|(_, d)| d);
            running
                .find(|d| d.torrent.is_some() && d.is_named_by(short))
                .and_then(BtDownload::offer)
        })
    }
}

/// A finished BitTorrent download the user may still share.
pub struct Finished {
    /// The whole file's SHA-256, as its [`Event::DownloadDone`] says.
    sha256: Hash,
    torrent: Metainfo,
    trees: Vec<Option<Tree>>,
    trackers: Vec<crate::client::engine::bittorrent::tracker::UdpTracker>,
}

impl Engine {
    /// Starts a BitTorrent download from a `.torrent` file or a magnet
    /// link, with `peers` to try besides those its trackers give.
    pub(in crate::client::engine) fn start_bt(
        &mut self,
        source: BtSource,
        peers: Vec<SocketAddr>,
        only: Vec<String>,
        now: Instant,
    ) {
        let (label, torrent, hashes, mut extra, trackers) = match source {
            BtSource::Torrent(bytes) => match Metainfo::from_file_bytes(&bytes) {
                Ok(t) => (
                    names::escape(&t.name),
                    Some(t.clone()),
                    t.hashes,
                    Vec::new(),
                    t.tracker_urls(),
                ),
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
                        .map_or_else(|| hex(&key_of(&m.hashes)[..8]), names::escape);
                    let pe = m.peers.iter().filter_map(|p| p.parse().ok()).collect();
                    (label, None, m.hashes, pe, m.trackers)
                }
                Err(e) => {
                    return self.notify(Event::DownloadFailed {
                        label: "the magnet link".into(),
                        why: e.to_string(),
                    })
                }
            },
        };
        let same = |d: &BtDownload| {
            (hashes.v1.is_some() && d.hashes.v1 == hashes.v1)
                || (hashes.v2.is_some() && d.hashes.v2 == hashes.v2)
        };
        if self.bt.iter().any(|(_, d)| same(d)) {
            return;
        }
        if self.downloads.len() + self.bt.len() >= MAX_DOWNLOADS {
            return self.notify(Event::DownloadFailed {
                label,
                why: format!("at most {MAX_DOWNLOADS} downloads at once"),
            });
        }
        // A magnet download an earlier run recorded needs no peer for its
        // torrent: the record has it (checked against the hash here).
        let torrent = torrent.or_else(|| self.recorded_torrent(&hashes));
        info!(
            "BitTorrent download started: {label} (info hash {})",
            hex(&key_of(&hashes))
        );
        let mut d = BtDownload::new(label, hashes, Rng::seeded(self.rng.next_u64()), now);
        d.only = only;
        extra.extend(peers);
        d.peers.add(&extra, now);
        d.trackers = Self::bt_trackers(&trackers, now);
        let dk = self.bt.insert(d);
        if let Some(t) = torrent {
            self.bt_set_torrent(dk, t);
        }
        self.bt_connect(now);
    }

    /// The torrent named by `hashes` from an earlier run's resume record,
    /// if one has it.
    fn recorded_torrent(&self, hashes: &InfoHashes) -> Option<Metainfo> {
        let key = key_of(hashes);
        self.storage
            .unfinished()
            .into_iter()
            .filter(|st| st.meta.sha256 == key && !st.torrent.is_empty())
            .find_map(|st| Metainfo::from_file_bytes(&st.torrent).ok())
            .filter(|t| key_of(&t.hashes) == key)
    }

    /// The torrent of download `dk` is known: open its working file (an
    /// earlier run's, with the pieces its record says are verified, or a
    /// new one).
    fn bt_set_torrent(&mut self, dk: usize, t: Metainfo) {
        let d = &mut self.bt[dk];
        // The working file's identity: name, size and piece length, the
        // pieces standing for every piece, and the download's key.
        let meta = FileMeta {
            name: t.name.clone(),
            size: t.total_len(),
            chunk_size: t.piece_len() as u32,
            chunks: vec![[0; 32]; t.pieces() as usize],
            sha256: key_of(&t.hashes),
        };
        let size = t.total_len();
        // A multi-file torrent's files, in a working folder.
        let plan = t.multi_file.then(|| {
            let wanted = select::wanted_files(&t, &d.only);
            let files = t.layout.files.iter().zip(wanted).filter(|(f, _)| !f.pad);
            FolderPlan {
                files: files
                    .map(|(f, wanted)| PlannedFile {
                        rel: f.rel_path_in_torrent(),
                        offset: f.offset,
                        len: f.len,
                        unwanted: !wanted,
                    })
                    .collect(),
            }
        });
        // The project's chunk hashes and the block hashes only when we
        // share: otherwise no frontend can share the download (headless
        // shares only with --seed; the interactive client always seeds).
        d.set_torrent(t, self.cfg.seed);
        if let Some(why) = d.uncheckable() {
            return d.fail(why.to_string());
        }
        let resumed = match &plan {
            Some(plan) => self.storage.resume_folder(&meta.id(), plan),
            None => self.storage.resume(&meta.id()),
        };
        if let Some((part, state)) = resumed {
            d.part = Some(part);
            d.meta = Some(meta);
            let verified = d.restore(&state.verified);
            let (name, total) = (d.display_name(), d.pieces() as usize);
            info!("resuming {name}: {verified} of {total} pieces already verified");
            self.notify(Event::Resumed {
                name,
                verified: verified as usize,
                total,
                rechecked: false,
            });
            return;
        }
        let created = match &plan {
            Some(plan) => self.storage.create_folder(&meta, plan),
            None => self.storage.create(&meta),
        };
        match created {
            Ok(created) => {
                let mut part = created.part;
                // A file an earlier run left without a sound record is not
                // trusted: every piece is fetched again over it.
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

    /// A finished BitTorrent download is shared (the user said so): seed
    /// it to BitTorrent peers too, its trackers told it is `completed`.
    /// The file is known by its SHA-256 (the frontend may share it from
    /// another path: a hard link in the shared directory).
    pub(in crate::client::engine) fn bt_share_finished(
        &mut self,
        meta: &FileMeta,
        path: PathBuf,
        now: Instant,
    ) {
        let Some(at) = self.bt_finished.iter().position(|f| f.sha256 == meta.sha256) else {
            return;
        };
        let mut f = self.bt_finished.remove(at);
        f.trackers.iter_mut().for_each(|t| t.complete(now));
        self.bt_seed(f.torrent, f.trees, path, f.trackers);
    }

    /// Records the verified pieces of download `dk` (the working file is
    /// synced first); a failure is logged and costs only a re-fetch.
    pub(in crate::client::engine) fn bt_record(&mut self, dk: usize, now: Instant) {
        let Some(d) = self.bt.get_mut(dk) else {
            return;
        };
        let (torrent, bits) = (d.record_torrent(), d.bitmap());
        let (Some(part), Some(meta)) = (d.part.as_mut(), d.meta.as_ref()) else {
            return;
        };
        match part.save(meta, &bits, &torrent) {
            Ok(()) => d.saved(now),
            Err(e) => warn!("cannot record the progress of {}: {e}", d.display_name()),
        }
    }

    /// Stops BitTorrent download `dk` at the user's request, keeping what
    /// it verified for a later run (a download with nothing verified
    /// leaves nothing behind), or with `delete` deleting its working file.
    pub(in crate::client::engine) fn bt_cancel(&mut self, dk: usize, delete: bool, now: Instant) {
        self.bt_close_fetches(dk, now);
        let deleted = delete && self.bt[dk].part.is_some();
        let kept = if delete {
            if let Some(mut part) = self.bt[dk].part.take() {
                part.discard();
            }
            false
        } else {
            self.bt_keep_or_discard(dk, now).is_some()
        };
        let d = self.bt.remove(dk);
        let name = d.display_name();
        info!("download cancelled: {name} (.part file kept: {kept})");
        self.notify(Event::DownloadCancelled { name, kept, deleted });
    }

    /// A download that stops unfinished: its working file is recorded and
    /// kept when it holds verified pieces (returns where and how much),
    /// removed when it holds none.
    fn bt_keep_or_discard(&mut self, dk: usize, now: Instant) -> Option<String> {
        let d = self.bt.get_mut(dk)?;
        if d.verified == 0 {
            if let Some(mut part) = d.part.take() {
                part.discard();
            }
            return None;
        }
        self.bt_record(dk, now);
        let d = &self.bt[dk];
        let part = d.part.as_ref()?;
        let size = d.size();
        let place = part
            .path()
            .map_or_else(|| "its working file".to_string(), |p| p.display().to_string());
        Some(format!(
            "kept {place} ({} of {size} bytes verified) to resume",
            d.verified_bytes
        ))
    }

    /// Closes the connections of BitTorrent download `dk`.
    fn bt_close_fetches(&mut self, dk: usize, now: Instant) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::BtFetch(f) if f.download == dk))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id, ConnEnd::Finished, now);
        }
    }

    /// Opens connections to the peers BitTorrent downloads know of.
    pub(in crate::client::engine) fn bt_connect(&mut self, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        let plan: Vec<(usize, SocketAddr)> = self
            .bt
            .iter()
            .filter(|(_, d)| !d.is_finished())
            .flat_map(|(dk, d)| {
                // Wide while nothing verified came yet (silent peers must
                // be sifted quickly to find one that serves), then
                // the usual number.
                let cap = if d.verified == 0 {
                    SEARCH_CONNS
                } else {
                    MAX_CONNS_PER_DOWNLOAD
                };
                let room = cap.saturating_sub(d.peers.connected());
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

    pub(in crate::client::engine) fn bt_connected(&mut self, id: ConnId, now: Instant) {
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

    pub(in crate::client::engine) fn bt_io(&mut self, id: ConnId, stream: &mut dyn Stream, now: Instant) {
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
        let mut end = self.after_turn(id, result);
        let Some(d) = self.bt.get_mut(dk) else {
            self.close(id, ConnEnd::Finished, now);
            return;
        };
        if report.answered {
            d.peers.up(addr);
        }
        let record = report.verified > 0 && d.record_due();
        if report.verified > 0 {
            // Peers we serve this torrent to hear of the new pieces.
            let hashes = d.hashes;
            let named = |h: &[u8; 20]| hashes.v1.as_ref() == Some(h) || hashes.v2_short().as_ref() == Some(h);
            self.drive_where(|k| matches!(k, Kind::BtServe(s) if s.torrent_hash().is_some_and(named)));
        }
        let Some(d) = self.bt.get_mut(dk) else {
            return;
        };
        if report.verified > 0 {
            d.last_progress = now;
            // Hash the file in order while the network is the bottleneck,
            // so little is left for the end.
            if let Err(e) = d.advance_whole(&mut self.whole_buf, WHOLE_BUDGET) {
                d.fail(format!("cannot read the .part file: {e}"));
            }
        }
        for &piece in &report.bad {
            let name = d.display_name();
            warn!("piece {piece} of {name} (completed by {addr}) failed its hash: fetching it again");
        }
        // Strikes for the senders of bad blocks, whichever connection
        // completed the piece; a peer struck out is dropped everywhere.
        let mut banned = Vec::new();
        let name = d.display_name();
        for who in std::mem::take(&mut d.blamed) {
            warn!("{who} sent blocks of {name} that failed their hash");
            if d.peers.strike(who) && !banned.contains(&who) {
                banned.push(who);
            }
        }
        for who in &banned {
            self.notify(Event::Warning(format!(
                "dropped peer {who} for {name}: it sent data that failed its hash"
            )));
        }
        if banned.contains(&addr) && end.is_none() {
            end = Some(ConnEnd::BadPeer("sent pieces that failed their hash twice"));
        }
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(c, conn)| {
                **c != id
                    && matches!(&conn.kind, Kind::BtFetch(f) if f.download == dk && banned.contains(&f.addr))
            })
            .map(|(c, _)| *c)
            .collect();
        for c in others {
            self.close(
                c,
                ConnEnd::BadPeer("sent pieces that failed their hash twice"),
                now,
            );
        }
        let Some(d) = self.bt.get_mut(dk) else {
            return;
        };
        let mut accepted = false;
        if let Some(bytes) = report.info {
            d.info_conn = None;
            if !d.is_our_info(&bytes) || bytes.len() > MAX_INFO_LEN {
                end = end.or(Some(ConnEnd::BadPeer("sent metadata that is not the torrent")));
            } else {
                match Metainfo::from_info_bytes(&bytes) {
                    Ok(mut t) => {
                        info!(
                            "metadata verified for {}: {} bytes",
                            names::escape(&t.name),
                            t.content_len()
                        );
                        t.trackers = Vec::new();
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
        if record && !self.bt[dk].is_complete() {
            self.bt_record(dk, now);
        }
        if self.bt[dk].is_complete() && !self.bt[dk].is_finished() {
            self.bt_finish(dk, now);
        }
        // New work for the others: the layer or the torrent became known,
        // or bad blocks are missing again.
        if report.layer_done || report.leaves || !report.bad.is_empty() || accepted {
            self.bt_kick(dk);
        }
        self.bt_end_if_finished(dk, now);
    }

    /// Asks for a turn for every connected fetch of BitTorrent download
    /// `dk` (new work may be there).
    fn bt_kick(&mut self, dk: usize) {
        self.drive_where(|k| matches!(k, Kind::BtFetch(f) if f.download == dk && f.connected));
    }

    /// Every piece is verified: put the file (or folder) in place. A
    /// single file's SHA-256 (and native metadata, so it can be shared)
    /// is finished first; a folder is seeded on at once when we seed.
    fn bt_finish(&mut self, dk: usize, now: Instant) {
        let d = &mut self.bt[dk];
        // What the download did not hash yet as pieces came in.
        if let Err(e) = d.advance_whole(&mut self.whole_buf, u64::MAX) {
            return d.fail(format!("cannot read the .part file: {e}"));
        }
        let Some(torrent) = d.torrent.clone() else {
            return;
        };
        let size = d.size();
        let native = match d.whole.take().map(|b| b.finish(&torrent.name, size)) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => return d.fail(e.to_string()),
            None => None,
        };
        let (Some(part), Some(meta)) = (d.part.as_mut(), d.meta.as_ref()) else {
            return;
        };
        let path = match part.finish(&meta.name) {
            Ok(path) => path,
            Err(storage::FinishError::Exists) => {
                return d.fail("a file of that name appeared meanwhile".into())
            }
            Err(storage::FinishError::Io(e)) => return d.fail(format!("cannot put the file in place: {e}")),
        };
        d.phase = BtPhase::Done;
        let mut trees = vec![None; torrent.layout.files.len()];
        if let (Some(tree), Some(i)) = (d.tree(), torrent.layout.files.iter().position(|f| !f.pad)) {
            trees[i] = Some(tree);
        }
        let mut trackers = std::mem::take(&mut d.trackers);
        match native {
            Some(native) => {
                // Kept (with its trackers, which then hear `completed`)
                // for the user to share: see [`Engine::bt_share_finished`].
                if self.bt_finished.len() == MAX_DOWNLOADS {
                    self.bt_finished.remove(0);
                }
                self.bt_finished.push(Finished {
                    sha256: native.sha256,
                    torrent,
                    trees,
                    trackers,
                });
                self.notify(Event::DownloadDone { meta: native, path });
            }
            None => {
                let (name, files) = (
                    torrent.name.clone(),
                    torrent.layout.files.iter().filter(|f| !f.pad).count(),
                );
                self.notify(Event::FolderDone {
                    name,
                    files,
                    size,
                    path: path.clone(),
                });
                if self.cfg.seed {
                    trackers.iter_mut().for_each(|t| t.complete(now));
                    self.bt_seed(torrent, trees, path, trackers);
                }
            }
        }
    }

    /// Removes a finished (done or failed) download, closing its
    /// connections.
    fn bt_end_if_finished(&mut self, dk: usize, now: Instant) {
        if !self.bt.get(dk).is_some_and(BtDownload::is_finished) {
            return;
        }
        self.bt_close_fetches(dk, now);
        let kept = match self.bt[dk].phase {
            BtPhase::Failed(_) => self.bt_keep_or_discard(dk, now),
            _ => None,
        };
        let d = self.bt.remove(dk);
        let name = d.display_name();
        let secs = now.duration_since(d.started).as_secs_f64().max(1e-6);
        match d.phase {
            BtPhase::Done => {
                let size = d.size();
                info!(
                    "download verified: {name} ({size} bytes in {secs:.2} s, {:.1} MB/s)",
                    size as f64 / secs / 1e6
                );
            }
            BtPhase::Failed(mut why) => {
                if let Some(kept) = kept {
                    why = format!("{why}; {kept}");
                }
                warn!("download failed: {name}: {why}");
                self.notify(Event::DownloadFailed { label: name, why });
            }
            BtPhase::Running => {}
        }
    }

    /// A BitTorrent connection ended (its state is already out of the
    /// connection table).
    pub(in crate::client::engine) fn bt_closed(&mut self, mut f: BtFetch, end: &ConnEnd, now: Instant) {
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
    pub(in crate::client::engine) fn bt_upkeep(&mut self, now: Instant) {
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
            let d = &self.bt[dk];
            if d.unsaved() && now.duration_since(d.saved_at) >= SAVE_EVERY && !d.is_finished() {
                self.bt_record(dk, now);
            }
            self.bt_end_if_finished(dk, now);
        }
        self.bt_connect(now);
    }

    /// The peers BitTorrent downloads banned (tests look at who was caught).
    #[cfg(test)]
    pub fn bt_banned(&self) -> Vec<SocketAddr> {
        let downloads = self.bt.iter().flat_map(|(_, d)| d.peers.banned());
        downloads.collect()
    }
}
