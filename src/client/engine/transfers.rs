//! Downloads and shares: starting, resuming and ending downloads, sharing
//! finished ones, partial announces and `Have` notifications, and the
//! upkeep of downloads (re-queries, progress records, giving up), the
//! library's indexing and whole-file checks, in slices.

use super::*;
use crate::meta::hex;
use crate::names;
use crate::wire::tracker::FileEntry;
use log::{debug, info};
use tracker_link::Query;

impl Engine {
    pub(super) fn start_download(
        &mut self,
        id: FileId,
        label: String,
        listed: Option<Listed>,
        output: Option<String>,
        now: Instant,
    ) {
        if self.downloads.iter().any(|(_, d)| d.id == id) {
            return;
        }
        // Downloading a file we share would announce it as partial and
        // withdraw it when done: refuse before anything is announced.
        if self.library.get(&id).is_some() {
            self.notify(Event::DownloadFailed {
                label,
                why: "you share this file already".into(),
            });
            return;
        }
        if self.downloads.len() + self.bt.len() >= MAX_DOWNLOADS {
            self.notify(Event::DownloadFailed {
                label,
                why: format!("at most {MAX_DOWNLOADS} downloads at once"),
            });
            return;
        }
        info!("download started: {label} (id {})", hex(&id));
        let rng = Rng::seeded(self.rng.next_u64());
        let mut d = Download::new(id, label, rng, now);
        d.use_meta_budget(self.meta_budget.clone());
        d.listed = listed;
        d.output = output;
        d.next_query = now + REQUERY_IDLE;
        let resumed = d.resume(self.storage.as_mut());
        if let Some(r) = resumed {
            self.resumed(&d, r);
        }
        let dk = self.downloads.insert(d);
        if resumed.is_some() {
            self.announce_partial(dk, now);
        }
        if let Err(e) = self.link.query(Query::GetPeers(id), now) {
            debug!("peer query postponed: {e}");
        }
    }

    fn resumed(&mut self, d: &Download, r: download::Resumed) {
        let how = if r.rechecked {
            "re-checked the .part file"
        } else {
            "resuming"
        };
        info!(
            "{how} for {}: {} of {} chunks already verified",
            d.display_name(),
            r.verified,
            r.total
        );
        self.notify(Event::Resumed {
            name: d.display_name(),
            verified: r.verified,
            total: r.total,
            rechecked: r.rechecked,
        });
    }

    /// Records a download's verified chunks; a failure is logged (the next
    /// run then re-checks the `.part` file instead).
    fn save(d: &mut Download, now: Instant) {
        if let Err(e) = d.save(now) {
            warn!("cannot record the progress of {}: {e}", d.display_name());
        }
    }

    /// A download ended: report it. Its partial entry at the tracker is
    /// withdrawn (a share announces the complete file).
    fn download_ended(&mut self, key: usize, now: Instant) {
        let mut d = self.downloads.remove(key);
        if d.meta.is_some() {
            self.link.withdraw(vec![d.id], now);
        }
        match std::mem::replace(&mut d.phase, Phase::Meta) {
            Phase::Done(path) => {
                let secs = now.duration_since(d.started).as_secs_f64().max(1e-6);
                let size = d.meta.as_ref().map_or(0, |m| m.size);
                info!(
                    "download verified: {} ({} bytes in {:.2} s, {:.1} MB/s), sha256 {}",
                    d.display_name(),
                    size,
                    secs,
                    size as f64 / secs / 1e6,
                    d.sha256_hex()
                );
                if let Some(meta) = d.meta {
                    self.notify(Event::DownloadDone { meta, path });
                }
            }
            Phase::Failed(why) => {
                Self::save(&mut d, now);
                warn!("download failed: {}: {why}", d.display_name());
                self.notify(Event::DownloadFailed {
                    label: d.display_name(),
                    why,
                });
            }
            _ => {}
        }
    }

