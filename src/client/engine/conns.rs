//! Peer connections: admitting inbound ones, opening outbound ones, giving
//! each its turn, their timers, and closing them with one log line and one
//! verdict each.

use super::*;
use crate::client::engine::bittorrent::downloads::BtOffers;
use log::{debug, info};

/// The files inbound connections may serve: those shared, then those
/// being downloaded (their verified chunks).
struct Sources<'a> {
    library: &'a Library,
    downloads: &'a Slab<Download>,
}

impl serve::Files for Sources<'_> {
    fn source(&self, id: &FileId) -> Option<serve::Source<'_>> {
        self.library
            .source(id)
            .or_else(|| self.downloads.iter().find(|(_, d)| d.id == *id)?.1.source())
    }
}

impl Engine {
    fn new_conn_id(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    /// A peer connected to our listener: its id, or `None` to refuse it
    /// (the caller drops the socket).
    ///
    /// One host holds at most a quarter of the slots (at least 8). When all
    /// are taken, the connection that went longest without progress makes
    /// room, if it has been unproductive for 5 s: idle or hostile
    /// connections cannot lock honest leechers out.
    pub fn on_inbound(&mut self, addr: SocketAddr, now: Instant) -> Option<ConnId> {
        if self.exit.is_some() {
            return None;
        }
        let from_host = self
            .conns
            .values()
            .filter(|c| c.kind.is_inbound() && c.addr.ip() == addr.ip())
            .count();
        if from_host >= self.per_host() {
            if !self.refused_logged {
                warn!(
                    "{from_host} connections from {} already, the most one host may have: refusing {addr}",
                    addr.ip()
                );
                self.refused_logged = true;
            }
            return None;
        }
        if self.inbound >= self.cfg.max_inbound {
            let stale = self
                .conns
                .iter()
                .filter(|(_, c)| c.kind.is_inbound())
                .filter(|(_, c)| now.saturating_duration_since(c.last_active) >= UNPRODUCTIVE_AFTER)
                .min_by_key(|(_, c)| c.last_active)
                .map(|(id, _)| *id);
            if let Some(old) = stale {
                info!("inbound slots full: dropping an unproductive connection for {addr}");
                self.close(old, ConnEnd::Idle, now);
            }
        }
        if self.inbound >= self.cfg.max_inbound {
            if !self.refused_logged {
                warn!(
                    "inbound limit of {} connections reached: refusing {addr}",
                    self.cfg.max_inbound
                );
                self.refused_logged = true;
            }
            return None;
        }
        let id = self.new_conn_id();
        self.inbound += 1;
        debug!("serving {addr}");
        self.conns.insert(
            id,
            Conn {
                addr,
                // While we seed or download torrents, the first byte
                // decides.
                kind: if self.bt_shared.is_empty() && self.bt.is_empty() {
                    Kind::Serve(Serve::new())
                } else {
                    Kind::Sniff
                },
                last_active: now,
            },
        );
        Some(id)
    }

    /// Inbound connections one host may hold: a quarter of the slots, at
    /// least 8.
    pub(super) fn per_host(&self) -> usize {
        (self.cfg.max_inbound / 4).max(8)
    }

    /// An outbound connect completed.
    pub fn on_connected(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(conn.kind, Kind::BtFetch(_)) {
            return self.bt_connected(id, now);
        }
        let Kind::Fetch(f) = &mut conn.kind else {
            return;
        };
        let Some(d) = self.downloads.get_mut(f.download) else {
            return;
        };
        info!("peer used for {}: {}", d.display_name(), f.addr);
        d.last_connected = now;
        f.on_connected(d, now);
        self.act(Action::Drive(id));
    }

    /// The transport ended connection `id` (a failed connect, a reset seen
    /// outside [`Engine::on_io`]).
    pub fn on_closed(&mut self, id: ConnId, end: ConnEnd, now: Instant) {
        if self.conns.contains_key(&id) {
            self.close(id, end, now);
            self.after(now);
        }
    }

    /// Opens connections to the peers downloads know of.
    pub(super) fn connect_peers(&mut self, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        let keys: Vec<usize> = self.downloads.iter().map(|(k, _)| k).collect();
        for dk in keys {
            let d = &self.downloads[dk];
            if d.is_finished() {
                continue;
            }
            let cap = if d.meta.is_none() {
                SEARCH_CONNS
            } else {
                MAX_CONNS_PER_DOWNLOAD
            };
            let room = cap.saturating_sub(d.peers.connected());
            for addr in d.peers.connectable(now).into_iter().take(room) {
                let timeout = self.cfg.request_timeout;
                let id = self.open_conn(addr, now, |id| {
                    Kind::Fetch(Fetch::new(id, dk, addr, now, timeout))
                });
                self.downloads[dk].peers.connecting(addr, id);
            }
        }
    }

    /// Records an outbound connection to `addr` and asks for its connect.
    pub(super) fn open_conn(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        kind: impl FnOnce(ConnId) -> Kind,
    ) -> ConnId {
        let id = self.new_conn_id();
        let conn = Conn {
            addr,
            kind: kind(id),
            last_active: now,
        };
        self.conns.insert(id, conn);
        self.act(Action::Connect { conn: id, addr });
        id
    }

    /// Gives connection `id` its turn on `stream`.
    pub fn on_io(&mut self, id: ConnId, stream: &mut dyn Stream, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match &mut conn.kind {
            Kind::BtFetch(_) => self.bt_io(id, stream, now),
            Kind::Sniff => self.sniff(id, stream, now),
            Kind::BtServe(s) => {
                let offers = BtOffers {
                    shared: &self.bt_shared,
                    downloads: &self.bt,
                };
                let flow = s.drive(stream, &offers, TURN_BUDGET);
                if s.take_progress() {
                    conn.last_active = now;
                }
                if let Some(end) = self.after_turn(id, flow) {
                    self.close(id, end, now);
                }
            }
            Kind::Serve(s) => {
                let files = Sources {
                    library: &self.library,
                    downloads: &self.downloads,
                };
                let flow = s.drive(stream, &files, TURN_BUDGET);
                if s.take_progress() {
                    conn.last_active = now;
                }
                for (fid, bytes) in s.take_sent() {
                    *self.uploaded.entry(fid).or_insert(0) += bytes;
                }
                if let Some(end) = self.after_turn(id, flow) {
                    self.close(id, end, now);
                }
            }
            Kind::Fetch(f) => {
                if !f.connected {
                    return;
                }
                let (dk, addr) = (f.download, f.addr);
                let Some(d) = self.downloads.get_mut(dk) else {
                    self.close(id, ConnEnd::Finished, now);
                    return;
                };
                f.refill(d, now);
                let mut report = fetch::Report::default();
                let result = f.drive(stream, d, now, TURN_BUDGET, &mut report);
                self.fetched(id, dk, addr, result, report, now);
            }
        }
        self.after(now);
    }

    /// What a fetch's turn produced: bad chunks (strikes), metadata to
    /// check, verified chunks to tell partial leechers of, its ending.
    fn fetched(
        &mut self,
        id: ConnId,
        dk: usize,
        addr: SocketAddr,
        result: Result<Flow, ConnEnd>,
        mut report: fetch::Report,
        now: Instant,
    ) {
        let mut end = self.after_turn(id, result);
        let d = &mut self.downloads[dk];
        if report.answered {
            // Only a peer that delivers starts its failures over: one that
            // accepts connections and never answers keeps failing, and
            // makes room for others in a full list.
            d.peers.up(addr);
        }
        for index in &report.bad {
            warn!(
                "chunk {index} of {} from {addr} failed its SHA-256: fetching it again",
                d.display_name()
            );
            if d.peers.strike(addr) && end.is_none() {
                end = Some(ConnEnd::BadPeer("sent chunks that failed their SHA-256 twice"));
            }
        }
        let mut accepted = false;
        if let Some(bytes) = report.meta.take() {
            match d.accept_meta(&bytes, self.storage.as_mut()) {
                download::MetaOutcome::Accepted => {
                    if let Some(m) = &d.meta {
                        info!(
                            "metadata verified for {}: {} bytes in {} chunks",
                            d.display_name(),
                            m.size,
                            m.chunks.len()
                        );
                    }
                    accepted = true;
                }
                download::MetaOutcome::AlreadyKnown | download::MetaOutcome::Failed => {}
                download::MetaOutcome::Bad(why) => end = end.or(Some(ConnEnd::BadPeer(why))),
            }
        }
        let fid = d.id;
        if accepted || !report.verified.is_empty() {
            d.last_progress = now;
        }
        if accepted {
            self.announce_partial(dk, now);
            self.trim_search(dk, id, now);
        }
        if accepted || !report.bad.is_empty() {
            // Work for every connection: the chunks can be fetched now, or
            // bad ones went back to the scheduler.
            self.kick(dk);
        }
        if let Some(end) = end {
            self.close(id, end, now);
        }
        if !report.verified.is_empty() {
            self.tell_subscribers(&fid, &report.verified, now);
        }
    }

    /// Download `dk` has its metadata: the connections opened to search
    /// for it beyond [`MAX_CONNS_PER_DOWNLOAD`] close, those to peers that
    /// never answered first (never `keep`, the one that delivered it).
    fn trim_search(&mut self, dk: usize, keep: ConnId, now: Instant) {
        let d = &self.downloads[dk];
        let mut open: Vec<(bool, ConnId)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| match &c.kind {
                Kind::Fetch(f) if f.download == dk && *id != keep => {
                    let answered = d.peers.get(f.addr).is_some_and(|p| p.answered);
                    Some((answered, *id))
                }
                _ => None,
            })
            .collect();
        let extra = (open.len() + 1).saturating_sub(MAX_CONNS_PER_DOWNLOAD);
        // Never-answered first, then the newest.
        open.sort_by_key(|&(answered, id)| (answered, std::cmp::Reverse(id)));
        for (_, id) in open.into_iter().take(extra) {
            self.close(id, ConnEnd::Finished, now);
        }
    }

