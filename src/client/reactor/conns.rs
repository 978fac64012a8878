//! Peer connections: accepting and opening them, driving each one's turn,
//! and closing them with one log line each.

use super::*;

impl Client {
    pub(super) fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.inbound >= self.opts.max_inbound || self.exit.is_some() {
                        // Accept and drop at once, so the backlog does not
                        // fill with connections we will not serve.
                        if !self.refused_logged {
                            warn!(
                                "inbound limit of {} connections reached: refusing {addr}",
                                self.opts.max_inbound
                            );
                            self.refused_logged = true;
                        }
                        continue;
                    }
                    match self.add_conn(stream, now, |_| Kind::Serve(Serve::new())) {
                        Ok(_) => {
                            self.inbound += 1;
                            debug!("serving {addr}");
                        }
                        Err(e) => warn!("cannot register a connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors and the like: try again on
                    // the next readiness rather than spin.
                    warn!("accept: {e}");
                    break;
                }
            }
        }
    }

    /// Registers `stream` with the poll (READABLE | WRITABLE, see the
    /// module header) under a new key and keeps it; `make` builds its
    /// protocol state from the key.
    pub(super) fn add_conn(
        &mut self,
        mut stream: TcpStream,
        now: Instant,
        make: impl FnOnce(usize) -> Kind,
    ) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            conn_token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        // Requests and block heads are small: send them at once.
        let _ = stream.set_nodelay(true);
        entry.insert(Conn {
            stream,
            kind: make(key),
            last_active: now,
        });
        Ok(key)
    }

    /// Opens connections to the peers downloads know of.
    pub(super) fn connect_peers(&mut self, now: Instant) {
        let keys: Vec<usize> = self.downloads.iter().map(|(k, _)| k).collect();
        for dk in keys {
            let d = &self.downloads[dk];
            if d.is_finished() {
                continue;
            }
            let mut open = d.peers.iter().filter(|p| p.conn.is_some()).count();
            for addr in d.connectable(now) {
                if open >= MAX_CONNS_PER_DOWNLOAD {
                    break;
                }
                let stream = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("cannot connect to peer {addr}: {e}");
                        self.downloads[dk].peer_disconnected(addr, now, true);
                        continue;
                    }
                };
                let strikes = self.downloads[dk].peer_mut(addr).map_or(0, |p| p.strikes);
                let timeout = self.opts.request_timeout;
                let make = |key| Kind::Fetch(Fetch::new(key, dk, addr, now, timeout, strikes));
                match self.add_conn(stream, now, make) {
                    Ok(key) => {
                        if let Some(p) = self.downloads[dk].peer_mut(addr) {
                            p.conn = Some(key);
                        }
                        open += 1;
                    }
                    Err(e) => warn!("cannot register a connection to {addr}: {e}"),
                }
            }
        }
    }

    /// Gives connection `key` its turn.
    pub(super) fn drive(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if self.closing.iter().any(|(k, _)| *k == key) {
            return;
        }
        conn.last_active = now;
        match &mut conn.kind {
            Kind::Serve(s) => {
                let files = Sources {
                    library: &self.library,
                    downloads: &self.downloads,
                };
                let flow = s.drive(&mut conn.stream, &files, TURN_BUDGET);
                for (id, bytes) in s.take_sent() {
                    *self.uploaded.entry(id).or_insert(0) += bytes;
                }
                match flow {
                    Ok(Flow::Idle) => {}
                    Ok(Flow::Again) => self.again.push(key),
                    Err(c) => self.closing.push((key, Ending::Serve(c))),
                }
            }
            Kind::Fetch(f) => {
                let Some(d) = self.downloads.get_mut(f.download) else {
                    self.closing.push((key, Ending::Fetch(FetchEnd::Done)));
                    return;
                };
                if !f.connected {
                    match connect_result(&conn.stream) {
                        Ok(false) => return,
                        Ok(true) => {
                            info!("peer used for {}: {}", d.display_name(), f.addr);
                            d.last_connected = now;
                            if let Some(p) = d.peer_mut(f.addr) {
                                // "Failures in a row" start again.
                                p.failures = 0;
                            }
                            f.on_connected(d, now);
                        }
                        Err(e) => {
                            self.closing
                                .push((key, Ending::Fetch(FetchEnd::Close(Close::Io(e)))));
                            return;
                        }
                    }
                }
                f.refill(d, now);
                let mut report = Report::default();
                let result = f.drive(&mut conn.stream, d, now, TURN_BUDGET, &mut report);
                for index in &report.bad {
                    warn!(
                        "chunk {index} of {} from {} failed its SHA-256: fetching it again",
                        d.display_name(),
                        f.addr
                    );
                }
                let dk = f.download;
                match result {
                    Ok(Flow::Idle) => {}
                    Ok(Flow::Again) => self.again.push(key),
                    Err(end) => self.closing.push((key, Ending::Fetch(end))),
                }
                if report.meta_accepted {
                    let d = &self.downloads[dk];
                    if let Some(m) = &d.meta {
                        info!(
                            "metadata verified for {}: {} bytes in {} chunks",
                            d.display_name(),
                            m.size,
                            m.chunks.len()
                        );
                    }
                    self.announce_partial(dk, now);
                    self.kick(dk);
                }
                if !report.verified.is_empty() {
                    let id = self.downloads[dk].id;
                    self.tell_subscribers(&id, &report.verified);
                }
            }
        }
    }

    /// Drives every connection of download `dk` (new work may be there for
    /// connections that were idle).
    pub(super) fn kick(&mut self, dk: usize) {
        for (key, conn) in self.conns.iter() {
            if matches!(&conn.kind, Kind::Fetch(f) if f.download == dk && f.connected)
                && !self.again.contains(&key)
            {
                self.again.push(key);
            }
        }
    }

    pub(super) fn apply_closes(&mut self, now: Instant) {
        while let Some((key, ending)) = self.closing.pop() {
            if !self.conns.contains(key) {
                continue;
            }
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            match (conn.kind, ending) {
                (Kind::Serve(s), ending) => {
                    self.inbound -= 1;
                    self.refused_logged = false;
                    let why = match ending {
                        Ending::Serve(Close::Eof) => None,
                        Ending::Serve(c) => Some(c.to_string()),
                        Ending::Idle => Some("idle timeout".into()),
                        Ending::Leaving => Some("leaving the network".into()),
                        Ending::Fetch(f) => Some(f.to_string()),
                    };
                    let peer = conn
                        .stream
                        .peer_addr()
                        .map_or_else(|_| "a peer".into(), |a| a.to_string());
                    match why {
                        Some(why) => info!("stopped serving {peer} after {} chunk bytes: {why}", s.uploaded),
                        None => info!("finished serving {peer}: {} chunk bytes sent", s.uploaded),
                    }
                }
                (Kind::Fetch(mut f), ending) => {
                    let dk = f.download;
                    let Some(d) = self.downloads.get_mut(dk) else {
                        continue;
                    };
                    f.abandon(d);
                    let in_flight = f.in_flight();
                    let end = match ending {
                        Ending::Fetch(e) => e,
                        Ending::Serve(c) => FetchEnd::Close(c),
                        Ending::Idle => FetchEnd::Stalled,
                        Ending::Leaving => FetchEnd::Done,
                    };
                    let failed = !matches!(end, FetchEnd::Done);
                    d.peer_disconnected(f.addr, now, failed);
                    if let Some(p) = d.peer_mut(f.addr) {
                        p.strikes = f.strikes;
                        let refused =
                            matches!(end, FetchEnd::Refused(Refusal::NoSuchFile | Refusal::NoSuchChunk));
                        if f.strikes >= MAX_STRIKES || matches!(end, FetchEnd::BadPeer(_)) || refused {
                            p.banned = true;
                        }
                    }
                    let banned = d.peer_mut(f.addr).is_some_and(|p| p.banned);
                    match end {
                        FetchEnd::Done => {}
                        // A peer that leaves with nothing of ours in flight
                        // (another downloader that finished) is normal churn.
                        FetchEnd::Close(Close::Eof) if in_flight == 0 && !banned => {
                            info!("peer left {}: {}", d.display_name(), f.addr)
                        }
                        end => {
                            let what = if banned { "peer dropped" } else { "peer lost" };
                            warn!("{what} for {}: {}: {end}", d.display_name(), f.addr);
                        }
                    }
                    self.kick(dk);
                }
            }
        }
    }
}

/// The files inbound connections may serve: those shared, then those
/// being downloaded (their verified chunks).
struct Sources<'a> {
    library: &'a Library,
    downloads: &'a Slab<Download>,
}

impl Files for Sources<'_> {
    fn source(&self, id: &FileId) -> Option<Source<'_>> {
        self.library
            .source(id)
            .or_else(|| self.downloads.iter().find(|(_, d)| d.id == *id)?.1.source())
    }
}

/// Whether a non-blocking connect finished: `Ok(false)` while it is still
/// in progress (a spurious wake-up).
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}