    /// Stops a running download at the user's request: its connections
    /// close, its verified chunks are recorded beside the `.part` file
    /// (which stays, so the same download later resumes) or, with
    /// `delete`, the `.part` file and record are deleted; its partial
    /// entry is withdrawn from the tracker.
    pub(super) fn cancel_download(&mut self, id: FileId, delete: bool, now: Instant) {
        let Some(dk) = self.downloads.iter().find(|(_, d)| d.id == id).map(|(k, _)| k) else {
            // A BitTorrent download goes by its v2 info hash.
            match self.bt.iter().find(|(_, d)| d.key == id) {
                Some((dk, _)) => self.bt_cancel(dk, delete, now),
                None => self.notify(Event::Warning("that download is not running any more".into())),
            }
            return;
        };
        self.close_fetches(dk, now);
        let mut d = self.downloads.remove(dk);
        // Only a download with its metadata has a .part file (and an
        // entry at the tracker).
        let had_part = d.meta.is_some();
        if delete {
            d.discard();
        } else if let Err(e) = d.record(now) {
            warn!("cannot record the progress of {}: {e}", d.display_name());
        }
        if had_part {
            self.link.withdraw(vec![d.id], now);
        }
        let kept = had_part && !delete;
        info!(
            "download cancelled: {} (.part file kept: {kept})",
            d.display_name()
        );
        self.notify(Event::DownloadCancelled {
            name: d.display_name(),
            kept,
            deleted: delete && had_part,
        });
    }

