//! The tracker: which peers are online and which files they share.
//!
//! - [`registry`]: the pure state (peers, files, expiry) driven by requests
//!   and a `now` passed in.
//! - [`bep15`]: what a BEP 15 datagram deserves (ids, access list,
//!   swarms, the project's files seen as swarms).
//! - [`access`]: the operator's allow or deny list of info hashes.
//! - [`swarms`]: BitTorrent swarms (BEP 15) keyed by 20-byte info hash.
//! - [`connid`]: stateless, keyed connection ids for the handshake.
//! - [`server`]: the one-thread mio loop over one UDP socket that feeds
//!   datagrams to the registry and drives every timer by its poll timeout.

pub mod access;
pub mod bep15;
pub mod connid;
pub mod registry;
pub mod server;
pub mod swarms;

pub use server::{Config, Tracker};

use std::net::IpAddr;

/// The key of a host for the per-host caps of both registries: an IPv4
/// address, or the /64 of an IPv6 one (one subscriber usually holds a
/// whole /64).
fn host_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 64) - 1),
    }
}

/// The key of a network for the wider caps of the registry: an IPv4 /24,
/// or an IPv6 /48 (a site's usual allocation).
fn network_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()) & !0xff,
        IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 80) - 1),
    }
}
