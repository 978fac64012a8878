//! The engine's side of the tracker: datagrams in and out, and what the
//! tracker link reports.

use super::*;
use crate::names;
use log::{debug, info};

impl Engine {
    /// A datagram from the tracker's address (the caller drops others).
    pub fn on_datagram(&mut self, bytes: &[u8], now: Instant) {
        self.link.handle_datagram(bytes, now, &mut self.link_events);
        self.after(now);
    }

    /// The next datagram for the tracker, appended to `out`; false when
    /// there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.joined && self.link.poll_transmit(now, out)
    }

    pub(super) fn handle_link_events(&mut self, now: Instant) {
        for event in std::mem::take(&mut self.link_events) {
            match event {
                LinkEvent::Registered { interval } => {
                    info!(
                        "registered with the tracker {} as {} (keep-alive {} s)",
                        self.cfg.tracker,
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
                        d.peers.add(&peers, now);
                    }
                    self.connect_peers(now);
                }
                LinkEvent::FileList(files) => self.notify(Event::FileList(files)),
                LinkEvent::Found { query, files } => self.notify(Event::Found { query, files }),
                LinkEvent::PeerList(peers) => self.notify(Event::PeerList(peers)),
                LinkEvent::UsernameChanged(name) => {
                    info!("username is now {}", names::escape(&name));
                    self.notify(Event::UsernameChanged(name));
                }
                // A download's peer query: the download asks again by
                // itself every few seconds, so a failure is only logged; a
                // silent tracker is told once, as Unreachable.
                LinkEvent::Failed {
                    what: tracker_link::RequestKind::GetPeers,
                    error,
                } => debug!("tracker get peers: {error}"),
                LinkEvent::Failed { what, error } => {
                    warn!("tracker {}: {error}", what.as_str());
                    if what == tracker_link::RequestKind::Announce {
                        self.announce_pending = false;
                    }
                    self.notify(Event::TrackerFailed { what, error });
                }
                LinkEvent::Unreachable => {
                    warn!("the tracker {} does not answer", self.cfg.tracker);
                    self.notify(Event::TrackerUnreachable);
                }
                LinkEvent::Reachable => {
                    info!("the tracker answers again");
                    self.notify(Event::TrackerReachable);
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