    /// Closes the connections fetching for download `dk`.
    fn close_fetches(&mut self, dk: usize, now: Instant) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::Fetch(f) if f.download == dk))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id, ConnEnd::Finished, now);
        }
    }

    /// Shares a verified download without copying its bytes: hard-linked
    /// into the shared directory when that works (same file system, name
    /// free), else shared from where it is.
    pub(super) fn share(&mut self, meta: FileMeta, path: PathBuf, now: Instant) {
        let name = names::escape(&meta.name);
        let entry = meta.entry(true);
        self.bt_share_finished(&meta, path.clone(), now);
        match self.library.add_verified(meta, path) {
            Ok(_) => {
                info!("sharing {name}");
                self.link.set_role(Role::Seeder, now);
                self.link.announce(vec![entry], now);
                self.announce_pending = true;
                self.ready_told = false;
                self.notify(Event::Shared { name });
            }
            Err(e) => {
                warn!("cannot share {name}: {e}");
                self.notify(Event::Warning(format!("cannot share {name}: {e}")));
            }
        }
    }

    /// Registers with the tracker as `name` (once; later changes go
    /// through [`Command::ChangeUsername`]).
    pub(super) fn join(&mut self, name: String, now: Instant) {
        if self.joined {
            self.link.change_username(name, now);
            return;
        }
        let role = if self.library.is_empty() && !self.library.is_indexing() {
            Role::Leecher
        } else {
            Role::Seeder
        };
        let rng = Rng::seeded(self.rng.next_u64());
        self.link = TrackerLink::new(name, self.cfg.secret, self.cfg.listen_addr.port(), role, rng, now);
        self.joined = true;
    }

    /// Leaves the network and exits with `code` once the tracker has
    /// acknowledged (or after a short wait).
    pub(super) fn quit(&mut self, code: u8, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        info!("leaving the network");
        debug!(
            "{} datagrams from the tracker's address were ignored (undecodable or unexpected)",
            self.link.ignored_datagrams()
        );
        for (_, d) in self.downloads.iter_mut() {
            Self::save(d, now);
        }
        let bt: Vec<usize> = self
            .bt
            .iter()
            .filter(|(_, d)| d.unsaved())
            .map(|(k, _)| k)
            .collect();
        for dk in bt {
            self.bt_record(dk, now);
        }
        // Not joined yet (the first-run username prompt): the tracker does
        // not know us, so there is no goodbye to wait for.
        self.exit = Some((code, now + GOODBYE_WAIT));
        if self.joined {
            self.link.disconnect(now);
        } else {
            self.exit = Some((code, now));
        }
    }

    /// Tells the tracker we hold part of download `dk`, so other
    /// downloaders can fetch what we verified (swarming).
    pub(super) fn announce_partial(&mut self, dk: usize, now: Instant) {
        if let Some(d) = self.downloads.get_mut(dk) {
            if let Some(entry) = d.entry(false) {
                self.link.announce(vec![entry], now);
                let query = now + REQUERY_AFTER_META;
                d.next_query = d.next_query.min(query);
                self.next_upkeep = self.next_upkeep.min(query);
            }
        }
    }

    /// Sends `Have` for each of `chunks` to the leechers subscribed to
    /// file `id` (partial seeding).
    pub(super) fn tell_subscribers(&mut self, id: &FileId, chunks: &[u32], now: Instant) {
        let mut ended = Vec::new();
        let mut woken = Vec::new();
        for (cid, conn) in self.conns.iter_mut() {
            let Kind::Serve(s) = &mut conn.kind else {
                continue;
            };
            if s.subscribed.as_ref() != Some(id) {
                continue;
            }
            match chunks.iter().map(|&i| s.notify_have(i)).find(Result::is_err) {
                Some(Err(end)) => ended.push((*cid, end)),
                _ => woken.push(*cid),
            }
        }
        for (cid, end) in ended {
            self.close(cid, end, now);
        }
        for cid in woken {
            self.act(Action::Drive(cid));
        }
    }

    /// Downloads' upkeep: peer re-queries, progress records, "waiting"
    /// messages, giving up, new connections.
    pub(super) fn upkeep(&mut self, now: Instant) {
        let mut queries = Vec::new();
        let mut events = Vec::new();
        for (_, d) in self.downloads.iter_mut() {
            if d.is_finished() {
                continue;
            }
            let connected = d.peers.connected();
            if connected > 0 {
                d.last_connected = now;
                d.waiting_told = false;
            }

            if now >= d.next_query {
                d.next_query = now
                    + if d.meta.is_none() {
                        REQUERY_SEARCH
                    } else if connected > 0 {
                        REQUERY_BUSY
                    } else {
                        REQUERY_IDLE
                    };
                queries.push(d.id);
            }
            let waited = now.duration_since(d.last_connected);
            if d.unsaved() && (now.duration_since(d.saved_at) >= SAVE_EVERY || connected == 0) {
                Self::save(d, now);
            }
            if connected == 0 && waited >= WAITING_AFTER && !d.waiting_told {
                d.waiting_told = true;
                let msg = format!(
                    "waiting for peers: none that has {} is reachable; asking the tracker every {} s",
                    d.display_name(),
                    REQUERY_IDLE.as_secs()
                );
                warn!("{msg}");
                events.push(Event::Warning(msg));
            }
            if let Some(limit) = self.cfg.give_up_after {
                let starved = now.duration_since(d.last_progress);
                if connected == 0 && waited >= limit {
                    let why = if d.peers.usable() == 0 && !d.peers.is_empty() {
                        format!(
                            "every peer that had it failed or was dropped; gave up after {} s",
                            waited.as_secs()
                        )
                    } else {
                        format!("no peer has it (waited {} s)", waited.as_secs())
                    };
                    d.fail(why);
                } else if starved >= limit && d.phase != Phase::Recheck {
                    // Peers that connect but deliver nothing (stalling,
                    // refusing) are no reason to wait for ever.
                    d.fail(format!(
                        "no peer delivered any of it for {} s; gave up",
                        starved.as_secs()
                    ));
                }
            }
        }
        for e in events {
            self.notify(e);
        }
        for id in queries {
            if let Err(e) = self.link.query(Query::GetPeers(id), now) {
                debug!("peer query postponed: {e}");
            }
        }
        self.connect_peers(now);
        // A safety net for work no event announces (a chunk a partial peer
        // turned out to lack, say): idle fetches look for some.
        self.drive_where(|k| matches!(k, Kind::Fetch(f) if f.connected && f.in_flight() == 0));
    }

    pub(super) fn step_library(&mut self, now: Instant) {
        if !self.library.is_indexing() {
            return;
        }
        let step = self.library.index_step(INDEX_BUDGET);
        for w in step.warnings {
            warn!("{w}");
            self.notify(Event::Warning(w));
        }
        if !step.ready.is_empty() && self.link.is_registered() {
            let entries: Vec<FileEntry> = self
                .library
                .entries()
                .into_iter()
                .filter(|e| step.ready.contains(&e.id()))
                .collect();
            self.link.announce(entries, now);
            self.announce_pending = true;
            // A leecher whose shared directory got its first file (a
            // rescan) shares now.
            if self.link.role() == Role::Leecher {
                self.link.set_role(Role::Seeder, now);
            }
        }
        if !self.library.is_indexing() {
            info!(
                "indexed {}",
                crate::client::frontend::table::count(self.library.len(), "shared file")
            );
        }
    }

    pub(super) fn step_downloads(&mut self, now: Instant) {
        let mut ended = Vec::new();
        let mut rechecked = Vec::new();
        for (dk, d) in self.downloads.iter_mut() {
            if let Some(r) = d.advance_recheck(&mut self.whole_buf, WHOLE_BUDGET) {
                rechecked.push((dk, r));
            }
            if d.is_finished() {
                ended.push(dk);
            }
        }
        for (dk, r) in rechecked {
            let d = &self.downloads[dk];
            let (name, total) = (d.display_name(), r.total);
            info!(
                "re-checked the .part file of {name}: {} of {total} chunks already verified",
                r.verified
            );
            self.notify(Event::Resumed {
                name,
                verified: r.verified,
                total,
                rechecked: true,
            });
            self.kick(dk);
        }
        for dk in ended {
            self.close_fetches(dk, now);
            self.download_ended(dk, now);
        }
    }
}
