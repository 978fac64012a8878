//! BitTorrent v2 ([`crate::bt`]) in the engine: a download of a torrent or
//! magnet link ([`download`]), an outbound connection fetching blocks and
//! the engine's side of BitTorrent downloads ([`fetch`]), seeding to
//! inbound connections, which the listener's first byte tells apart from
//! the native protocol ([`serve`]), and announces to `udp://` trackers
//! (BEP 15; [`tracker`]).
//!
//! Invariant: imports from [`super::transfer`] and the engine, never from
//! [`super::native`].

pub mod download;
pub mod downloads;
pub mod fetch;
pub mod serve;
pub mod tracker;
