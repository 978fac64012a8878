//! The tracker: which peers are online and which files they share.
//!
//! - [`registry`]: the pure state (peers, files, expiry) driven by requests
//!   and a `now` passed in.
//! - [`connid`]: stateless, keyed connection ids for the handshake.
//! - [`server`]: the one-thread mio loop over one UDP socket that feeds
//!   datagrams to the registry and drives every timer by its poll timeout.

pub mod connid;
pub mod registry;
pub mod server;

pub use server::{Config, Tracker};
