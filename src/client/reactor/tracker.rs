//! The engine's side of the tracker: datagrams in and out of the UDP
//! socket, and what the tracker link reports.

use super::*;

impl Client {
    pub(super) fn read_tracker(&mut self, now: Instant) {
        loop {
            match self.udp.recv_from(&mut self.udp_buf) {
                Ok((n, from)) => {
                    // Only the tracker's datagrams reach the link.
                    if from == self.opts.tracker {
                        self.link
                            .handle_datagram(&self.udp_buf[..n], now, &mut self.link_events);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors (tracker down) surface here; the link's
                    // retries cover them.
                    debug!("tracker socket: {e}");
                    break;
                }
            }
        }
    }

    pub(super) fn flush_tracker(&mut self) {
        if !self.joined {
            return;
        }
        let now = Instant::now();
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        loop {
            out.clear();
            if !self.link.poll_transmit(now, &mut out) {
                break;
            }
            // A datagram the kernel will not take now is lost like any
            // other; the link retries.
            if let Err(e) = self.udp.send_to(&out, self.opts.tracker) {
                debug!("send to tracker: {e}");
            }
        }
    }

    pub(super) fn handle_link_events(&mut self, now: Instant) {
        for event in std::mem::take(&mut self.link_events) {
            match event {
                LinkEvent::Registered { interval } => {
                    info!(
                        "registered with the tracker {} as {} (keep-alive {} s)",
                        self.opts.tracker,
                        names::escape(self.link.username()),
                        interval.as_secs()
                    );
                    if !self.library.is_empty() {
                        // The link re-announces its set by itself after a
                        // re-registration; this covers files indexed
                        // before the first one.
                        self.link.announce(self.library.entries(), now);
                        self.announce_pending = true;
                    }
                }
                LinkEvent::Announced { files } => {
                    debug!("tracker acknowledged {files} files");
                    self.announce_pending = false;
                }
                LinkEvent::Peers { id, peers } => {
                    for (_, d) in self.downloads.iter_mut().filter(|(_, d)| d.id == id) {
                        d.add_peers(&peers, now);
                    }
                    self.connect_peers(now);
                }
                LinkEvent::FileList(files) => self.events.push(Event::FileList(files)),
                LinkEvent::PeerList(peers) => self.events.push(Event::PeerList(peers)),
                LinkEvent::UsernameChanged(name) => {
                    info!("username is now {}", names::escape(&name));
                    self.events.push(Event::UsernameChanged(name));
                }
                LinkEvent::Failed { what, error } => {
                    warn!("tracker {what}: {error}");
                    if what == "announce" {
                        self.announce_pending = false;
                    }
                    self.events.push(Event::TrackerFailed { what, error });
                }
                LinkEvent::Unreachable => {
                    warn!("the tracker {} does not answer", self.opts.tracker);
                    self.events.push(Event::TrackerUnreachable);
                }
                LinkEvent::Reachable => {
                    info!("the tracker answers again");
                    self.events.push(Event::TrackerReachable);
                }
                LinkEvent::Disconnected => {
                    if let Some((code, _)) = self.exit {
                        self.exit = Some((code, now));
                    }
                }
            }
        }
    }
}
