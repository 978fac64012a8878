//! The project's own peer protocol ([`crate::wire::peer`]): a download by
//! file id with its metadata from peers ([`download`]), an outbound
//! connection fetching chunks ([`fetch`]) and an inbound one serving them
//! ([`serve`]).
//!
//! Invariant: imports from [`super::transfer`] and the engine, never from
//! [`super::bittorrent`].

pub mod download;
pub mod fetch;
pub mod serve;