    /// What a connection's turn came to, for any protocol: another turn
    /// asked for when its budget ran out (edge-triggered readiness will not
    /// report it again), or the ending, if it ended.
    pub(super) fn after_turn(&mut self, id: ConnId, result: Result<Flow, ConnEnd>) -> Option<ConnEnd> {
        match result {
            Ok(Flow::Idle) => None,
            Ok(Flow::Again) => {
                self.act(Action::Drive(id));
                None
            }
            Err(end) => Some(end),
        }
    }

    /// Asks for a turn for every connected fetch of download `dk`: new
    /// work may be there for connections that were idle.
    pub(super) fn kick(&mut self, dk: usize) {
        self.drive_where(|k| matches!(k, Kind::Fetch(f) if f.download == dk && f.connected));
    }

    /// Asks for a turn for every connection whose kind `pick` accepts.
    pub(super) fn drive_where(&mut self, pick: impl Fn(&Kind) -> bool) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| pick(&c.kind))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.act(Action::Drive(id));
        }
    }

    /// Connection deadlines: connects and requests without progress, and
    /// inbound connections idle too long.
    pub(super) fn conn_timers(&mut self, now: Instant) {
        let ended: Vec<(ConnId, ConnEnd)> = self
            .conns
            .iter()
            .filter_map(|(id, conn)| match self.conn_deadline(conn) {
                Some((at, end)) if now >= at => Some((*id, end())),
                _ => None,
            })
            .collect();
        for (id, end) in ended {
            self.close(id, end, now);
        }
    }

    /// When connection `conn` ends unless it makes progress, and how. The
    /// one rule for both the timers and the poll timeout, so a deadline
    /// never passes without ending anything (the caller would spin).
    pub(super) fn conn_deadline(&self, conn: &Conn) -> Option<(Instant, fn() -> ConnEnd)> {
        match &conn.kind {
            Kind::Fetch(f) if !f.connected => Some((f.deadline, || ConnEnd::ConnectTimeout)),
            Kind::Fetch(f) if f.in_flight() > 0 => Some((f.deadline, || ConnEnd::Stalled)),
            // Nothing asked of the peer: nothing to wait for.
            Kind::Fetch(_) => None,
            Kind::BtFetch(f) if !f.connected => Some((f.deadline, || ConnEnd::ConnectTimeout)),
            Kind::BtFetch(f) if f.waiting(self.bt.get(f.download)) => Some((f.deadline, || ConnEnd::Stalled)),
            Kind::BtFetch(_) => None,
            // Idle is no progress either way: nothing asked, or asked and
            // not read, or trickled.
            Kind::Serve(_) | Kind::Sniff | Kind::BtServe(_) => {
                Some((conn.last_active + self.cfg.idle_timeout, || ConnEnd::Idle))
            }
        }
    }

    /// Ends connection `id`: its state goes now, the caller drops the
    /// socket on [`Action::Close`]. The download's chunks come back to its
    /// scheduler and the peer set applies the verdict.
    pub(super) fn close(&mut self, id: ConnId, end: ConnEnd, now: Instant) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.act(Action::Close(id));
        match conn.kind {
            Kind::Serve(s) => {
                self.inbound -= 1;
                self.refused_logged = false;
                let peer = conn.addr;
                if end.is_failure() {
                    info!("stopped serving {peer} after {} chunk bytes: {end}", s.uploaded);
                } else if s.uploaded == 0 {
                    // A peer that only looked (metadata, a refused file):
                    // nothing a user needs at info level.
                    debug!("finished serving {peer}: nothing sent");
                } else {
                    info!("finished serving {peer}: {} chunk bytes sent", s.uploaded);
                }
            }
            Kind::Fetch(mut f) => {
                let dk = f.download;
                let Some(d) = self.downloads.get_mut(dk) else {
                    return;
                };
                f.abandon(d);
                let verdict = d.peers.ended(f.addr, &end, now);
                let name = d.display_name();
                match (verdict, &end) {
                    (_, ConnEnd::Finished) => {}
                    (conn_end::Verdict::Retry, _) => info!("peer left {name}: {}", f.addr),
                    (conn_end::Verdict::Ban, _) => warn!("peer dropped for {name}: {}: {end}", f.addr),
                    (conn_end::Verdict::BackOff, _) => warn!("peer lost for {name}: {}: {end}", f.addr),
                }
                self.kick(dk);
            }
            Kind::BtFetch(f) => self.bt_closed(f, &end, now),
            Kind::Sniff => {
                self.inbound -= 1;
                debug!(
                    "inbound connection from {} ended before it spoke: {end}",
                    conn.addr
                );
            }
            Kind::BtServe(s) => {
                self.inbound -= 1;
                info!(
                    "stopped serving BitTorrent peer {}: {} bytes sent: {end}",
                    conn.addr, s.uploaded
                );
            }
        }
    }
}
